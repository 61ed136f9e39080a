"""The `rollback` mutation."""

from __future__ import annotations

from deploybot.core import rollbacks as core
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.resolvers.deployments import deployment_number
from deploybot.schema.common import PublicError, UserError
from deploybot.schema.context import Info
from deploybot.schema.deployments import Deployment
from deploybot.schema.rollbacks import RollbackInput, RollbackPayload
from deploybot.schema.rollout import plain


def _failed(input: RollbackInput, exc: DeploybotError | ValidationFailed) -> RollbackPayload:
    return RollbackPayload(
        deployment=None,
        user_errors=UserError.from_exception(exc),
        client_mutation_id=input.client_mutation_id,
    )


async def rollback(info: Info, input: RollbackInput) -> RollbackPayload:
    services = info.context.services
    number = None
    if input.deployment_id is not None:
        try:
            number = deployment_number(input.deployment_id, services.settings.environment)
        except PublicError as exc:
            return _failed(
                input, DeploybotError(ErrorCode.INVALID_INPUT, str(exc), field="deploymentId")
            )
        if number is None:
            return _failed(
                input,
                DeploybotError(
                    ErrorCode.DEPLOYMENT_NOT_FOUND,
                    f"{input.deployment_id} is not a deployment of this environment",
                    field="deploymentId",
                ),
            )
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
        row = await core.create_rollback(
            services.db,
            services.bus,
            services.settings,
            services.inspector,
            core.RollbackRequest(
                application=input.application,
                environment=input.environment,
                version=input.version,
                deployment_id=number,
                description=input.description,
                original_request=original,
            ),
        )
    except (DeploybotError, ValidationFailed) as exc:
        return _failed(input, exc)
    return RollbackPayload(
        deployment=Deployment.from_row(row, info.context.base_url),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )
