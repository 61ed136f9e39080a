"""A deployment's life as its runner (or reporter) records it: steps that start and end,
per-service outcomes, and the end of the deployment with what it means for the application
(a success retires the previous one and becomes current)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from deploybot.db.engine import Database
from deploybot.db.models import (
    Application,
    Deployment,
    ServiceRollout,
    application_table,
    deployment_table,
    service_table,
    step_table,
)
from deploybot.domain import (
    ApplicationState,
    DeploymentState,
    Health,
    StepName,
    StepStatus,
)
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.events.bus import DeploymentEvent, EventBus
from deploybot.metrics import DEPLOYMENT_DURATION, STEP_DURATION
from deploybot.times import utcnow


async def find_application(
    session: AsyncSession, name: str, environment: str
) -> Application | None:
    result = await session.execute(
        select(Application).where(
            application_table.c.name == name, application_table.c.environment == environment
        )
    )
    return result.scalar_one_or_none()


async def skip_pending_steps(session: AsyncSession, deployment_ids: list[int]) -> None:
    """Steps a deployment never reached, once it has ended."""
    await session.execute(
        update(step_table)
        .where(
            step_table.c.deployment_id.in_(deployment_ids),
            step_table.c.status == StepStatus.PENDING,
        )
        .values(status=StepStatus.SKIPPED)
    )


async def set_step(
    db: Database,
    deployment_id: int,
    name: StepName,
    status: StepStatus,
    *,
    message: str | None = None,
    error: str | None = None,
    bus: EventBus | None = None,
) -> None:
    """Move a step; with a bus, progress subscribers hear of it."""
    now = utcnow()
    values: dict[str, Any] = {"status": status}
    if message is not None:
        values["message"] = message
    if error is not None:
        values["error"] = error
    if status is StepStatus.RUNNING:
        values["started_at"] = now
    elif status in (
        StepStatus.COMPLETED,
        StepStatus.FAILED,
        StepStatus.SKIPPED,
        StepStatus.CANCELLED,
    ):
        values["finished_at"] = now
    async with db.transaction() as session:
        started = (
            await session.execute(
                update(step_table)
                .where(step_table.c.deployment_id == deployment_id, step_table.c.name == name.value)
                .values(**values)
                .returning(step_table.c.started_at)
            )
        ).scalar_one_or_none()
        await session.execute(
            update(deployment_table)
            .where(deployment_table.c.id == deployment_id)
            .values(updated_at=now)
        )
    if "finished_at" in values and started is not None:
        STEP_DURATION.labels(name.value, status.value).observe((now - started).total_seconds())
    if bus is not None:
        bus.publish(
            DeploymentEvent(
                deployment_id,
                None,
                "step",
                step=name.value,
                step_status=status.value,
                message=error or message,
            )
        )


async def update_deployment(db: Database, deployment_id: int, **values: Any) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(deployment_table)
            .where(deployment_table.c.id == deployment_id)
            .values(updated_at=utcnow(), **values)
        )


async def save_service_rollout(
    db: Database, deployment_id: int, service: str, **values: Any
) -> None:
    async with db.transaction() as session:
        existing = (
            await session.execute(
                select(ServiceRollout).where(
                    service_table.c.deployment_id == deployment_id,
                    service_table.c.service == service,
                )
            )
        ).scalar_one_or_none()
        if existing is None:
            session.add(ServiceRollout(deployment_id=deployment_id, service=service, **values))
        else:
            for key, value in values.items():
                setattr(existing, key, value)


async def finish_deployment(
    db: Database,
    bus: EventBus,
    deployment_id: int,
    state: DeploymentState,
    *,
    error_code: ErrorCode | None = None,
    error_message: str | None = None,
    swarm_changed: bool = False,
    finished_at: datetime | None = None,
) -> None:
    """End a deployment. A success retires the previous success of the application (INACTIVE)
    and becomes the application's current deployment. `finished_at`: when it ended, if not
    now (a deployment recorded after the fact)."""
    now = utcnow()
    async with db.transaction() as session:
        deployment = await session.get(Deployment, deployment_id)
        if deployment is None:
            raise DeploybotError(ErrorCode.DEPLOYMENT_NOT_FOUND, f"deployment {deployment_id}")
        deployment.state = state
        deployment.finished_at = finished_at or now
        deployment.updated_at = now
        deployment.error_code = error_code.value if error_code else None
        deployment.error_message = error_message
        labels = (deployment.environment, deployment.application)
        took = (
            None
            if deployment.started_at is None
            else (deployment.finished_at - deployment.started_at).total_seconds()
        )
        await skip_pending_steps(session, [deployment_id])
        await session.execute(
            update(step_table)
            .where(
                step_table.c.deployment_id == deployment_id,
                step_table.c.status == StepStatus.RUNNING,
            )
            .values(
                status=StepStatus.CANCELLED
                if state is DeploymentState.CANCELLED
                else StepStatus.FAILED,
                finished_at=now,
                error=error_message,
            )
        )
        retired = await _settle_application(session, deployment, state, swarm_changed, now)
    if took is not None:
        DEPLOYMENT_DURATION.labels(*labels, state.value).observe(max(0.0, took))
    bus.publish(DeploymentEvent(deployment_id, state.value))
    for retired_id in retired:
        bus.publish(DeploymentEvent(retired_id, DeploymentState.INACTIVE.value))


async def _settle_application(
    session: AsyncSession,
    deployment: Deployment,
    state: DeploymentState,
    swarm_changed: bool,
    now: datetime,
) -> list[int]:
    """What the end of `deployment` means for its application: a success retires the
    previous success (answered) and becomes current. A recorded deployment that names no
    application belongs to none: it neither retires nor becomes anything's current one."""
    application = deployment.application
    if application is None:
        return []
    app = await find_application(session, application, deployment.environment)
    if app is None:
        app = Application(name=application, environment=deployment.environment)
        session.add(app)
    app.updated_at = now
    retired: list[int] = []
    if state is DeploymentState.SUCCESS:
        superseded = (
            deployment_table.c.application == application,
            deployment_table.c.environment == deployment.environment,
            deployment_table.c.state == DeploymentState.SUCCESS,
            deployment_table.c.id != deployment.id,
        )
        retired = list(
            (
                await session.execute(
                    update(deployment_table)
                    .where(*superseded)
                    .values(state=DeploymentState.INACTIVE, updated_at=now)
                    .returning(deployment_table.c.id)
                )
            ).scalars()
        )
        app.current_deployment_id = deployment.id
        app.current_version = deployment.version
        app.repository_url = deployment.repository_url or app.repository_url
        app.stack_file = deployment.stack_file or app.stack_file
        app.state = ApplicationState.HEALTHY
        app.health = Health.HEALTHY
    elif state is DeploymentState.ROLLED_BACK:
        app.state = ApplicationState.HEALTHY  # the last good deployment runs again
        app.health = Health.HEALTHY
    elif swarm_changed and state is not DeploymentState.CANCELLED:
        app.state = ApplicationState.FAILED
        app.health = Health.UNKNOWN
    return retired
