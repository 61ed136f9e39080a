"""The one GraphQL schema: `deploybot.schema:schema` (exported to `schema.graphql`)."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, ParserCache, ValidationCache

from deploybot.resolvers import deployments, node
from deploybot.schema.common import Node, PublicError
from deploybot.schema.deployments import DeployPayload, Deployment, DeploymentConnection

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


def _should_mask(error: GraphQLError) -> bool:
    """Show GraphQL's own errors and PublicError; mask everything unexpected."""
    original = error.original_error
    return original is not None and not isinstance(original, PublicError)


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    types=[Deployment],
    extensions=[
        ParserCache(maxsize=1000),
        ValidationCache(maxsize=1000),
        MaskErrors(should_mask_error=_should_mask, error_message="Internal server error"),
    ],
)
