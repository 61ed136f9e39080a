"""Validating deploy requests and cancelling deployments."""

from __future__ import annotations

from deploybot.core import admission
from deploybot.core import deployments as core
from deploybot.core.validation import validate_deployment as validate
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.resolvers.deployments import deployment_number
from deploybot.schema.admission import (
    CancelDeploymentInput,
    CancelDeploymentPayload,
    DeploymentValidation,
)
from deploybot.schema.common import UserError
from deploybot.schema.context import Info
from deploybot.schema.deployments import DeployInput, Deployment


async def validate_deployment(info: Info, input: DeployInput) -> DeploymentValidation:
    services = info.context.services
    report = await validate(
        services.db,
        services.settings,
        services.inspector,
        services.swarm,
        input.to_core(original={}),  # nothing is recorded
    )
    return DeploymentValidation.of(report)


async def cancel_deployment(info: Info, input: CancelDeploymentInput) -> CancelDeploymentPayload:
    services = info.context.services
    number = deployment_number(input.id, services.settings.environment)
    try:
        if number is None:
            raise DeploybotError(
                ErrorCode.DEPLOYMENT_NOT_FOUND,
                f"deployment {input.id} is not one of this environment's",
                field="id",
            )
        await admission.cancel_deployment(services.db, services.bus, number)
    except DeploybotError as exc:
        return CancelDeploymentPayload(
            deployment=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    row = await core.get_deployment(services.db, number)
    return CancelDeploymentPayload(
        deployment=Deployment.from_row(row, info.context.base_url) if row else None,
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )
