"""The one GraphQL schema: `deploybot.schema:schema` (exported to `schema.graphql`)."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.types import ExecutionContext

from deploybot.resolvers import deployments, node, rollbacks
from deploybot.schema.common import Node, PublicError
from deploybot.schema.deployments import Deployment, DeploymentConnection, DeployPayload
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


@strawberry.type
class Mutation:
    deploy: DeployPayload = strawberry.mutation(
        resolver=deployments.deploy,
        description="Queue a deployment after checking its source; errors come as userErrors.",
    )
    rollback: RollbackPayload = strawberry.mutation(
        resolver=rollbacks.rollback,
        description="Queue a deployment that puts an earlier deployment's recorded stack back.",
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
    types=[Deployment],
    extensions=[lambda: ParserCache(maxsize=1000), lambda: ValidationCache(maxsize=1000)],
)
