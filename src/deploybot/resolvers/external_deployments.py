"""Mutations of deployments made by other tools, and the current-version query."""

from __future__ import annotations

import dataclasses
from typing import Any

from deploybot.core import current_versions as versions_core
from deploybot.core import external_deployments as core
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.resolvers.deployments import deployment_number
from deploybot.schema.common import PublicError, UserError
from deploybot.schema.context import Info
from deploybot.schema.deployments import Deployment, DeploymentResult
from deploybot.schema.external_deployments import (
    AddDeploymentResultInput,
    AddDeploymentResultPayload,
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


def _number(info: Info, value: str) -> int:
    """A deployment of this environment, by global ID or number; else a field error."""
    try:
        number = deployment_number(value, info.context.settings.environment)
    except PublicError as exc:
        raise DeploybotError(ErrorCode.INVALID_INPUT, str(exc), field="id") from exc
    if number is None:
        raise DeploybotError(
            ErrorCode.DEPLOYMENT_NOT_FOUND, f"no deployment {value} here", field="id"
        )
    return number


async def record_deployment(info: Info, input: RecordDeploymentInput) -> RecordDeploymentPayload:
    services = info.context.services
    request = input.to_core()
    request.original_request = _as_sent(input)
    try:
        row = await core.record_deployment(services.db, services.bus, services.settings, request)
    except (DeploybotError, ValidationFailed) as exc:
        return RecordDeploymentPayload(
            deployment=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return RecordDeploymentPayload(
        deployment=Deployment.from_row(row, info.context.base_url),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def report_deployment_status(
    info: Info, input: ReportDeploymentStatusInput
) -> ReportDeploymentStatusPayload:
    services = info.context.services
    try:
        row = await core.report_status(
            services.db,
            services.bus,
            services.settings,
            _number(info, input.id),
            input.state,
            input.message,
        )
    except DeploybotError as exc:
        return ReportDeploymentStatusPayload(
            deployment=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return ReportDeploymentStatusPayload(
        deployment=Deployment.from_row(row, info.context.base_url),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def add_deployment_result(
    info: Info, input: AddDeploymentResultInput
) -> AddDeploymentResultPayload:
    services = info.context.services
    try:
        row, result = await core.add_result(
            services.db, services.bus, _number(info, input.id), input.result
        )
    except DeploybotError as exc:
        return AddDeploymentResultPayload(
            deployment=None,
            result=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return AddDeploymentResultPayload(
        deployment=Deployment.from_row(row, info.context.base_url),
        result=DeploymentResult.from_row(result),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def current_version(
    info: Info, application: str, environment: str | None = None
) -> list[CurrentVersion]:
    found = await versions_core.current_versions(info.context.db, application, environment)
    return [CurrentVersion.from_core(f) for f in found]
