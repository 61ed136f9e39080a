"""GraphQL types and inputs of provider webhooks (seed 000's Provider API)."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from deploybot.core.webhooks import hook_path
from deploybot.ids import encode_id
from deploybot.inputs import WebhookOptions, WebhookRequest
from deploybot.records import WebhookDeliveryRecord, WebhookRecord
from deploybot.schema.common import Node, UserError
from deploybot.schema.context import Info
from deploybot.schema.deployments import Deployment, linked_deployment
from deploybot.schema.enums import DeploymentStrategy, WebhookProvider
from deploybot.schema.rollout import (
    DeployHookInput,
    HealthCheckInput,
    RollingUpdateInput,
    rollout_options,
)


@strawberry.enum(description="What a delivery did.")
class WebhookDeliveryOutcome(enum.Enum):
    DEPLOYED = "DEPLOYED"
    IGNORED = "IGNORED"
    REJECTED = "REJECTED"


@strawberry.type(description="A provider's webhook: the pushes it accepts and how they deploy.")
class Webhook(Node):
    id: strawberry.ID
    number: int
    provider: WebhookProvider
    repository: str = strawberry.field(
        description="The repository (owner/name, or a Docker Hub repo_name) it accepts."
    )
    repository_url: str | None = strawberry.field(
        description="Where deploys fetch from (default: the payload's clone URL)."
    )
    application: str
    branches: list[str] = strawberry.field(description="Globs of the branches that deploy.")
    tags: list[str] = strawberry.field(description="Globs of the tags that deploy.")
    options: JSON = strawberry.field(description="The deploy options its events deploy with.")
    path: str = strawberry.field(
        description="The path to give the provider (Docker Hub's includes its token, so it is"
        " only answered when the hook is created)."
    )
    has_public_key: bool
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="The URL to paste into the provider.")
    def url(self, info: Info) -> str:
        return info.context.base_url + self.path

    @strawberry.field(description="Its latest deliveries, newest first.")
    async def deliveries(self, info: Info, first: int = 20) -> list[WebhookDelivery]:
        found = await info.context.backend.webhook_deliveries(self.number, first=first)
        return [WebhookDelivery.from_record(r) for r in found]

    environment: strawberry.Private[str]

    @classmethod
    def from_record(cls, record: WebhookRecord, secret: str | None = None) -> Webhook:
        return cls(
            id=strawberry.ID(encode_id("Webhook", record.environment, record.id)),
            number=record.id,
            provider=WebhookProvider(record.provider),
            repository=record.repository,
            repository_url=record.repository_url,
            application=record.application,
            branches=record.branches,
            tags=record.tags,
            options=JSON(record.options),
            path=hook_path(record.provider, record.id, secret),
            has_public_key=record.has_public_key,
            created_at=record.created_at,
            updated_at=record.updated_at,
            environment=record.environment,
        )


@strawberry.type(description="One verified request a provider made to a webhook.")
class WebhookDelivery:
    id: strawberry.ID
    received_at: datetime
    event: str
    delivery_id: str = strawberry.field(description="The provider's delivery id (de-duplicates).")
    outcome: WebhookDeliveryOutcome
    reason: str | None = strawberry.field(
        description="deployed #N, or why it deployed nothing, or why the deploy was refused."
    )
    payload: JSON = strawberry.field(description="The payload as received.")
    headers: JSON = strawberry.field(description="The headers that matter.")
    deployment_number: strawberry.Private[int | None]
    environment: strawberry.Private[str]

    @strawberry.field(description="The deployment it made.")
    async def deployment(self, info: Info) -> Deployment | None:
        return await linked_deployment(info, self.environment, self.deployment_number)

    @classmethod
    def from_record(cls, record: WebhookDeliveryRecord) -> WebhookDelivery:
        environment = record.environment
        return cls(
            id=strawberry.ID(encode_id("WebhookDelivery", environment, record.id)),
            received_at=record.received_at,
            event=record.event,
            delivery_id=record.delivery_key,
            outcome=WebhookDeliveryOutcome(record.outcome),
            reason=record.reason,
            payload=JSON(record.payload),
            headers=JSON(record.headers),
            deployment_number=record.deployment_id,
            environment=environment,
        )


@strawberry.input(description="How a webhook's events deploy (DeployInput's options).")
class WebhookDeployOptionsInput:
    stack_file: str | None = None
    strategy: DeploymentStrategy = DeploymentStrategy.ROLLING
    queue: bool = strawberry.field(
        default=True, description="Queue behind a deployment under way (the default for hooks)."
    )
    service: str | None = strawberry.field(
        default=None, description="Docker Hub: the service the image deploys to (the app's name)."
    )
    image_repository: str | None = strawberry.field(
        default=None, description="Docker Hub: the image to deploy (the payload's repo_name)."
    )
    rollback_on_failure: bool = True
    rolling_update: RollingUpdateInput | None = None
    canary_period: float | None = None
    health_check_url: str | None = None
    health_check: HealthCheckInput | None = None
    pre_deploy_hooks: list[DeployHookInput] | None = None
    post_deploy_hooks: list[DeployHookInput] | None = None

    def to_core(self) -> WebhookOptions:
        return WebhookOptions(
            stack_file=self.stack_file,
            strategy=self.strategy,
            queue=self.queue,
            service=self.service,
            image_repository=self.image_repository,
            rollout=rollout_options(
                rollback_on_failure=self.rollback_on_failure,
                rolling_update=self.rolling_update,
                canary_period=self.canary_period,
                health_check_url=self.health_check_url,
                health_check=self.health_check,
                pre_deploy_hooks=self.pre_deploy_hooks,
                post_deploy_hooks=self.post_deploy_hooks,
            ),
        )


@strawberry.input
class CreateWebhookInput:
    provider: WebhookProvider
    repository: str = strawberry.field(
        description="owner/name as the provider names it (Docker Hub: the repo_name)."
    )
    application: str
    repository_url: str | None = strawberry.field(
        default=None, description="Fetch from here instead of the payload's clone URL."
    )
    branches: list[str] | None = strawberry.field(default=None, description="Globs (`release/*`).")
    tags: list[str] | None = strawberry.field(
        default=None, description="Globs (`v*`); Docker Hub: image tags (default `*`)."
    )
    deploy: WebhookDeployOptionsInput | None = None
    secret: str | None = strawberry.field(
        default=None, description="Generated when not given; answered once, never again."
    )
    public_key: str | None = strawberry.field(
        default=None, description="Travis CI: its public key (PEM) that signs payloads."
    )
    client_mutation_id: str | None = None

    def to_core(self) -> WebhookRequest:
        return WebhookRequest(
            provider=self.provider.value,
            repository=self.repository,
            application=self.application,
            repository_url=self.repository_url,
            branches=self.branches,
            tags=self.tags,
            options=self.deploy.to_core() if self.deploy else None,
            secret=self.secret,
            public_key=self.public_key,
        )


@strawberry.type
class CreateWebhookPayload:
    webhook: Webhook | None
    secret: str | None = strawberry.field(description="The secret: shown this once only.")
    url: str | None = strawberry.field(description="The URL to paste into the provider.")
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class UpdateWebhookInput:
    id: strawberry.ID
    repository: str | None = None
    repository_url: str | None = None
    application: str | None = None
    branches: list[str] | None = None
    tags: list[str] | None = None
    deploy: WebhookDeployOptionsInput | None = None
    secret: str | None = None
    public_key: str | None = None
    rotate_secret: bool = strawberry.field(
        default=False, description="Generate a new secret (answered once in the payload)."
    )
    client_mutation_id: str | None = None

    def to_core(self) -> WebhookRequest:
        return WebhookRequest(
            repository=self.repository,
            repository_url=self.repository_url,
            application=self.application,
            branches=self.branches,
            tags=self.tags,
            options=self.deploy.to_core() if self.deploy else None,
            secret=self.secret,
            public_key=self.public_key,
            rotate_secret=self.rotate_secret,
        )


@strawberry.type
class UpdateWebhookPayload:
    webhook: Webhook | None
    secret: str | None = strawberry.field(description="The new secret, when it changed.")
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class DeleteWebhookInput:
    id: strawberry.ID
    client_mutation_id: str | None = None


@strawberry.type
class DeleteWebhookPayload:
    deleted_webhook_id: strawberry.ID | None
    user_errors: list[UserError]
    client_mutation_id: str | None
