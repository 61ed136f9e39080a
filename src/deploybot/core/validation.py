"""Dry run of `deploy` (seed 002's validate): every check deploy makes, nothing written.

A request is valid exactly when `deploy` would accept it now (as Kubernetes' server-side
dry run answers); problems that would not stop it (settings Swarm ignores, a queued request
that would wait or supersede another) are warnings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from deploybot.config import Settings
from deploybot.core import admission
from deploybot.core.applications import SwarmInspector, check_dependencies
from deploybot.core.deployments import (
    DeployRequest,
    SourceInspector,
    application_of,
    check_request,
    inspect_source,
)
from deploybot.db.engine import Database
from deploybot.domain import DeploymentState
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed


class Severity(enum.Enum):
    ERROR = "ERROR"
    WARNING = "WARNING"


@dataclass(frozen=True)
class Issue:
    field: str | None
    message: str
    severity: Severity
    code: ErrorCode | None = None


@dataclass
class ValidationReport:
    issues: list[Issue] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not any(i.severity is Severity.ERROR for i in self.issues)

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity is Severity.WARNING]

    def error(self, exc: DeploybotError | ValidationFailed) -> None:
        for e in exc.errors if isinstance(exc, ValidationFailed) else [exc]:
            self.issues.append(Issue(e.field, e.message, Severity.ERROR, e.code))

    def warn(self, field_name: str | None, message: str) -> None:
        self.issues.append(Issue(field_name, message, Severity.WARNING))


async def validate_deployment(
    db: Database,
    settings: Settings,
    inspector: SourceInspector,
    swarm: SwarmInspector,
    request: DeployRequest,
) -> ValidationReport:
    report = ValidationReport()
    try:
        check_request(request, settings)
    except ValidationFailed as exc:
        report.error(exc)
        report.warn(None, "the source was not checked: fix the fields above first")
        return report
    environment = settings.environment
    application = application_of(request)
    try:
        replayed = await admission.replay(db, environment, request)
    except DeploybotError as exc:
        report.error(exc)
        replayed = None
    if replayed is not None:
        report.warn(
            "idempotencyKey",
            f"this key already created deployment #{replayed}: deploy would answer it again",
        )
        return report
    active = await admission.active_deployments(db, application, environment)
    if active and not request.queue:
        report.error(admission.in_progress_error(application, active))
    elif active:
        waiting = [f"#{row.id}" for row in active if row.state is DeploymentState.QUEUED]
        report.warn(
            "queue",
            f"would wait behind #{active[0].id}"
            + (f" and supersede {', '.join(waiting)}" if waiting else ""),
        )
    if request.dependencies:
        try:
            await check_dependencies(db, swarm, environment, request.dependencies)
        except DeploybotError as exc:
            report.error(exc)
    try:
        prepared = await inspect_source(settings, inspector, request, application)
    except (DeploybotError, ValidationFailed) as exc:
        report.error(exc)
    else:
        for warning in prepared.warnings:
            report.warn("stackFile", warning)
    return report
