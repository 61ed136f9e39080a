"""GraphQL input and payload of the `rollback` mutation."""

from __future__ import annotations

import strawberry

from deploybot.schema.common import UserError
from deploybot.schema.deployments import Deployment


@strawberry.input(
    description="Restore an earlier deployment of an application: by deploymentId, by version,"
    " or (neither) its previous successful deployment."
)
class RollbackInput:
    application: str
    environment: str | None = strawberry.field(
        default=None, description="Defaults to this instance's environment; no other is accepted."
    )
    version: str | None = strawberry.field(
        default=None, description="The newest successful deployment of this version."
    )
    deployment_id: strawberry.ID | None = strawberry.field(
        default=None, description="A global ID, or the deployment's number."
    )
    description: str | None = None
    client_mutation_id: str | None = None


@strawberry.type
class RollbackPayload:
    deployment: Deployment | None = strawberry.field(
        description="The rollback deployment (trigger ROLLBACK), queued."
    )
    user_errors: list[UserError]
    client_mutation_id: str | None
