"""What the backend answers: typed, immutable records, never database rows.

Every transport (GraphQL, the raw-log route, webhooks, the REST routes, the CLI,
a relay in front of several instances) gets these from a `Backend` call, so
they hold plain values only: no session, nothing loaded lazily, nothing that
could not cross a network.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from deploybot.domain import (
    ApplicationState,
    DeploymentState,
    DeploymentStrategy,
    DeploymentTrigger,
    Health,
    Interval,
    LogSource,
    LogStream,
    ProgressStatus,
    StepStatus,
)
from deploybot.errors import ErrorCode

T = TypeVar("T")

# --- deployments --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentRecord:
    """One deployment as stored. `id` is its serial number in its environment.

    A history page read for a selection (`fields=` of `Backend.deployments`) carries only
    the fields asked for (and `id`, `environment`); the others are None.
    """

    id: int
    environment: str
    application: str | None
    """None: a recorded deployment that named no application (deploybot's own always do)."""
    state: DeploymentState
    strategy: DeploymentStrategy
    trigger: DeploymentTrigger
    created_at: datetime
    updated_at: datetime
    repository_url: str | None = None
    ref: str | None = None
    commit_sha: str | None = None
    commit_message: str | None = None
    commit_author: str | None = None
    committed_at: datetime | None = None
    version: str | None = None
    previous_version: str | None = None
    provider: str | None = None
    provider_repository: str | None = None
    actor: str | None = None
    requested_by: str | None = None
    team: str | None = None
    description: str | None = None
    references: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    stack_file: str | None = None
    working_directory: str | None = None
    platforms: list[str] = field(default_factory=list)
    image: str | None = None
    service: str | None = None
    original_request: dict[str, Any] | None = None
    mapped_request: dict[str, Any] | None = None
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    dependencies: list[str] = field(default_factory=list)
    cancel_requested_at: datetime | None = None
    error_code: ErrorCode | None = None
    error_message: str | None = None
    rollback_of_id: int | None = None
    rollback_to_id: int | None = None
    release_id: int | None = None
    rollout_options: dict[str, Any] | None = None
    runner_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def named_application(self) -> str:
        """The application of a deployment that names one, as all of deploybot's own do
        (what its runner deploys); only a recorded deployment may name none."""
        if self.application is None:
            raise ValueError(f"deployment {self.id} names no application")
        return self.application

    @classmethod
    def of(cls, values: Mapping[Any, Any]) -> DeploymentRecord:
        """From a stored row's columns (all, or a selection of them).

        Built without the dataclass constructor: pages of 50 are the hottest path. A row
        is copied to a dict first: a missing key of a SQLAlchemy row raises (and catches)
        inside SQLAlchemy, which costs more than the copy.
        """
        if not isinstance(values, dict):
            values = dict(values)
        record = cls.__new__(cls)
        fields = record.__dict__
        fields.update(_DEPLOYMENT_DEFAULTS)
        fields.update(values)
        fields["references"] = values.get("references") or []
        fields["hosts"] = values.get("hosts") or []
        fields["platforms"] = values.get("platforms") or []
        fields["dependencies"] = values.get("dependencies") or []
        code = values.get("error_code")
        fields["error_code"] = ErrorCode(code) if isinstance(code, str) else code
        return record


_DEPLOYMENT_DEFAULTS: dict[str, Any] = dict.fromkeys(DeploymentRecord.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """A named phase of a deployment (fetch, build, push, rollout, converge, ...)."""

    name: str
    status: StepStatus
    position: int = 0
    message: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ServiceRolloutRecord:
    """What one service of the stack became in a deployment (Sponge's packages)."""

    service: str
    swarm_name: str | None = None
    swarm_id: str | None = None
    image: str | None = None
    digest: str | None = None
    version: str | None = None
    replicas_desired: int | None = None
    replicas_running: int | None = None
    replicas_healthy: int | None = None
    nodes: list[str] = field(default_factory=list)
    spec: dict[str, Any] | None = None
    state: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LogLineRecord:
    """One line of a deployment's log; `sequence` orders the log and resumes it."""

    sequence: int
    timestamp: datetime
    source: LogSource
    source_name: str | None
    stream: LogStream
    text: str

    @classmethod
    def of(cls, values: Mapping[Any, Any]) -> LogLineRecord:
        """From a stored line (a row's mapping, or the writer's own dict)."""
        return cls(
            values["seq"],
            values["timestamp"],
            values["source"],
            values["source_name"],
            values["stream"],
            values["text"],
        )


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """A free-form result attached to a deployment (SPEED's results)."""

    id: int
    deployment_id: int
    data: Any
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Edge(Generic[T]):
    cursor: str
    node: T


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated list; cursors are opaque to the caller."""

    edges: list[Edge[T]]
    has_next: bool
    has_previous: bool

    @property
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]


# --- live ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    """Seed 002's progress message: where a deployment is now."""

    deployment_id: int
    state: DeploymentState
    step: str | None
    status: ProgressStatus
    message: str
    percentage: int
    timestamp: datetime

    @property
    def final(self) -> bool:
        return self.state.is_final


@dataclass(frozen=True, slots=True)
class DeploymentChange:
    """A deployment was created (`kind` "created") or changed (`kind` "changed") to `state`;
    `deployment` is the record as read afterwards (it may already have moved on)."""

    kind: str
    state: DeploymentState
    deployment: DeploymentRecord


@dataclass(frozen=True, slots=True)
class ServiceLogLine:
    """A line a running service printed (the Docker log of one of its tasks)."""

    service: str
    task: str | None
    timestamp: datetime
    stream: LogStream
    text: str


# --- releases -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """A published version of a component on a release train (Deis' ComponentVersion),
    as the catalogue of `environment`'s instance holds it."""

    id: int
    environment: str
    component: str
    train: str
    version: str
    released_at: datetime
    data: dict[str, Any]
    deployment_id: int | None
    created_at: datetime


# --- applications -------------------------------------------------------------------------------


class EventType(enum.Enum):
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


@dataclass(frozen=True)
class ApplicationEvent:
    timestamp: datetime
    type: EventType
    message: str
    source: str


@dataclass(frozen=True)
class HealthCheckResult:
    """One check of a component: a container's healthcheck run, or a task's state."""

    name: str
    status: Health
    message: str | None
    duration: float | None
    last_run: datetime | None


@dataclass(frozen=True)
class Replicas:
    desired: int = 0
    running: int = 0
    ready: int = 0
    updated: int = 0

    def __add__(self, other: Replicas) -> Replicas:
        return Replicas(
            self.desired + other.desired,
            self.running + other.running,
            self.ready + other.ready,
            self.updated + other.updated,
        )


@dataclass(frozen=True)
class LiveService:
    """One Swarm service of the stack as the Swarm reports it now."""

    name: str
    swarm_name: str
    image: str | None
    replicas: Replicas
    health: Health
    message: str
    checks: list[HealthCheckResult]
    update_state: str | None
    configuration: dict[str, Any]
    events: list[ApplicationEvent]


@dataclass(frozen=True)
class LiveStack:
    services: list[LiveService]
    checked_at: datetime


@dataclass(frozen=True)
class HealthReport:
    overall: Health
    components: list[LiveService]
    last_check: datetime
    message: str


@dataclass(frozen=True)
class ApplicationStatus:
    """An application on an environment: deploybot's records joined with the live Swarm."""

    name: str
    environment: str
    state: ApplicationState
    health: Health
    replicas: Replicas
    current_version: str | None
    current_deployment_id: int | None
    repository_url: str | None
    stack_file: str | None
    configuration: dict[str, Any]
    events: list[ApplicationEvent]
    report: HealthReport
    last_updated: datetime | None


@dataclass(frozen=True)
class ServiceVersion:
    service: str
    version: str | None
    image: str | None
    digest: str | None
    nodes: list[str]
    deployment_id: int
    deployed_at: datetime | None


@dataclass(frozen=True)
class EnvironmentVersion:
    """The version an application (and each of its services) runs on one environment."""

    application: str
    environment: str
    version: str | None
    deployment_id: int
    deployed_at: datetime | None
    services: list[ServiceVersion] = field(default_factory=list)


# --- validation ---------------------------------------------------------------------------------


class Severity(enum.Enum):
    ERROR = "ERROR"
    WARNING = "WARNING"


@dataclass(frozen=True)
class Issue:
    field: str | None
    message: str
    severity: Severity
    code: ErrorCode | None = None


@dataclass(frozen=True)
class ValidationReport:
    """Seed 002's validate: valid exactly when `deploy` would accept the request now."""

    issues: list[Issue] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not any(i.severity is Severity.ERROR for i in self.issues)

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity is Severity.WARNING]


# --- delivery metrics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    deployments: int
    successful_deployments: int
    deployments_per_day: float
    lead_time_median: float | None
    lead_time_p90: float | None
    change_failures: int
    change_failure_rate: float | None
    restores: int
    unrestored: int
    time_to_restore_median: float | None


@dataclass(frozen=True)
class DeliveryMetrics:
    since: datetime
    until: datetime
    interval: Interval
    total: Period
    periods: list[Period]


@dataclass(frozen=True, slots=True)
class DeliverySample:
    """What delivery metrics read of one finished deployment: a relay fetches these from
    each environment and computes the union's metrics with the instance's own function."""

    id: int
    environment: str
    application: str | None
    state: DeploymentState
    trigger: DeploymentTrigger
    committed_at: datetime | None
    finished_at: datetime
    rollback_of_id: int | None


@dataclass(frozen=True, slots=True)
class DeploymentTally:
    """How many deployments of an application are in a state, by trigger."""

    environment: str
    application: str
    state: str
    trigger: str
    count: int


# --- secrets deploybot keeps --------------------------------------------------------------------


@dataclass(frozen=True)
class SecretRecord:
    """A kept secret as the API shows it: never its value."""

    application: str
    environment: str
    name: str
    version: int
    created_at: datetime
    updated_at: datetime


# --- webhooks and notifications -----------------------------------------------------------------


@dataclass(frozen=True)
class WebhookRecord:
    """A configured webhook; never carries its secret (see `CreatedWebhook`)."""

    id: int
    environment: str
    provider: str
    repository: str
    repository_url: str | None
    application: str
    branches: list[str]
    tags: list[str]
    options: dict[str, Any]
    has_public_key: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CreatedWebhook:
    """A webhook as created (or with a new secret): the only time its secret is answered."""

    webhook: WebhookRecord
    secret: str


@dataclass(frozen=True)
class WebhookDeliveryRecord:
    id: int
    environment: str
    webhook_id: int
    delivery_key: str
    event: str
    outcome: str
    """DEPLOYED, IGNORED or REJECTED."""
    reason: str | None
    deployment_id: int | None
    payload: Any
    headers: dict[str, Any]
    received_at: datetime


@dataclass(frozen=True)
class WebhookOutcome:
    """What a webhook request did: its delivery, the deployment it made (or had made, for a
    redelivery), and whether it was a redelivery."""

    delivery: WebhookDeliveryRecord
    deployment: DeploymentRecord | None
    duplicate: bool


@dataclass(frozen=True)
class NotificationTargetRecord:
    id: int
    environment: str
    url: str
    applications: list[str]
    states: list[str]
    format: str
    has_secret: bool
    created_at: datetime


@dataclass(frozen=True)
class NotificationDeliveryRecord:
    id: int
    environment: str
    delivery_uuid: str
    target_id: int | None
    url: str
    deployment_id: int | None
    state: str | None
    status: str
    """PENDING, DELIVERED or FAILED (gave up)."""
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class ViewerRecord:
    """Who the caller is here: a name (token id and name) and the grants of their token."""

    name: str
    environment: str
    grants: list[str]
