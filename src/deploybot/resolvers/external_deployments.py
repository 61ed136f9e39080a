"""Mutations of deployments made by other tools, and the current-version query."""

from __future__ import annotations

import dataclasses
from typing import Any

from deploybot.errors import DeploybotError, ValidationFailed
from deploybot.resolvers.deployments import field_ref
from deploybot.schema.common import UserError
from deploybot.schema.context import Info
from deploybot.schema.deployments import Deployment, DeploymentResult, ServiceRollout
from deploybot.schema.external_deployments import (
    AddDeploymentResultInput,
    AddDeploymentResultPayload,
    AddDeploymentServicesInput,
    AddDeploymentServicesPayload,
    CurrentVersion,
    RecordDeploymentInput,
    RecordDeploymentPayload,
    ReportDeploymentStatusInput,
    ReportDeploymentStatusPayload,
)
from deploybot.schema.rollout import camel_keys, plain


def _as_sent(input: RecordDeploymentInput) -> dict[str, Any]:
    """The recording as the tool sent it (fields it left out are left out)."""
    sent: dict[str, Any] = camel_keys(plain(dataclasses.asdict(input)))  # type: ignore[call-overload]
    return sent


async def record_deployment(info: Info, input: RecordDeploymentInput) -> RecordDeploymentPayload:
    request = input.to_core()
    request.original_request = _as_sent(input)
    try:
        record = await info.context.backend.record_deployment(request)
    except (DeploybotError, ValidationFailed) as exc:
        return RecordDeploymentPayload(
            deployment=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return RecordDeploymentPayload(
        deployment=Deployment.from_record(record, info.context.base_url),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def report_deployment_status(
    info: Info, input: ReportDeploymentStatusInput
) -> ReportDeploymentStatusPayload:
    try:
        ref = field_ref(input.id, "id", f"no deployment {input.id} here")
        record = await info.context.backend.report_deployment_status(
            ref, input.state, input.message
        )
    except DeploybotError as exc:
        return ReportDeploymentStatusPayload(
            deployment=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return ReportDeploymentStatusPayload(
        deployment=Deployment.from_record(record, info.context.base_url),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def add_deployment_result(
    info: Info, input: AddDeploymentResultInput
) -> AddDeploymentResultPayload:
    try:
        ref = field_ref(input.id, "id", f"no deployment {input.id} here")
        record, result = await info.context.backend.add_deployment_result(ref, input.result)
    except DeploybotError as exc:
        return AddDeploymentResultPayload(
            deployment=None,
            result=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return AddDeploymentResultPayload(
        deployment=Deployment.from_record(record, info.context.base_url),
        result=DeploymentResult.from_record(result),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def current_version(
    info: Info, application: str, environment: str | None = None
) -> list[CurrentVersion]:
    found = await info.context.backend.current_versions(application, environment)
    return [CurrentVersion.from_record(f) for f in found]


async def add_deployment_services(
    info: Info, input: AddDeploymentServicesInput
) -> AddDeploymentServicesPayload:
    backend = info.context.backend
    try:
        ref = field_ref(input.id, "id", f"no deployment {input.id} here")
        services = await backend.add_recorded_services(ref, [s.to_core() for s in input.services])
        record = await backend.deployment(ref)
    except (DeploybotError, ValidationFailed) as exc:
        return AddDeploymentServicesPayload(
            deployment=None,
            services=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return AddDeploymentServicesPayload(
        deployment=Deployment.from_record(record, info.context.base_url) if record else None,
        services=[ServiceRollout.from_record(s) for s in services],
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )
