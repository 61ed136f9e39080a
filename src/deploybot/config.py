"""Settings of one deploybot instance, from `DEPLOYBOT_*` environment variables and flags."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import limits
from limits import RateLimitItem
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from deploybot.core.policy import DeployPolicy, parse_port_ranges, split_list
from deploybot.namespaces import DEFAULT_PATTERN, StackNamespaces, check_pattern

SECRETS_DIR = Path("/run/secrets")
"""Where Swarm mounts a service's secrets: a file named like a setting's variable
(`DEPLOYBOT_DATABASE_URL`) sets it, below the environment's own variables."""


class Settings(BaseSettings):
    """Everything an instance needs to know; each field is `DEPLOYBOT_<NAME>` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="DEPLOYBOT_",
        extra="ignore",
        secrets_dir=SECRETS_DIR if SECRETS_DIR.is_dir() else None,
    )

    database_url: str = Field(
        default="sqlite+aiosqlite:///./deploybot.db",
        description="SQLAlchemy URL; sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db",
    )
    environment: str = Field(default="local", description="The environment this instance serves")
    relay_environments: str = Field(
        default="",
        description="`deploybot relay`: JSON {name: {url, token, timeout}} of the environments'"
        " instances, or @path of a JSON file",
    )
    stack_namespace: str = Field(
        default=DEFAULT_PATTERN,
        description="Stack namespace of an application on the Swarm, from {application} and"
        " {environment} (`{environment}-{application}` lets several instances share one Swarm)",
    )
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
    log_buffer_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=4096,
        description="Bytes of log lines (text plus about 100 bytes a line) one deployment keeps in"
        " memory while they wait for the database (unavailable or too slow); past it the"
        " middle of the wait is dropped for one line saying how many lines were dropped",
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
    log_retention_days: float | None = Field(
        default=None,
        gt=0,
        description="Cut finished deployments' logs to their first and last lines after this "
        "many days (unset: keep every line)",
    )
    log_max_lines: int | None = Field(
        default=None,
        ge=10,
        description="Keep at most this many lines of a finished deployment's log (its first and "
        "last halves; unset: no limit)",
    )
    log_keep_lines: int = Field(
        default=100, ge=1, description="Lines kept at each end of a log past its retention days"
    )
    log_prune_interval: float = Field(
        default=300.0, gt=0, description="Seconds between the runner's log retention passes"
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
    speed_runner: Literal["deploybot", "external"] = Field(
        default="deploybot",
        description="Who runs what SPEED's POST /start starts: deploybot's runner, or an"
        " external runner that reports through /update and /add_results",
    )
    rest_deploy_wait: float = Field(
        default=1800.0,
        gt=0,
        description="Seconds Deployment Manager's POST /api/v1/deployments waits for the end",
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
    secrets_key: SecretStr | None = Field(
        default=None,
        description="Key that encrypts the secrets deploybot keeps (32 bytes, URL-safe base64);"
        " unset: <work_dir>/secrets.key, made on first use. Every deploying process needs it",
    )
    kept_object_versions: int = Field(
        default=10,
        ge=1,
        description="Successful deployments per application whose configs and secrets stay on"
        " the Swarm for rollbacks; older unused versions are removed",
    )

    policy_repositories: str = Field(
        default="*",
        description="Deploy policy: comma-separated globs of repository URLs deploys may come"
        " from; local paths and file:// URLs only match patterns starting with file://",
    )
    policy_registries: str = Field(
        default="*",
        description="Deploy policy: comma-separated globs of registries (or registry/path)"
        " that deployed images may come from (Docker Hub is docker.io)",
    )
    policy_bind_mount_prefixes: str = Field(
        default="",
        description="Deploy policy: host path prefixes bind mounts may come from (none: no"
        " bind mounts)",
    )
    policy_capabilities: str = Field(
        default="", description="Deploy policy: capabilities `cap_add` may add (ALL: any)"
    )
    policy_sysctls: str = Field(
        default="", description="Deploy policy: globs of sysctls services may set"
    )
    policy_published_ports: str = Field(
        default="1024-65535",
        description="Deploy policy: ports and ranges services may publish (`80,443,8000-9000`)",
    )
    policy_allow_devices: bool = Field(
        default=False, description="Deploy policy: allow `devices` and host device volumes"
    )
    policy_allow_host_namespaces: bool = Field(
        default=False,
        description="Deploy policy: allow the host's network, pid, ipc, uts, user or cgroup"
        " namespace (`network_mode: host`, the `host` network, `pid: host`...)",
    )
    policy_allow_privileged: bool = Field(
        default=False,
        description="Deploy policy: allow `privileged` and unconfined `security_opt`",
    )

    metrics_access: Literal["open", "token"] = Field(
        default="open",
        description="Who may read /metrics: anyone (open), or a token that may read (token)",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines as text, or as JSON objects (one a line) with the request id",
    )
    auth: bool = Field(
        default=True,
        description="Require an API token on every route but /healthz. `off` (throwaway local "
        "use only) lets anyone do anything; serve then refuses a non-loopback host",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="A fixed admin token (tests, deploy secrets); stored digested like any other",
    )
    token_cache_ttl: float = Field(
        default=5.0,
        gt=0,
        le=5.0,
        description="Seconds a token lookup is cached (a revoked token stops working within it)",
    )
    ws_auth_recheck: float = Field(
        default=2.5,
        gt=0,
        le=5.0,
        description="Seconds between re-checks of an open WebSocket's token",
    )
    webhook_max_body: int = Field(
        default=25 * 1024 * 1024,
        gt=0,
        description="Largest webhook body accepted, in bytes (GitHub caps its payloads at 25 MB)",
    )
    notify_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a notification receiver has to answer"
    )
    notify_attempts: int = Field(
        default=6, ge=1, description="Tries of a notification before it counts as failed"
    )
    notify_backoff: float = Field(
        default=30.0,
        gt=0,
        description="Seconds before the second try of a notification; doubles after each try"
        " (30 s, 1, 2, 4, 8 min: six tries over a quarter of an hour)",
    )

    rate_limit_enabled: bool = Field(
        default=True, description="Rate limits per caller; false turns every one off"
    )
    rate_limit_deploy: str = Field(
        default="5/minute",
        description="deploy and rollback, per caller and application (`limits` notation, "
        "e.g. `5/minute`, `10 per hour`; `off` for none)",
    )
    rate_limit_status: str = Field(
        default="100/minute",
        description="status reads per caller: application(name), deployment(id), raw logs",
    )
    rate_limit_list: str = Field(
        default="50/minute",
        description="list reads per caller: deployments, releases, applications",
    )
    rate_limit_storage: str = Field(
        default="auto",
        description="Where the counters live: `memory` (this process), `database` (a table "
        "of the PostgreSQL database, shared by every API process), `auto` (database on "
        "PostgreSQL, memory on SQLite)",
    )
    graphql_max_body_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest request body /graphql reads (413 above)"
    )
    graphql_max_depth: int = Field(
        default=12, gt=0, description="Deepest selection nesting a GraphQL document may have"
    )
    graphql_max_aliases: int = Field(
        default=100, ge=0, description="Aliased fields one GraphQL document may have"
    )
    graphql_max_tokens: int = Field(
        default=2000, gt=0, description="Tokens one GraphQL document may have (parsing stops)"
    )
    graphql_max_nodes: int = Field(
        default=50_000,
        gt=0,
        description="Nodes one request may ask for: the sum over connections of the product "
        "of `first`/`last` along their path (GitHub's estimate)",
    )

    @field_validator("rate_limit_deploy", "rate_limit_status", "rate_limit_list")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        parse_rate_limit(value)
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _check_rate_limit_storage(cls, value: str) -> str:
        if value not in ("auto", "memory", "database"):
            raise ValueError("rate_limit_storage is auto, memory or database")
        return value

    @field_validator("stack_namespace")
    @classmethod
    def _check_stack_namespace(cls, value: str) -> str:
        return check_pattern(value)

    @field_validator("release_trains")
    @classmethod
    def _check_release_trains(cls, value: str) -> str:
        parse_release_trains(value)
        return value

    @model_validator(mode="after")
    def _check_policy(self) -> Settings:
        self.deploy_policy  # noqa: B018 - raises PolicyError (a ValueError) when invalid
        return self

    @property
    def deploy_policy(self) -> DeployPolicy:
        """The deploy policy these settings configure (an admin's edit replaces it)."""
        return DeployPolicy(
            repositories=split_list(self.policy_repositories),
            registries=split_list(self.policy_registries),
            bind_mount_prefixes=split_list(self.policy_bind_mount_prefixes),
            capabilities=split_list(self.policy_capabilities),
            sysctls=split_list(self.policy_sysctls),
            published_ports=parse_port_ranges(split_list(self.policy_published_ports)),
            allow_devices=self.policy_allow_devices,
            allow_host_namespaces=self.policy_allow_host_namespaces,
            allow_privileged=self.policy_allow_privileged,
        )

    @property
    def namespaces(self) -> StackNamespaces:
        """Where this instance's applications live on the Swarm."""
        return StackNamespaces(self.stack_namespace, self.environment)

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


def parse_rate_limit(value: str) -> RateLimitItem | None:
    """`5/minute`, `100 per minute`, `10/30 seconds` → a `limits` item; `off` → None."""
    if value.strip().lower() in ("off", "none", "0", ""):
        return None
    try:
        return limits.parse(value)
    except ValueError as exc:
        raise ValueError(f"not a rate limit: {value!r} (e.g. `5/minute`, or `off`)") from exc
