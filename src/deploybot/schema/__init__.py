"""The one GraphQL schema: `deploybot.schema:schema` (exported to `schema.graphql`)."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.types import ExecutionContext

from deploybot.errors import DeploybotError, ErrorCode
from deploybot.outages import DATABASE_UNAVAILABLE_MESSAGE, is_database_unavailable
from deploybot.resolvers import (
    access,
    admission,
    applications,
    deployments,
    node,
    policy,
    rollbacks,
    subscriptions,
)
from deploybot.resolvers import delivery_metrics as metrics_resolvers
from deploybot.resolvers import external_deployments as external_resolvers
from deploybot.resolvers import notifications as notification_resolvers
from deploybot.resolvers import releases as release_resolvers
from deploybot.resolvers import secrets as secret_resolvers
from deploybot.resolvers import webhooks as webhook_resolvers
from deploybot.schema.access import (
    ApiToken,
    AuditEventConnection,
    CreateApiTokenPayload,
    RevokeApiTokenPayload,
    Viewer,
)
from deploybot.schema.admission import CancelDeploymentPayload, DeploymentValidation
from deploybot.schema.applications import Application
from deploybot.schema.common import Node, PublicError
from deploybot.schema.delivery_metrics import DeliveryMetrics
from deploybot.schema.deployments import Deployment, DeploymentConnection, DeployPayload
from deploybot.schema.execution import Executor
from deploybot.schema.external_deployments import (
    AddDeploymentResultPayload,
    AddDeploymentServicesPayload,
    CurrentVersion,
    RecordDeploymentPayload,
    ReportDeploymentStatusPayload,
)
from deploybot.schema.limits import tag_request_error
from deploybot.schema.notifications import (
    CreateNotificationTargetPayload,
    DeleteNotificationTargetPayload,
    NotificationDelivery,
    NotificationTarget,
)
from deploybot.schema.operation_metrics import OperationChecks
from deploybot.schema.permissions import (
    RequiresAdmin,
    RequiresDeploy,
    RequiresRead,
    RequiresRecord,
    RequiresSecrets,
    allowed,
    allowed_mutation,
)
from deploybot.schema.policy import DeployPolicy, UpdateDeployPolicyPayload
from deploybot.schema.releases import PublishReleasePayload, Release, ReleaseConnection
from deploybot.schema.rollbacks import RollbackPayload
from deploybot.schema.secrets import DeleteSecretPayload, KeptSecret, SetSecretPayload
from deploybot.schema.webhooks import (
    CreateWebhookPayload,
    DeleteWebhookPayload,
    UpdateWebhookPayload,
    Webhook,
    WebhookDelivery,
)

logger = logging.getLogger("deploybot.graphql")


@strawberry.type
class Query:
    node: Node | None = strawberry.field(
        resolver=node.node,
        description="Any object by its ID.",
        extensions=allowed(RequiresRead),
    )
    deployment: Deployment | None = strawberry.field(
        extensions=allowed(RequiresRead),
        resolver=deployments.deployment,
        description="One deployment, by global ID or number.",
    )
    deployments: DeploymentConnection = strawberry.field(
        extensions=allowed(RequiresRead),
        resolver=deployments.deployments,
        description="The deployment history, newest first, filtered and keyset-paginated.",
    )
    application: Application | None = strawberry.field(
        extensions=allowed(RequiresRead),
        resolver=applications.application,
        description="An application's state, health, replicas, configuration and events (live).",
    )
    applications: list[Application] = strawberry.field(
        extensions=allowed(RequiresRead),
        resolver=applications.applications,
        description="Every application deployed here or running as a stack on the Swarm.",
    )
    validate_deployment: DeploymentValidation = strawberry.field(
        extensions=allowed(RequiresDeploy),
        resolver=admission.validate_deployment,
        description="Every check of `deploy`, without deploying: valid, issues, warnings.",
    )
    releases: ReleaseConnection = strawberry.field(
        extensions=allowed(RequiresRead),
        resolver=release_resolvers.releases,
        description="The release catalogue, newest release first, filtered and keyset-paginated.",
    )
    latest_release: Release | None = strawberry.field(
        extensions=allowed(RequiresRead),
        resolver=release_resolvers.latest_release,
        description="A component's newest release on a train (by release time or by semver).",
    )
    current_version: list[CurrentVersion] = strawberry.field(
        extensions=allowed(RequiresRead),
        resolver=external_resolvers.current_version,
        description="What version of an application (and of each service) runs, per environment.",
    )
    delivery_metrics: DeliveryMetrics = strawberry.field(
        extensions=allowed(RequiresRead),
        resolver=metrics_resolvers.delivery_metrics,
        description="Deployment frequency, lead time, change failure rate and time to restore.",
    )
    deploy_policy: DeployPolicy = strawberry.field(
        resolver=policy.deploy_policy,
        description="What deployments may do to the nodes (admin only).",
        extensions=allowed(RequiresAdmin),
    )
    secrets: list[KeptSecret] = strawberry.field(
        resolver=secret_resolvers.secrets,
        description="The secrets deploybot keeps for an application: names, versions and "
        "update times, never values (action `secrets` or `admin`).",
        extensions=allowed(RequiresSecrets),
    )
    viewer: Viewer = strawberry.field(
        resolver=access.viewer,
        description="The caller: who they are here and what their token may do.",
        extensions=allowed(RequiresRead),
    )
    api_tokens: list[ApiToken] = strawberry.field(
        resolver=access.api_tokens,
        description="Every API token (admin): names, scopes, expiry, last use; never secrets.",
        extensions=allowed(RequiresAdmin),
    )
    audit_events: AuditEventConnection = strawberry.field(
        resolver=access.audit_events,
        description="The audit trail (admin): who did what, when, how it ended; newest first.",
        extensions=allowed(RequiresAdmin),
    )
    webhooks: list[Webhook] = strawberry.field(
        resolver=webhook_resolvers.webhooks,
        description="The provider webhooks configured here (admin).",
        extensions=allowed(RequiresAdmin),
    )
    webhook_deliveries: list[WebhookDelivery] = strawberry.field(
        resolver=webhook_resolvers.webhook_deliveries,
        description="A webhook's latest deliveries, newest first (admin).",
        extensions=allowed(RequiresAdmin),
    )
    notification_targets: list[NotificationTarget] = strawberry.field(
        resolver=notification_resolvers.notification_targets,
        description="Where deployments' state changes are POSTed (admin).",
        extensions=allowed(RequiresAdmin),
    )
    notification_deliveries: list[NotificationDelivery] = strawberry.field(
        resolver=notification_resolvers.notification_deliveries,
        description="A notification target's latest deliveries and their outcome (admin).",
        extensions=allowed(RequiresAdmin),
    )


@strawberry.type
class Mutation:
    deploy: DeployPayload = strawberry.mutation(
        extensions=allowed_mutation(RequiresDeploy),
        resolver=deployments.deploy,
        description="Queue a deployment after checking its source; errors come as userErrors.",
    )
    cancel_deployment: CancelDeploymentPayload = strawberry.mutation(
        extensions=allowed_mutation(RequiresDeploy),
        resolver=admission.cancel_deployment,
        description="Cancel a queued deployment at once, or ask a running one to stop.",
    )
    rollback: RollbackPayload = strawberry.mutation(
        extensions=allowed_mutation(RequiresDeploy),
        resolver=rollbacks.rollback,
        description="Queue a deployment that puts an earlier deployment's recorded stack back.",
    )

    publish_release: PublishReleasePayload = strawberry.mutation(
        extensions=allowed_mutation(RequiresRecord),
        resolver=release_resolvers.publish_release,
        description="Publish a component's version on a release train.",
    )
    record_deployment: RecordDeploymentPayload = strawberry.mutation(
        extensions=allowed_mutation(RequiresRecord),
        resolver=external_resolvers.record_deployment,
        description="Record a deployment another tool made (deploybot never runs it).",
    )
    report_deployment_status: ReportDeploymentStatusPayload = strawberry.mutation(
        extensions=allowed_mutation(RequiresRecord),
        resolver=external_resolvers.report_deployment_status,
        description="Move a recorded deployment to its next state (its own runner reports).",
    )
    add_deployment_result: AddDeploymentResultPayload = strawberry.mutation(
        extensions=allowed_mutation(RequiresRecord),
        resolver=external_resolvers.add_deployment_result,
        description="Attach a result to a deployment.",
    )
    update_deploy_policy: UpdateDeployPolicyPayload = strawberry.mutation(
        resolver=policy.update_deploy_policy,
        description="Change what deployments may do to the nodes (admin only); stored, so it"
        " holds across restarts and for every process sharing the database.",
        extensions=allowed_mutation(RequiresAdmin),
    )
    set_secret: SetSecretPayload = strawberry.mutation(
        resolver=secret_resolvers.set_secret,
        description="Store a new value of a secret deploybot keeps (encrypted); the next "
        "deployment rolls it out (action `secrets` or `admin`).",
        extensions=allowed_mutation(RequiresSecrets),
    )
    delete_secret: DeleteSecretPayload = strawberry.mutation(
        resolver=secret_resolvers.delete_secret,
        description="Forget a kept secret (action `secrets` or `admin`).",
        extensions=allowed_mutation(RequiresSecrets),
    )
    add_deployment_services: AddDeploymentServicesPayload = strawberry.mutation(
        resolver=external_resolvers.add_deployment_services,
        description="Add services (packages: versions, hosts, durations) to a recorded"
        " deployment afterwards.",
        extensions=allowed_mutation(RequiresRecord),
    )
    create_api_token: CreateApiTokenPayload = strawberry.mutation(
        resolver=access.create_api_token,
        description="Create an API token (admin); its text is in the payload, once.",
        extensions=allowed_mutation(RequiresAdmin),
    )
    revoke_api_token: RevokeApiTokenPayload = strawberry.mutation(
        resolver=access.revoke_api_token,
        description="Revoke an API token (admin); servers refuse it within seconds.",
        extensions=allowed_mutation(RequiresAdmin),
    )
    create_webhook: CreateWebhookPayload = strawberry.mutation(
        resolver=webhook_resolvers.create_webhook,
        description="Configure a provider webhook; its secret is answered this once (admin).",
        extensions=allowed_mutation(RequiresAdmin),
    )
    update_webhook: UpdateWebhookPayload = strawberry.mutation(
        resolver=webhook_resolvers.update_webhook,
        description="Change a webhook's configuration, or rotate its secret (admin).",
        extensions=allowed_mutation(RequiresAdmin),
    )
    delete_webhook: DeleteWebhookPayload = strawberry.mutation(
        resolver=webhook_resolvers.delete_webhook,
        description="Remove a webhook and its deliveries (admin).",
        extensions=allowed_mutation(RequiresAdmin),
    )
    create_notification_target: CreateNotificationTargetPayload = strawberry.mutation(
        resolver=notification_resolvers.create_notification_target,
        description="POST each matching deployment state change to a URL, signed (admin).",
        extensions=allowed_mutation(RequiresAdmin),
    )
    delete_notification_target: DeleteNotificationTargetPayload = strawberry.mutation(
        resolver=notification_resolvers.delete_notification_target,
        description="Stop notifying a URL (its pending deliveries are dropped) (admin).",
        extensions=allowed_mutation(RequiresAdmin),
    )


@strawberry.type
class Subscription:
    deployment_logs = strawberry.subscription(
        extensions=allowed(RequiresRead),
        resolver=subscriptions.deployment_logs,
        description="The stored lines (after `after`), then new ones live, in chunks; "
        "completes when the deployment has ended and every line was sent.",
    )
    deployment_progress = strawberry.subscription(
        extensions=allowed(RequiresRead),
        resolver=subscriptions.deployment_progress,
        description="Where the deployment is now, then each change; completes when it ends.",
    )
    deployment_events = strawberry.subscription(
        extensions=allowed(RequiresRead),
        resolver=subscriptions.deployment_events,
        description="Every deployment created or changing state that matches the filter.",
    )
    application_logs = strawberry.subscription(
        extensions=allowed(RequiresRead),
        resolver=subscriptions.application_logs,
        description="The live logs of an application's running services.",
    )


class Schema(strawberry.Schema):
    """Masks unexpected errors in place while logging them.

    The same as Strawberry's MaskErrors extension, without an extension's
    per-request cost: GraphQL's own errors and PublicError are shown,
    anything else is a bug and becomes "Internal server error".
    """

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for index, error in enumerate(errors):
            original = error.original_error
            if isinstance(original, DeploybotError):
                original = PublicError.from_exception(original)
            if isinstance(original, PublicError) and original.code:
                errors[index] = GraphQLError(
                    error.message,
                    nodes=error.nodes,
                    path=error.path,
                    original_error=original,
                    extensions={**(error.extensions or {}), **original.extensions},
                )
                continue
            if original is None or isinstance(original, GraphQLError):
                # GraphQL's own errors (a variable's value its type cannot represent).
                errors[index] = tag_request_error(
                    error if original is None else _public(error, original)
                )
                continue
            if isinstance(original, PublicError):
                continue
            if is_database_unavailable(original):
                logger.warning("database unavailable in %s: %s", error.path, original)
                errors[index] = GraphQLError(
                    DATABASE_UNAVAILABLE_MESSAGE,
                    nodes=error.nodes,
                    path=error.path,
                    extensions={"code": ErrorCode.DATABASE_UNAVAILABLE.value},
                )
                continue
            logger.error("unexpected error in %s", error.path, exc_info=original)
            errors[index] = GraphQLError(
                "Internal server error", nodes=error.nodes, path=error.path
            )


def _public(error: GraphQLError, original: GraphQLError) -> GraphQLError:
    return GraphQLError(
        error.message, nodes=error.nodes, path=error.path, extensions=original.extensions
    )


def build_schema(*extra: type[SchemaExtension]) -> Schema:
    """The schema; the relay's adds extensions (the SDL is the same)."""
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Deployment, Release, Webhook],
        execution_context_class=Executor,
        extensions=[
            OperationChecks,
            lambda: ParserCache(maxsize=1000),
            lambda: ValidationCache(maxsize=1000),
            *extra,
        ],
    )


schema = build_schema()
