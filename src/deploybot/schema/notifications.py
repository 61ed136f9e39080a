"""GraphQL types and inputs of notification targets (deployments' state changes, out)."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from deploybot.domain import DeploymentState
from deploybot.ids import encode_id
from deploybot.inputs import NotificationTargetRequest
from deploybot.records import NotificationDeliveryRecord, NotificationTargetRecord
from deploybot.schema.common import UserError
from deploybot.schema.context import Info
from deploybot.schema.deployments import Deployment, linked_deployment


@strawberry.enum(description="The body's shape: deploybot's JSON, or a Slack message.")
class NotificationFormat(enum.Enum):
    GENERIC = "GENERIC"
    SLACK = "SLACK"


@strawberry.enum
class NotificationDeliveryStatus(enum.Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


@strawberry.type(description="One POST of a state change, and how its tries went.")
class NotificationDelivery:
    id: strawberry.ID
    delivery_id: str = strawberry.field(description="Sent as X-Deploybot-Delivery.")
    url: str
    state: DeploymentState | None
    status: NotificationDeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    deployment_number: strawberry.Private[int | None]
    environment: strawberry.Private[str]

    @strawberry.field
    async def deployment(self, info: Info) -> Deployment | None:
        return await linked_deployment(info, self.environment, self.deployment_number)

    @classmethod
    def from_record(cls, record: NotificationDeliveryRecord) -> NotificationDelivery:
        environment = record.environment
        return cls(
            id=strawberry.ID(encode_id("NotificationDelivery", environment, record.id)),
            delivery_id=record.delivery_uuid,
            url=record.url,
            state=DeploymentState(record.state) if record.state else None,
            status=NotificationDeliveryStatus(record.status),
            attempts=record.attempts,
            next_attempt_at=record.next_attempt_at,
            last_status_code=record.last_status_code,
            last_error=record.last_error,
            created_at=record.created_at,
            delivered_at=record.delivered_at,
            deployment_number=record.deployment_id,
            environment=environment,
        )


@strawberry.type(description="Where deployments' state changes are POSTed.")
class NotificationTarget:
    id: strawberry.ID
    number: int
    url: str
    applications: list[str] = strawberry.field(description="Empty: every application.")
    states: list[DeploymentState] = strawberry.field(description="Empty: every state.")
    format: NotificationFormat
    signed: bool = strawberry.field(description="Whether bodies carry X-Deploybot-Signature-256.")
    created_at: datetime
    environment: strawberry.Private[str]

    @strawberry.field(description="Its latest deliveries, newest first.")
    async def deliveries(self, info: Info, first: int = 20) -> list[NotificationDelivery]:
        found = await info.context.backend.notification_deliveries(self.number, first=first)
        return [NotificationDelivery.from_record(r) for r in found]

    @classmethod
    def from_record(cls, record: NotificationTargetRecord) -> NotificationTarget:
        return cls(
            id=strawberry.ID(encode_id("NotificationTarget", record.environment, record.id)),
            number=record.id,
            url=record.url,
            applications=record.applications,
            states=[DeploymentState(s) for s in record.states],
            format=NotificationFormat(record.format),
            signed=record.has_secret,
            created_at=record.created_at,
            environment=record.environment,
        )


@strawberry.input(description="Which state changes are sent; an empty list matches all.")
class NotificationFilter:
    applications: list[str] | None = None
    states: list[DeploymentState] | None = None


@strawberry.input
class CreateNotificationTargetInput:
    url: str
    filter: NotificationFilter | None = None
    format: NotificationFormat = NotificationFormat.GENERIC
    secret: str | None = strawberry.field(
        default=None, description="Signs each body (HMAC-SHA256, X-Deploybot-Signature-256)."
    )
    client_mutation_id: str | None = None

    def to_core(self) -> NotificationTargetRequest:
        flt = self.filter or NotificationFilter()
        return NotificationTargetRequest(
            url=self.url,
            applications=list(flt.applications or []),
            states=list(flt.states or []),
            format=self.format.value,
            secret=self.secret,
        )


@strawberry.type
class CreateNotificationTargetPayload:
    notification_target: NotificationTarget | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class DeleteNotificationTargetInput:
    id: strawberry.ID
    client_mutation_id: str | None = None


@strawberry.type
class DeleteNotificationTargetPayload:
    deleted_notification_target_id: strawberry.ID | None
    user_errors: list[UserError]
    client_mutation_id: str | None
