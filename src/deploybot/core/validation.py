"""Dry run of `deploy` (seed 002's validate): every check deploy makes, nothing written.

A request is valid exactly when `deploy` would accept it now (as Kubernetes' server-side
dry run answers); problems that would not stop it (settings Swarm ignores, a queued request
that would wait or supersede another) are warnings.
"""

from __future__ import annotations

from deploybot.config import Settings
from deploybot.core import admission
from deploybot.core.applications import check_dependencies
from deploybot.core.inspectors import SourceInspector, SwarmInspector
from deploybot.core.policy_store import current_policy
from deploybot.core.requests import application_of, check_request, inspect_source
from deploybot.db.engine import Database
from deploybot.domain import DeploymentState
from deploybot.errors import DeploybotError, ValidationFailed
from deploybot.inputs import DeployRequest
from deploybot.records import Issue, Severity, ValidationReport


class _Issues(list[Issue]):
    def error(self, exc: DeploybotError | ValidationFailed) -> None:
        for e in exc.errors if isinstance(exc, ValidationFailed) else [exc]:
            self.append(Issue(e.field, e.message, Severity.ERROR, e.code))

    def warn(self, field_name: str | None, message: str) -> None:
        self.append(Issue(field_name, message, Severity.WARNING))


async def validate_deployment(
    db: Database,
    settings: Settings,
    inspector: SourceInspector,
    swarm: SwarmInspector,
    request: DeployRequest,
) -> ValidationReport:
    issues = _Issues()
    try:
        check_request(request, settings)
    except ValidationFailed as exc:
        issues.error(exc)
        issues.warn(None, "the source was not checked: fix the fields above first")
        return ValidationReport(list(issues))
    environment = settings.environment
    application = application_of(request)
    try:
        replayed = await admission.replay(db, environment, request)
    except DeploybotError as exc:
        issues.error(exc)
        replayed = None
    if replayed is not None:
        issues.warn(
            "idempotencyKey",
            f"this key already created deployment #{replayed}: deploy would answer it again",
        )
        return ValidationReport(list(issues))
    active = await admission.active_deployments(db, application, environment)
    if active and not request.queue:
        issues.error(admission.in_progress_error(application, active))
    elif active:
        waiting = [f"#{row.id}" for row in active if row.state is DeploymentState.QUEUED]
        issues.warn(
            "queue",
            f"would wait behind #{active[0].id}"
            + (f" and supersede {', '.join(waiting)}" if waiting else ""),
        )
    if request.dependencies:
        try:
            await check_dependencies(db, swarm, environment, request.dependencies)
        except DeploybotError as exc:
            issues.error(exc)
    policy = (await current_policy(db, settings)).policy
    try:
        prepared = await inspect_source(settings, inspector, request, application, policy)
    except (DeploybotError, ValidationFailed) as exc:
        issues.error(exc)
    else:
        for warning in prepared.warnings:
            issues.warn("stackFile", warning)
    return ValidationReport(list(issues))
