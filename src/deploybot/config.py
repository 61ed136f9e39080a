"""Settings of one deploybot instance, from `DEPLOYBOT_*` environment variables and flags."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an instance needs to know; each field is `DEPLOYBOT_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="DEPLOYBOT_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./deploybot.db",
        description="SQLAlchemy URL; sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db",
    )
    environment: str = Field(default="local", description="The environment this instance serves")
    docker_host: str = Field(
        default="unix:///var/run/docker.sock", description="Docker Engine API of the Swarm manager"
    )
    registry: str | None = Field(
        default=None,
        description="Registry (host:port[/prefix]) built images are pushed to and deployed from",
    )
    work_dir: Path = Field(
        default=Path("./.deploybot"), description="Git mirror cache and other working files"
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL clients reach this instance at"
    )
    git_token: str | None = Field(default=None, description="Token for private HTTPS repositories")
    git_username: str | None = Field(default=None, description="User name sent with git_token")
    git_ssh_key: Path | None = Field(
        default=None, description="Private key for ssh:// repositories"
    )
    git_ssh_passphrase: str | None = Field(default=None, description="Passphrase of git_ssh_key")
    converge_timeout: float = Field(
        default=180.0, description="Seconds a rollout may take to converge before it fails"
    )
    converge_stable_seconds: float = Field(
        default=2.0,
        ge=0,
        description="Seconds every new task must keep running before a service counts as converged",
    )
    docker_patience: float = Field(
        default=30.0,
        ge=0,
        description="Seconds a converging rollout waits for an unreachable Docker (a daemon"
        " restarting) before the deployment ends ERROR DOCKER_UNAVAILABLE",
    )
    runner_concurrency: int = Field(
        default=2, ge=1, description="Deployments one runner process executes at once"
    )
    runner_stale_after: float = Field(
        default=60.0,
        gt=0,
        description="Seconds without a heartbeat after which a runner counts as lost and another"
        " takes its deployments over (a dead runner on this host is found at once)",
    )
    runner_stop_grace: float = Field(
        default=30.0,
        ge=0,
        description="Seconds a runner stopped by SIGTERM lets its deployments run to the end of"
        " their current step before it leaves them to the next runner (the API keeps answering)",
    )
    ws_compression: bool = Field(
        default=False,
        description="Offer permessage-deflate on WebSockets. Off by default: a frame shared "
        "by a thousand subscribers would be compressed a thousand times.",
    )
    ws_keep_alive: float = Field(
        default=15.0, gt=0, description="Seconds between keep-alive messages on WebSockets"
    )
    ws_max_subscriptions: int = Field(
        default=100, ge=1, description="Operations one WebSocket connection may run at once"
    )
    runner_poll_interval: float = Field(
        default=1.0, gt=0, description="Seconds between looks for queued deployments"
    )
    endpoint_mode: str = Field(
        default="dnsrr",
        description="Default Swarm endpoint mode (dnsrr: this platform has no IPVS for VIPs)",
    )
    publish_mode: str = Field(
        default="host", description="Default publish mode of short-syntax ports (host or ingress)"
    )
    release_trains: str = Field(
        default="main=stable,master=stable",
        description="Branch-to-train map of the releases deployments publish (`branch=train,...`);"
        " any other branch is its own train",
    )
    release_default_train: str = Field(
        default="stable",
        description="Train of a release whose branch is unknown (an image deploy, a recorded"
        " deployment without ref)",
    )

    @field_validator("release_trains")
    @classmethod
    def _check_release_trains(cls, value: str) -> str:
        parse_release_trains(value)
        return value

    @property
    def release_train_map(self) -> dict[str, str]:
        return parse_release_trains(self.release_trains)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def parse_release_trains(value: str) -> dict[str, str]:
    """`main=stable, develop=beta` → {"main": "stable", "develop": "beta"}."""
    trains: dict[str, str] = {}
    for entry in value.split(","):
        if not entry.strip():
            continue
        branch, sep, train = entry.partition("=")
        if not sep or not branch.strip() or not train.strip():
            raise ValueError(f"release trains: {entry.strip()!r} is not `branch=train`")
        trains[branch.strip()] = train.strip()
    return trains


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
