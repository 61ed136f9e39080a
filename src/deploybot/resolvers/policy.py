"""The deploy policy: read and edited by admins."""

from __future__ import annotations

from deploybot.core.policy import PolicyError
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.schema.common import PublicError, UserError
from deploybot.schema.context import Info
from deploybot.schema.policy import DeployPolicy, UpdateDeployPolicyInput, UpdateDeployPolicyPayload


async def deploy_policy(info: Info) -> DeployPolicy:
    try:
        stored = await info.context.backend.deploy_policy()
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc
    return DeployPolicy.of(stored)


async def update_deploy_policy(
    info: Info, input: UpdateDeployPolicyInput
) -> UpdateDeployPolicyPayload:
    try:
        try:
            change = input.to_core()
        except PolicyError as exc:
            raise DeploybotError(ErrorCode.INVALID_INPUT, str(exc), field="publishedPorts") from exc
        stored = await info.context.backend.update_deploy_policy(change)
    except DeploybotError as exc:
        return UpdateDeployPolicyPayload(
            deploy_policy=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return UpdateDeployPolicyPayload(
        deploy_policy=DeployPolicy.of(stored),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )
