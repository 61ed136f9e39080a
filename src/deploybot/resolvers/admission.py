"""Validating deploy requests and cancelling deployments."""

from __future__ import annotations

from deploybot.errors import DeploybotError
from deploybot.resolvers.deployments import field_ref
from deploybot.schema.admission import (
    CancelDeploymentInput,
    CancelDeploymentPayload,
    DeploymentValidation,
)
from deploybot.schema.common import UserError
from deploybot.schema.context import Info
from deploybot.schema.deployments import DeployInput, Deployment


async def validate_deployment(info: Info, input: DeployInput) -> DeploymentValidation:
    report = await info.context.backend.validate_deployment(input.to_core(original={}))
    return DeploymentValidation.of(report)


async def cancel_deployment(info: Info, input: CancelDeploymentInput) -> CancelDeploymentPayload:
    try:
        ref = field_ref(input.id, "id", f"deployment {input.id} is not one of this environment's")
        record = await info.context.backend.cancel_deployment(ref)
    except DeploybotError as exc:
        return CancelDeploymentPayload(
            deployment=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return CancelDeploymentPayload(
        deployment=Deployment.from_record(record, info.context.base_url),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )
