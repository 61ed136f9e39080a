"""The one GraphQL schema: `deploybot.schema:schema` (exported to `schema.graphql`)."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.types import ExecutionContext

from deploybot.resolvers import delivery_metrics as metrics_resolvers
from deploybot.resolvers import deployments, node
from deploybot.resolvers import external_deployments as external_resolvers
from deploybot.resolvers import releases as release_resolvers
from deploybot.schema.common import Node, PublicError
from deploybot.schema.delivery_metrics import DeliveryMetrics
from deploybot.schema.deployments import Deployment, DeploymentConnection, DeployPayload
from deploybot.schema.external_deployments import (
    AddDeploymentResultPayload,
    CurrentVersion,
    RecordDeploymentPayload,
    ReportDeploymentStatusPayload,
)
from deploybot.schema.releases import PublishReleasePayload, Release, ReleaseConnection

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
            if original is None or isinstance(original, PublicError):
                continue
            logger.error("unexpected error in %s", error.path, exc_info=original)
            errors[index] = GraphQLError(
                "Internal server error", nodes=error.nodes, path=error.path
            )


schema = Schema(
    query=Query,
    mutation=Mutation,
    types=[Deployment, Release],
    extensions=[lambda: ParserCache(maxsize=1000), lambda: ValidationCache(maxsize=1000)],
)
