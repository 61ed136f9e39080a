"""SQLModel tables of deploybot's domain (see DESIGN.md, "Domain model").

Every timestamp is UTC; free-form documents are portable JSON columns; the
indexes follow the filters of the `deployments` query and keyset pagination
by id (ids grow with creation time).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from deploybot.db.types import BigIntKey, PortableJSON, UTCDateTime
from deploybot.domain import (
    ApplicationState,
    DeploymentState,
    DeploymentStrategy,
    DeploymentTrigger,
    Health,
    LogSource,
    LogStream,
    StepStatus,
)
from deploybot.times import utcnow


def _enum(cls: type[enum.Enum]) -> SAEnum:
    return SAEnum(cls, native_enum=False, length=20, validate_strings=True)


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class Deployment(SQLModel, table=True):
    """One attempt to put a version of an application onto this environment."""

    __tablename__ = "deployment"
    __table_args__ = (
        Index("ix_deployment_env_state_id", "environment", "state", "id"),
        Index("ix_deployment_app_env_id", "application", "environment", "id"),
        Index("ix_deployment_repository_id", "repository_url", "id"),
        Index("ix_deployment_commit_sha", "commit_sha"),
        Index("ix_deployment_state_id", "state", "id"),
        Index("ix_deployment_created_at", "created_at"),
        Index("ix_deployment_provider_repository_id", "provider", "provider_repository", "id"),
        # A retried deploy with the same key finds its deployment; one per key and environment.
        Index(
            "uq_deployment_idempotency",
            "environment",
            "idempotency_key",
            unique=True,
            sqlite_where=text("idempotency_key IS NOT NULL"),
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        # One deployment in progress per application and environment, across runners.
        Index(
            "uq_deployment_one_in_progress",
            "application",
            "environment",
            unique=True,
            sqlite_where=text("state = 'IN_PROGRESS'"),
            postgresql_where=text("state = 'IN_PROGRESS'"),
        ),
    )

    id: int | None = Field(default=None, sa_type=BigIntKey, primary_key=True)
    environment: str = Field(sa_type=String(100))
    application: str | None = Field(
        default=None,
        sa_type=String(200),
        description="None: a recorded deployment that named no application",
    )
    repository_url: str | None = Field(default=None, sa_type=String(1000))
    ref: str | None = Field(default=None, sa_type=String(255))
    commit_sha: str | None = Field(default=None, sa_type=String(64))
    commit_message: str | None = Field(default=None, sa_type=Text)
    commit_author: str | None = Field(default=None, sa_type=String(500))
    committed_at: datetime | None = _ts()
    version: str | None = Field(default=None, sa_type=String(255))
    previous_version: str | None = Field(default=None, sa_type=String(255))
    strategy: DeploymentStrategy = Field(
        default=DeploymentStrategy.ROLLING, sa_type=_enum(DeploymentStrategy)
    )
    state: DeploymentState = Field(default=DeploymentState.QUEUED, sa_type=_enum(DeploymentState))
    trigger: DeploymentTrigger = Field(
        default=DeploymentTrigger.API, sa_type=_enum(DeploymentTrigger)
    )
    provider: str | None = Field(default=None, sa_type=String(50))
    provider_repository: str | None = Field(
        default=None,
        sa_type=String(500),
        description="owner/name as the provider (webhook) names the repository",
    )
    actor: str | None = Field(default=None, sa_type=String(255))
    requested_by: str | None = Field(
        default=None, sa_type=String(300), description="The principal that asked (its label)"
    )
    team: str | None = Field(default=None, sa_type=String(255))
    description: str | None = Field(default=None, sa_type=Text)
    references: list[str] = Field(default_factory=list, sa_type=PortableJSON)
    hosts: list[str] = Field(default_factory=list, sa_type=PortableJSON)
    stack_file: str | None = Field(default=None, sa_type=String(500))
    working_directory: str | None = Field(
        default=None,
        sa_type=String(500),
        description="Repository subdirectory the stack file and build contexts are relative to",
    )
    platforms: list[str] = Field(default_factory=list, sa_type=PortableJSON)
    image: str | None = Field(default=None, sa_type=String(1000))
    service: str | None = Field(default=None, sa_type=String(200))
    original_request: dict[str, Any] | None = Field(default=None, sa_type=PortableJSON)
    mapped_request: dict[str, Any] | None = Field(default=None, sa_type=PortableJSON)
    idempotency_key: str | None = Field(default=None, sa_type=String(255))
    request_fingerprint: str | None = Field(
        default=None, sa_type=String(64), description="Hash of the request an idempotency key names"
    )
    dependencies: list[str] | None = Field(default=None, sa_type=PortableJSON)
    cancel_requested_at: datetime | None = _ts()
    error_code: str | None = Field(default=None, sa_type=String(50))
    error_message: str | None = Field(default=None, sa_type=Text)
    rollback_of_id: int | None = Field(
        default=None, sa_column=Column(BigIntKey, ForeignKey("deployment.id"), nullable=True)
    )
    release_id: int | None = Field(default=None, sa_type=BigIntKey)
    rollback_to_id: int | None = Field(default=None, sa_type=BigIntKey)
    rollout_options: dict[str, Any] | None = Field(default=None, sa_type=PortableJSON)
    runner_id: str | None = Field(default=None, sa_type=String(100))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()


class LogRetention(SQLModel, table=True):
    """What log retention did to a finished deployment's log: the rule applied last
    (`count`, then `age` once the deployment is old enough) and how many lines went."""

    __tablename__ = "log_retention"

    deployment_id: int = Field(
        sa_column=Column(
            BigIntKey, ForeignKey("deployment.id", ondelete="CASCADE"), primary_key=True
        )
    )
    rule: str = Field(sa_type=String(10))
    pruned_lines: int = Field(default=0, sa_type=BigIntKey)
    pruned_at: datetime | None = _ts()


class DeploymentStep(SQLModel, table=True):
    """A named phase of a deployment (fetch, build, push, rollout, converge, ...)."""

    __tablename__ = "deployment_step"
    __table_args__ = (UniqueConstraint("deployment_id", "position"),)

    id: int | None = Field(default=None, sa_type=BigIntKey, primary_key=True)
    deployment_id: int = Field(
        sa_column=Column(BigIntKey, ForeignKey("deployment.id", ondelete="CASCADE"), nullable=False)
    )
    position: int
    name: str = Field(sa_type=String(50))
    status: StepStatus = Field(default=StepStatus.PENDING, sa_type=_enum(StepStatus))
    message: str | None = Field(default=None, sa_type=Text)
    error: str | None = Field(default=None, sa_type=Text)
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()


class LogLine(SQLModel, table=True):
    """One line of a deployment's log; `seq` orders and resumes a log."""

    __tablename__ = "log_line"
    __table_args__ = (UniqueConstraint("deployment_id", "seq", name="uq_log_line_seq"),)

    id: int | None = Field(default=None, sa_type=BigIntKey, primary_key=True)
    deployment_id: int = Field(
        sa_column=Column(BigIntKey, ForeignKey("deployment.id", ondelete="CASCADE"), nullable=False)
    )
    seq: int
    timestamp: datetime = Field(sa_type=UTCDateTime, nullable=False)
    source: LogSource = Field(sa_type=_enum(LogSource))
    source_name: str | None = Field(default=None, sa_type=String(255))
    stream: LogStream = Field(default=LogStream.STDOUT, sa_type=_enum(LogStream))
    text: str = Field(sa_type=Text)


class ServiceRollout(SQLModel, table=True):
    """What one service of the stack became in a deployment (Sponge's packages)."""

    __tablename__ = "service_rollout"
    __table_args__ = (UniqueConstraint("deployment_id", "service"),)

    id: int | None = Field(default=None, sa_type=BigIntKey, primary_key=True)
    deployment_id: int = Field(
        sa_column=Column(BigIntKey, ForeignKey("deployment.id", ondelete="CASCADE"), nullable=False)
    )
    service: str = Field(sa_type=String(200))
    swarm_name: str | None = Field(default=None, sa_type=String(255))
    swarm_id: str | None = Field(default=None, sa_type=String(100))
    image: str | None = Field(default=None, sa_type=String(1000))
    digest: str | None = Field(default=None, sa_type=String(100))
    version: str | None = Field(default=None, sa_type=String(255))
    replicas_desired: int | None = None
    replicas_running: int | None = None
    replicas_healthy: int | None = None
    nodes: list[str] = Field(default_factory=list, sa_type=PortableJSON)
    spec: dict[str, Any] | None = Field(default=None, sa_type=PortableJSON)
    state: str | None = Field(default=None, sa_type=String(50))
    error: str | None = Field(default=None, sa_type=Text)
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()


class DeploymentResult(SQLModel, table=True):
    """A free-form result an external runner attached (SPEED's results)."""

    __tablename__ = "deployment_result"

    id: int | None = Field(default=None, sa_type=BigIntKey, primary_key=True)
    deployment_id: int = Field(
        sa_column=Column(
            BigIntKey, ForeignKey("deployment.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    data: Any = Field(default=None, sa_type=PortableJSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Application(SQLModel, table=True):
    """An application as deployed on this environment: what runs now and from where."""

    __tablename__ = "application"
    __table_args__ = (UniqueConstraint("name", "environment"),)

    id: int | None = Field(default=None, sa_type=BigIntKey, primary_key=True)
    name: str = Field(sa_type=String(200))
    environment: str = Field(sa_type=String(100))
    repository_url: str | None = Field(default=None, sa_type=String(1000))
    stack_file: str | None = Field(default=None, sa_type=String(500))
    current_deployment_id: int | None = Field(default=None, sa_type=BigIntKey)
    current_version: str | None = Field(default=None, sa_type=String(255))
    state: ApplicationState = Field(
        default=ApplicationState.UNKNOWN, sa_type=_enum(ApplicationState)
    )
    health: Health = Field(default=Health.UNKNOWN, sa_type=_enum(Health))
    configuration: dict[str, Any] = Field(default_factory=dict, sa_type=PortableJSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Release(SQLModel, table=True):
    """A published version of a component on a release train (Deis' ComponentVersion)."""

    __tablename__ = "release"
    __table_args__ = (
        UniqueConstraint("component", "train", "version"),
        Index("ix_release_component_train_released", "component", "train", "released_at"),
    )

    id: int | None = Field(default=None, sa_type=BigIntKey, primary_key=True)
    component: str = Field(sa_type=String(200))
    train: str = Field(sa_type=String(100))
    version: str = Field(sa_type=String(255))
    released_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=PortableJSON)
    deployment_id: int | None = Field(default=None, sa_type=BigIntKey)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class DeployPolicySetting(SQLModel, table=True):
    """The deploy policy an admin set (one row, id 1); without it the settings' policy holds."""

    __tablename__ = "deploy_policy"

    id: int | None = Field(default=None, primary_key=True)
    document: dict[str, Any] = Field(default_factory=dict, sa_type=PortableJSON)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_by: str | None = Field(default=None, sa_type=String(255))


class KeptSecret(SQLModel, table=True):
    """A secret deploybot keeps for an application: only its current value, encrypted
    (AES-GCM, see secretbox); `version` counts its values."""

    __tablename__ = "kept_secret"
    __table_args__ = (UniqueConstraint("environment", "application", "name"),)

    id: int | None = Field(default=None, sa_type=BigIntKey, primary_key=True)
    environment: str = Field(sa_type=String(100))
    application: str = Field(sa_type=String(200))
    name: str = Field(sa_type=String(64))
    version: int = Field(default=1)
    ciphertext: bytes = Field(sa_type=LargeBinary, repr=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class ApiToken(SQLModel, table=True):
    """An API token: only its SHA-256 digest and a short prefix are kept, never the text."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, sa_type=BigIntKey, primary_key=True)
    name: str = Field(sa_type=String(200))
    prefix: str = Field(sa_type=String(20))
    digest: str = Field(sa_type=String(64), unique=True)
    grants: list[str] = Field(default_factory=list, sa_type=PortableJSON)
    expires_at: datetime | None = _ts()
    created_by: str | None = Field(default=None, sa_type=String(300))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    last_used_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()


class AuditEvent(SQLModel, table=True):
    """Who did what to which target, when, and how it ended (`ok` or an error code)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_operation_id", "operation", "id"),)

    id: int | None = Field(default=None, sa_type=BigIntKey, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    token_id: int | None = Field(default=None, sa_type=BigIntKey, index=True)
    principal: str = Field(sa_type=String(300))
    operation: str = Field(sa_type=String(100))
    target: str | None = Field(default=None, sa_type=String(500))
    outcome: str = Field(sa_type=String(50))
    message: str | None = Field(default=None, sa_type=Text)


class RateLimitCounter(SQLModel, table=True):
    """A fixed-window counter of the rate limits, shared by the API processes of one
    PostgreSQL database (`core.rate_limits`); a row per caller, limit and application."""

    __tablename__ = "rate_limit_counter"

    key: str = Field(sa_type=String(512), primary_key=True)
    count: int = Field(default=0, nullable=False)
    expires_at: float = Field(nullable=False, index=True)
    """Epoch seconds at which the window ends (the next hit starts a new one)."""


metadata = SQLModel.metadata

# The tables as SQLAlchemy Core sees them, for queries that need no ORM objects.
deployment_table: Table = metadata.tables["deployment"]
step_table: Table = metadata.tables["deployment_step"]
log_table: Table = metadata.tables["log_line"]
log_retention_table: Table = metadata.tables["log_retention"]
service_table: Table = metadata.tables["service_rollout"]
result_table: Table = metadata.tables["deployment_result"]
application_table: Table = metadata.tables["application"]
release_table: Table = metadata.tables["release"]
deploy_policy_table: Table = metadata.tables["deploy_policy"]
kept_secret_table: Table = metadata.tables["kept_secret"]
token_table: Table = metadata.tables["api_tokens"]
audit_table: Table = metadata.tables["audit_events"]


class Webhook(SQLModel, table=True):
    """A provider's webhook: which repository's pushes it accepts and how they deploy.

    The secret is stored as given (HMAC verification needs the secret itself, not a digest);
    it is shown once when created and never answered again.
    """

    __tablename__ = "webhook"

    id: int | None = Field(default=None, sa_type=BigIntKey, primary_key=True)
    environment: str = Field(sa_type=String(100))
    provider: str = Field(sa_type=String(20))
    repository: str = Field(sa_type=String(1000))
    repository_url: str | None = Field(default=None, sa_type=String(1000))
    application: str = Field(sa_type=String(200))
    branches: list[str] = Field(default_factory=list, sa_type=PortableJSON)
    tags: list[str] = Field(default_factory=list, sa_type=PortableJSON)
    options: dict[str, Any] = Field(default_factory=dict, sa_type=PortableJSON)
    secret: str = Field(sa_type=String(500))
    public_key: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class WebhookDelivery(SQLModel, table=True):
    """One verified delivery of a webhook; `delivery_key` de-duplicates redeliveries."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("webhook_id", "delivery_key", name="uq_webhook_delivery_key"),
        Index("ix_webhook_delivery_webhook_id", "webhook_id", "id"),
    )

    id: int | None = Field(default=None, sa_type=BigIntKey, primary_key=True)
    webhook_id: int = Field(
        sa_column=Column(BigIntKey, ForeignKey("webhook.id", ondelete="CASCADE"), nullable=False)
    )
    delivery_key: str = Field(sa_type=String(255))
    event: str = Field(sa_type=String(100))
    outcome: str = Field(sa_type=String(20))
    reason: str | None = Field(default=None, sa_type=Text)
    deployment_id: int | None = Field(default=None, sa_type=BigIntKey)
    payload: Any = Field(default=None, sa_type=PortableJSON)
    headers: dict[str, Any] = Field(default_factory=dict, sa_type=PortableJSON)
    callback_url: str | None = Field(default=None, sa_type=String(2000))
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class NotificationTarget(SQLModel, table=True):
    """Where deploybot POSTs deployments' state changes (the secret signs each body)."""

    __tablename__ = "notification_target"

    id: int | None = Field(default=None, sa_type=BigIntKey, primary_key=True)
    environment: str = Field(sa_type=String(100))
    url: str = Field(sa_type=String(2000))
    applications: list[str] = Field(default_factory=list, sa_type=PortableJSON)
    states: list[str] = Field(default_factory=list, sa_type=PortableJSON)
    format: str = Field(sa_type=String(20))
    secret: str | None = Field(default=None, sa_type=String(500))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class NotificationDelivery(SQLModel, table=True):
    """One POST to make (a target's, or a Docker Hub callback's) and how its tries went."""

    __tablename__ = "notification_delivery"
    __table_args__ = (
        Index("ix_notification_delivery_pending", "status", "next_attempt_at"),
        Index("ix_notification_delivery_target", "target_id", "id"),
        # One POST per target and state change, however many processes heard the event.
        UniqueConstraint("dedup_key", name="uq_notification_delivery_dedup"),
    )

    id: int | None = Field(default=None, sa_type=BigIntKey, primary_key=True)
    delivery_uuid: str = Field(sa_type=String(64))
    dedup_key: str = Field(sa_type=String(255))
    target_id: int | None = Field(
        default=None,
        sa_column=Column(
            BigIntKey, ForeignKey("notification_target.id", ondelete="CASCADE"), nullable=True
        ),
    )
    url: str = Field(sa_type=String(2000))
    deployment_id: int | None = Field(default=None, sa_type=BigIntKey)
    state: str | None = Field(default=None, sa_type=String(20))
    body: Any = Field(default=None, sa_type=PortableJSON)
    status: str = Field(sa_type=String(20))
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    delivered_at: datetime | None = _ts()


webhook_table: Table = metadata.tables["webhook"]
webhook_delivery_table: Table = metadata.tables["webhook_delivery"]
notification_target_table: Table = metadata.tables["notification_target"]
notification_delivery_table: Table = metadata.tables["notification_delivery"]
