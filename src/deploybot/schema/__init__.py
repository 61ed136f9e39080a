"""The one GraphQL schema: `deploybot.schema:schema` (exported to `schema.graphql`)."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.types import ExecutionContext

from deploybot.errors import DeploybotError
from deploybot.resolvers import (
    admission,
    applications,
    deployments,
    node,
    rollbacks,
    subscriptions,
)
from deploybot.resolvers import delivery_metrics as metrics_resolvers
from deploybot.resolvers import external_deployments as external_resolvers
from deploybot.resolvers import releases as release_resolvers
from deploybot.schema.admission import CancelDeploymentPayload, DeploymentValidation
from deploybot.schema.applications import Application
from deploybot.schema.common import Node, PublicError
from deploybot.schema.delivery_metrics import DeliveryMetrics
from deploybot.schema.deployments import Deployment, DeploymentConnection, DeployPayload
from deploybot.schema.execution import Executor
from deploybot.schema.external_deployments import (
    AddDeploymentResultPayload,
    CurrentVersion,
    RecordDeploymentPayload,
    ReportDeploymentStatusPayload,
)
from deploybot.schema.limits import QueryLimitsExtension, tag_request_error
from deploybot.schema.releases import PublishReleasePayload, Release, ReleaseConnection
from deploybot.schema.rollbacks import RollbackPayload

logger = logging.getLogger("deploybot.graphql")


@strawberry.type
class Query:
    node: Node | None = strawberry.field(resolver=node.node, description="Any object by its ID.")
    deployment: Deployment | None = strawberry.field(
        resolver=deployments.deployment, description="One deployment, by global ID or number."
    )
    deployments: DeploymentConnection = strawberry.field(
        resolver=deployments.deployments,
        description="The deployment history, newest first, filtered and keyset-paginated.",
    )
    application: Application | None = strawberry.field(
        resolver=applications.application,
        description="An application's state, health, replicas, configuration and events (live).",
    )
    applications: list[Application] = strawberry.field(
        resolver=applications.applications,
        description="Every application deployed here or running as a stack on the Swarm.",
    )
    validate_deployment: DeploymentValidation = strawberry.field(
        resolver=admission.validate_deployment,
        description="Every check of `deploy`, without deploying: valid, issues, warnings.",
    )
    releases: ReleaseConnection = strawberry.field(
        resolver=release_resolvers.releases,
        description="The release catalogue, newest release first, filtered and keyset-paginated.",
    )
    latest_release: Release | None = strawberry.field(
        resolver=release_resolvers.latest_release,
        description="A component's newest release on a train (by release time or by semver).",
    )
    current_version: list[CurrentVersion] = strawberry.field(
        resolver=external_resolvers.current_version,
        description="What version of an application (and of each service) runs, per environment.",
    )
    delivery_metrics: DeliveryMetrics = strawberry.field(
        resolver=metrics_resolvers.delivery_metrics,
        description="Deployment frequency, lead time, change failure rate and time to restore.",
    )


@strawberry.type
class Mutation:
    deploy: DeployPayload = strawberry.mutation(
        resolver=deployments.deploy,
        description="Queue a deployment after checking its source; errors come as userErrors.",
    )
    cancel_deployment: CancelDeploymentPayload = strawberry.mutation(
        resolver=admission.cancel_deployment,
        description="Cancel a queued deployment at once, or ask a running one to stop.",
    )
    rollback: RollbackPayload = strawberry.mutation(
        resolver=rollbacks.rollback,
        description="Queue a deployment that puts an earlier deployment's recorded stack back.",
    )

    publish_release: PublishReleasePayload = strawberry.mutation(
        resolver=release_resolvers.publish_release,
        description="Publish a component's version on a release train.",
    )
    record_deployment: RecordDeploymentPayload = strawberry.mutation(
        resolver=external_resolvers.record_deployment,
        description="Record a deployment another tool made (deploybot never runs it).",
    )
    report_deployment_status: ReportDeploymentStatusPayload = strawberry.mutation(
        resolver=external_resolvers.report_deployment_status,
        description="Move a recorded deployment to its next state (its own runner reports).",
    )
    add_deployment_result: AddDeploymentResultPayload = strawberry.mutation(
        resolver=external_resolvers.add_deployment_result,
        description="Attach a result to a deployment.",
    )


@strawberry.type
class Subscription:
    deployment_logs = strawberry.subscription(
        resolver=subscriptions.deployment_logs,
        description="The stored lines (after `after`), then new ones live, in chunks; "
        "completes when the deployment has ended and every line was sent.",
    )
    deployment_progress = strawberry.subscription(
        resolver=subscriptions.deployment_progress,
        description="Where the deployment is now, then each change; completes when it ends.",
    )
    deployment_events = strawberry.subscription(
        resolver=subscriptions.deployment_events,
        description="Every deployment created or changing state that matches the filter.",
    )
    application_logs = strawberry.subscription(
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
            logger.error("unexpected error in %s", error.path, exc_info=original)
            errors[index] = GraphQLError(
                "Internal server error", nodes=error.nodes, path=error.path
            )


def _public(error: GraphQLError, original: GraphQLError) -> GraphQLError:
    return GraphQLError(
        error.message, nodes=error.nodes, path=error.path, extensions=original.extensions
    )


schema = Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[Deployment, Release],
    execution_context_class=Executor,
    extensions=[
        QueryLimitsExtension,
        lambda: ParserCache(maxsize=1000),
        lambda: ValidationCache(maxsize=1000),
    ],
)
