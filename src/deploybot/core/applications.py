"""Applications as they run now (seed 002's status and health check): what deploybot recorded
(current version and deployment, recent deployments) joined with what the Swarm reports live
(services of the stack, their tasks and containers' health checks).

The live half comes through `SwarmInspector`, implemented by the runner, so nothing above the
core talks to Docker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from deploybot.core.inspectors import SwarmInspector
from deploybot.db.engine import Database
from deploybot.db.models import application_table, deployment_table
from deploybot.domain import ApplicationState, DeploymentState, DeploymentTrigger, Health
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.records import (
    ApplicationEvent,
    ApplicationStatus,
    EventType,
    HealthReport,
    LiveService,
    Replicas,
)

RECENT_DEPLOYMENTS = 10
MAX_EVENTS = 50


def overall_health(services: Sequence[LiveService]) -> Health:
    """Every service healthy: HEALTHY; none: UNHEALTHY; some: DEGRADED; no services: UNKNOWN."""
    if not services:
        return Health.UNKNOWN
    states = {s.health for s in services}
    if states == {Health.HEALTHY}:
        return Health.HEALTHY
    if states == {Health.UNHEALTHY}:
        return Health.UNHEALTHY
    return Health.DEGRADED


def _state(
    health: Health, recent: list[Any], recorded: ApplicationState | None
) -> ApplicationState:
    """Deploying while a deployment runs; else what the Swarm shows, except that a failed
    rollout (the last deployment changed the Swarm and failed) stays FAILED until healthy."""
    running = [d for d in recent if d.state is DeploymentState.IN_PROGRESS]
    if running:
        rollback = running[0].trigger is DeploymentTrigger.ROLLBACK
        return ApplicationState.ROLLING_BACK if rollback else ApplicationState.DEPLOYING
    if health is Health.HEALTHY:
        return ApplicationState.HEALTHY
    last = next((d for d in recent if d.state.is_final), None)
    failed = last is not None and last.state in (DeploymentState.FAILURE, DeploymentState.ERROR)
    if failed and recorded is ApplicationState.FAILED:
        return ApplicationState.FAILED
    if health in (Health.UNHEALTHY, Health.DEGRADED):
        return ApplicationState.UNHEALTHY
    return ApplicationState.UNKNOWN


def _deployment_events(rows: list[Any]) -> list[ApplicationEvent]:
    events = []
    for d in rows:
        source = f"deployment #{d.id}"
        version = d.version or "?"
        events.append(ApplicationEvent(d.created_at, EventType.INFO, f"{version} queued", source))
        if d.started_at:
            events.append(
                ApplicationEvent(d.started_at, EventType.INFO, f"{version} started", source)
            )
        if d.finished_at:
            kind = {
                DeploymentState.SUCCESS: EventType.INFO,
                DeploymentState.INACTIVE: EventType.INFO,
                DeploymentState.CANCELLED: EventType.WARNING,
            }.get(d.state, EventType.ERROR)
            # INACTIVE was a success until a newer one replaced it.
            ended = "SUCCESS" if d.state is DeploymentState.INACTIVE else d.state.value
            detail = f": {d.error_message}" if d.error_message else ""
            events.append(
                ApplicationEvent(d.finished_at, kind, f"{version} {ended}{detail}", source)
            )
    return events


async def application_status(
    db: Database, swarm: SwarmInspector, name: str, environment: str
) -> ApplicationStatus | None:
    """The application's state, health, replicas, configuration and events; None if deploybot
    never heard of it and the Swarm runs no stack of that name."""
    async with db.connection() as connection:
        app = (
            await connection.execute(
                select(application_table).where(
                    application_table.c.name == name, application_table.c.environment == environment
                )
            )
        ).first()
        c = deployment_table.c
        recent = list(
            (
                await connection.execute(
                    select(
                        c.id,
                        c.state,
                        c.trigger,
                        c.version,
                        c.error_message,
                        c.created_at,
                        c.started_at,
                        c.finished_at,
                    )
                    .where(c.application == name, c.environment == environment)
                    .order_by(c.id.desc())
                    .limit(RECENT_DEPLOYMENTS)
                )
            ).all()
        )
    live = await swarm.stack(name)
    if app is None and not recent and not live.services:
        return None
    health = overall_health(live.services)
    replicas = sum((s.replicas for s in live.services), Replicas())
    events = _deployment_events(recent) + [e for s in live.services for e in s.events]
    events.sort(key=lambda e: e.timestamp, reverse=True)
    unwell = [s for s in live.services if s.health is not Health.HEALTHY]
    if not live.services:
        message = f"no services of stack {name} run on the Swarm"
    elif unwell:
        message = "; ".join(f"{s.name}: {s.message}" for s in unwell)
    else:
        message = f"all {len(live.services)} service(s) healthy"
    configuration: dict[str, Any] = dict(app.configuration or {}) if app else {}
    configuration.update(
        repositoryUrl=app.repository_url if app else None,
        stackFile=app.stack_file if app else None,
        services={s.name: s.configuration for s in live.services},
    )
    return ApplicationStatus(
        name=name,
        environment=environment,
        state=_state(health, recent, app.state if app else None),
        health=health,
        replicas=replicas,
        current_version=app.current_version if app else None,
        current_deployment_id=app.current_deployment_id if app else None,
        repository_url=app.repository_url if app else None,
        stack_file=app.stack_file if app else None,
        configuration=configuration,
        events=events[:MAX_EVENTS],
        report=HealthReport(
            overall=health, components=live.services, last_check=live.checked_at, message=message
        ),
        last_updated=app.updated_at if app else None,
    )


async def application_names(db: Database, swarm: SwarmInspector, environment: str) -> list[str]:
    """Applications deploybot deployed here, and stacks the Swarm runs, by name."""
    async with db.connection() as connection:
        known = set(
            (
                await connection.execute(
                    select(application_table.c.name).where(
                        application_table.c.environment == environment
                    )
                )
            ).scalars()
        )
    return sorted(known | set(await swarm.stacks()))


async def check_dependencies(
    db: Database, swarm: SwarmInspector, environment: str, dependencies: Sequence[str]
) -> None:
    """Every dependency must be HEALTHY here (seed 002), else DEPENDENCY_FAILED."""
    problems = []
    for name in dependencies:
        status = await application_status(db, swarm, name, environment)
        if status is None:
            problems.append(f"{name} is not deployed in {environment}")
        elif status.state is not ApplicationState.HEALTHY:
            problems.append(f"{name} is {status.state.value} ({status.report.message})")
    if problems:
        raise DeploybotError(
            ErrorCode.DEPENDENCY_FAILED,
            "dependencies are not healthy: " + "; ".join(problems),
            field="dependencies",
        )
