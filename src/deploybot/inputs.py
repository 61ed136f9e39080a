"""What callers ask the backend for: typed requests, references and page requests.

GraphQL inputs, webhook payloads, the seeds' REST bodies and the CLI's flags all
become one of these before they reach a `Backend`; the checks of their fields
are the core's (`core.requests`, ...), so every transport gets the same answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from deploybot.domain import DeploymentState, DeploymentStrategy, DeploymentTrigger, StepName
from deploybot.ids import decode_id, parse_key

DEFAULT_CANARY_PERIOD = 10.0

# --- references ---------------------------------------------------------------------------------


class DeploymentRef(NamedTuple):
    """A deployment by its environment and serial number; `environment` None: the instance's
    own (a bare number)."""

    environment: str | None
    number: int

    @classmethod
    def parse(cls, value: str) -> DeploymentRef | None:
        """A global ID or a bare number; None for another type's ID; InvalidId if neither
        (or if the number is out of range: 1..2**63-1, what the database can hold)."""
        if value.isascii() and value.isdigit():
            return cls(None, parse_key(value, "deployment number"))
        gid = decode_id(value)
        if gid.type_name != "Deployment":
            return None
        return cls(gid.environment, gid.key)


class ReleaseRef(NamedTuple):
    environment: str | None
    number: int


@dataclass(frozen=True)
class PageRequest:
    """GitHub's connection arguments: `first`/`after` forwards, `last`/`before` backwards;
    cursors are the backend's own opaque strings."""

    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None
    descending: bool = True


# --- deploying ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollingUpdate:
    """Swarm's `UpdateConfig`; unset fields keep the stack file's `deploy.update_config`."""

    parallelism: int | None = None
    delay: float | None = None
    order: str | None = None
    failure_action: str | None = None
    monitor: float | None = None


@dataclass(frozen=True)
class HealthCheck:
    """The runner polls `url` after the rollout: `retries` tries, `interval` apart."""

    url: str
    timeout: float = 5.0
    interval: float = 2.0
    retries: int = 5


@dataclass(frozen=True)
class Hook:
    """A command run with `sh -c` in a one-off task of `service`'s new image."""

    command: str
    service: str | None = None


@dataclass(frozen=True)
class RolloutOptions:
    """How a deployment is to be rolled out. They travel from the request to the runner as
    one JSON document on the deployment, so a runner in another process reads exactly
    what was asked for."""

    rollback_on_failure: bool = True
    rolling_update: RollingUpdate | None = None
    canary_period: float = DEFAULT_CANARY_PERIOD
    health_check: HealthCheck | None = None
    pre_deploy_hooks: list[Hook] = field(default_factory=list)
    post_deploy_hooks: list[Hook] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RolloutOptions:
        """Options as stored; a deployment from before they existed gets the defaults."""
        if not data:
            return cls()
        rolling = data.get("rolling_update")
        health = data.get("health_check")
        return cls(
            rollback_on_failure=bool(data.get("rollback_on_failure", True)),
            rolling_update=RollingUpdate(**rolling) if rolling else None,
            canary_period=float(data.get("canary_period", DEFAULT_CANARY_PERIOD)),
            health_check=HealthCheck(**health) if health else None,
            pre_deploy_hooks=[Hook(**h) for h in data.get("pre_deploy_hooks") or []],
            post_deploy_hooks=[Hook(**h) for h in data.get("post_deploy_hooks") or []],
        )

    def steps_around(self, strategy: DeploymentStrategy) -> tuple[list[StepName], list[StepName]]:
        """The steps these options add before the rollout and after the convergence."""
        before = [StepName.PRE_DEPLOY] if self.pre_deploy_hooks else []
        if strategy is DeploymentStrategy.CANARY:
            before.append(StepName.CANARY)
        elif strategy is DeploymentStrategy.BLUE_GREEN:
            before.append(StepName.GREEN)
        after = [StepName.HEALTH] if self.health_check else []
        if self.post_deploy_hooks:
            after.append(StepName.POST_DEPLOY)
        return before, after


@dataclass
class DeployRequest:
    """What a caller asks for; GraphQL, webhooks and the CLI all build one of these."""

    repository_url: str | None = None
    commit_sha: str | None = None
    ref: str | None = None
    application: str | None = None
    environment: str | None = None
    stack_file: str | None = None
    working_directory: str | None = None
    """A subdirectory of the repository (a monorepo's project): the stack file and the
    build contexts are relative to it."""
    version: str | None = None
    description: str | None = None
    references: list[str] = field(default_factory=list)
    image: str | None = None
    service: str | None = None
    strategy: DeploymentStrategy = DeploymentStrategy.ROLLING
    trigger: DeploymentTrigger = DeploymentTrigger.API
    provider: str | None = None
    provider_repository: str | None = None
    """owner/name as the provider names it (deployments a webhook made)."""
    actor: str | None = None
    requested_by: str | None = None
    """The principal that asked (set by the backend from the caller, never by the client)."""
    team: str | None = None
    original_request: dict[str, Any] | None = None
    mapped_request: dict[str, Any] | None = None
    queue: bool = False
    dependencies: list[str] = field(default_factory=list)
    idempotency_key: str | None = None
    rollout: RolloutOptions = field(default_factory=RolloutOptions)


@dataclass
class RollbackRequest:
    """Restore an earlier deployment: by `deployment` (a reference), by `version`, or
    (neither) the application's previous successful deployment."""

    application: str
    environment: str | None = None
    version: str | None = None
    deployment: DeploymentRef | None = None
    description: str | None = None
    actor: str | None = None
    requested_by: str | None = None
    """The principal that asked (set by the backend from the caller, never by the client)."""
    original_request: dict[str, Any] | None = None


# --- recording what other tools did -------------------------------------------------------------


@dataclass
class RecordedService:
    """One service (Sponge's package) of a recorded deployment."""

    name: str
    version: str | None = None
    image: str | None = None
    hosts: list[str] = field(default_factory=list)
    started_at: str | datetime | None = None
    finished_at: str | datetime | None = None
    duration: float | None = None


@dataclass
class RecordRequest:
    """A deployment another tool made. Nothing is required (Sponge): a record without an
    application or a version keeps none and is shown so."""

    application: str | None = None
    version: str | None = None
    environment: str | None = None
    state: DeploymentState = DeploymentState.SUCCESS
    actor: str | None = None
    requested_by: str | None = None
    """The principal that asked (set by the backend from the caller, never by the client)."""
    team: str | None = None
    notes: str | None = None
    references: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    services: list[RecordedService] = field(default_factory=list)
    repository_url: str | None = None
    ref: str | None = None
    commit_sha: str | None = None
    committed_at: str | datetime | None = None
    started_at: str | datetime | None = None
    finished_at: str | datetime | None = None
    duration: float | None = None
    provider: str | None = None
    original_request: dict[str, Any] | None = None


@dataclass
class PublishRequest:
    """A new version of a component on a release train (Deis' ComponentVersion)."""

    component: str
    train: str
    version: str
    released_at: str | datetime
    data: Any = None


@dataclass(frozen=True)
class SetSecretRequest:
    """A new value of a secret deploybot keeps for an application (the repr hides it)."""

    application: str
    name: str
    value: str = field(repr=False)
    environment: str | None = None


@dataclass(frozen=True)
class SecretRef:
    application: str
    name: str
    environment: str | None = None


# --- webhooks and notifications -----------------------------------------------------------------


@dataclass
class WebhookOptions:
    """How a webhook's events deploy: the options of the `deploy` they become."""

    stack_file: str | None = None
    strategy: DeploymentStrategy = DeploymentStrategy.ROLLING
    queue: bool = True
    service: str | None = None
    image_repository: str | None = None
    """Docker Hub: the image to deploy (default the payload's `repo_name`)."""
    rollout: RolloutOptions = field(default_factory=RolloutOptions)

    def to_json(self) -> dict[str, Any]:
        return {
            "stack_file": self.stack_file,
            "strategy": self.strategy.value,
            "queue": self.queue,
            "service": self.service,
            "image_repository": self.image_repository,
            "rollout": self.rollout.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WebhookOptions:
        return cls(
            stack_file=data.get("stack_file"),
            strategy=DeploymentStrategy(data.get("strategy") or "ROLLING"),
            queue=bool(data.get("queue", True)),
            service=data.get("service"),
            image_repository=data.get("image_repository"),
            rollout=RolloutOptions.from_json(data.get("rollout")),
        )


@dataclass
class WebhookRequest:
    """Create a webhook, or (fields left None) change some of an existing one's."""

    provider: str | None = None
    repository: str | None = None
    application: str | None = None
    repository_url: str | None = None
    branches: list[str] | None = None
    tags: list[str] | None = None
    options: WebhookOptions | None = None
    secret: str | None = None
    public_key: str | None = None
    rotate_secret: bool = False


@dataclass
class NotificationTargetRequest:
    url: str
    applications: list[str] = field(default_factory=list)
    states: list[DeploymentState] = field(default_factory=list)
    format: str = "GENERIC"
    secret: str | None = None
