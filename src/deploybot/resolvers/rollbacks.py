"""The `rollback` mutation."""

from __future__ import annotations

from deploybot.errors import DeploybotError, ValidationFailed
from deploybot.inputs import RollbackRequest
from deploybot.resolvers.deployments import field_ref
from deploybot.schema.common import UserError
from deploybot.schema.context import Info
from deploybot.schema.deployments import Deployment
from deploybot.schema.rollbacks import RollbackInput, RollbackPayload
from deploybot.schema.rollout import plain


async def rollback(info: Info, input: RollbackInput) -> RollbackPayload:
    original = {
        key: plain(value)
        for key, value in (
            ("application", input.application),
            ("environment", input.environment),
            ("version", input.version),
            ("deploymentId", input.deployment_id),
            ("description", input.description),
        )
        if value is not None
    }
    try:
        ref = None
        if input.deployment_id is not None:
            ref = field_ref(
                input.deployment_id,
                "deploymentId",
                f"{input.deployment_id} is not a deployment of this environment",
            )
        record = await info.context.backend.rollback(
            RollbackRequest(
                application=input.application,
                environment=input.environment,
                version=input.version,
                deployment=ref,
                description=input.description,
                original_request=original,
            )
        )
    except (DeploybotError, ValidationFailed) as exc:
        return RollbackPayload(
            deployment=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return RollbackPayload(
        deployment=Deployment.from_record(record, info.context.base_url),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )
