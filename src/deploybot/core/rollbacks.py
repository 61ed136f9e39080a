"""Rollbacks: a new deployment that puts an earlier deployment's recorded specs and image
digests back on the Swarm, without fetching or building anything.

The earlier deployment is chosen by id, by version, or (neither) as the
application's previous successful deployment. What it ran is its
ServiceRollout rows: each service's whole Swarm spec, image by digest. Before
anything is written the images are checked (`BACKUP_NOT_FOUND` when one can no
longer run), as `deploy` checks its source.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from deploybot.config import Settings
from deploybot.core.history import get_deployment, require_deployment, services_for
from deploybot.core.inspectors import SourceInspector
from deploybot.core.lifecycle import find_application
from deploybot.core.policy import restore_violations
from deploybot.core.policy_store import current_policy
from deploybot.db.engine import Database
from deploybot.db.models import (
    Application,
    Deployment,
    DeploymentStep,
    application_table,
    deployment_table,
    service_table,
    step_table,
)
from deploybot.domain import (
    ApplicationState,
    DeploymentState,
    DeploymentStrategy,
    DeploymentTrigger,
    StepName,
)
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.events.bus import DeploymentEvent, EventBus
from deploybot.inputs import RollbackRequest, RolloutOptions
from deploybot.records import DeploymentRecord, ServiceRolloutRecord
from deploybot.times import utcnow

#: States of deployments whose stack ran to the end: what a rollback may restore.
RESTORABLE = (DeploymentState.SUCCESS, DeploymentState.INACTIVE)

_COPIED = (
    "repository_url",
    "ref",
    "commit_sha",
    "commit_message",
    "commit_author",
    "committed_at",
    "version",
    "stack_file",
    "working_directory",
    "image",
    "service",
)


async def _application_row(db: Database, name: str, environment: str) -> Any:
    app = application_table.c
    async with db.connection() as connection:
        result = await connection.execute(
            select(application_table).where(app.name == name, app.environment == environment)
        )
        return result.first()


async def _target_by_id(
    db: Database, request: RollbackRequest, environment: str
) -> DeploymentRecord:
    assert request.deployment is not None
    wanted = request.deployment
    if wanted.environment not in (None, environment):
        raise DeploybotError(
            ErrorCode.DEPLOYMENT_NOT_FOUND,
            f"deployment #{wanted.number} of {wanted.environment} is not a deployment of this"
            " environment",
            field="deploymentId",
        )
    row = await get_deployment(db, wanted.number)
    if row is None or row.application != request.application or row.environment != environment:
        raise DeploybotError(
            ErrorCode.DEPLOYMENT_NOT_FOUND,
            f"{request.application} has no deployment #{wanted.number} on {environment}",
            field="deploymentId",
        )
    if row.state not in RESTORABLE:
        raise DeploybotError(
            ErrorCode.INVALID_INPUT,
            f"deployment #{row.id} ended {row.state.value}: only a deployment that"
            " succeeded can be restored",
            field="deploymentId",
        )
    return row


async def find_target(
    db: Database, request: RollbackRequest, environment: str, app: Any
) -> DeploymentRecord:
    """The deployment to restore, or DEPLOYMENT_NOT_FOUND saying what was not found
    (`app`: the application's row, if it has one)."""
    c = deployment_table.c
    if request.deployment is not None:
        return await _target_by_id(db, request, environment)
    query = select(deployment_table).where(
        c.application == request.application,
        c.environment == environment,
        c.state.in_(RESTORABLE),
    )
    if request.version is not None:
        query = query.where(c.version == request.version)
    elif app is not None and app.current_deployment_id is not None:
        query = query.where(c.id != app.current_deployment_id)
    async with db.connection() as connection:
        row = (await connection.execute(query.order_by(c.id.desc()).limit(1))).first()
    if row is None:
        what = (
            f"no successful deployment of {request.application} version {request.version!r}"
            if request.version is not None
            else f"no earlier successful deployment of {request.application}"
        )
        raise DeploybotError(
            ErrorCode.DEPLOYMENT_NOT_FOUND,
            f"{what} on {environment}",
            field="version" if request.version is not None else "application",
        )
    return DeploymentRecord.of(row._mapping)


async def create_rollback(
    db: Database,
    bus: EventBus,
    settings: Settings,
    inspector: SourceInspector,
    request: RollbackRequest,
) -> DeploymentRecord:
    """Check the target and its images, then queue the rollback deployment."""
    errors: list[DeploybotError] = []
    if request.environment and request.environment != settings.environment:
        errors.append(
            DeploybotError(
                ErrorCode.WRONG_ENVIRONMENT,
                f"this instance deploys to {settings.environment!r}, not {request.environment!r}",
                field="environment",
            )
        )
    if request.version is not None and request.deployment is not None:
        errors.append(
            DeploybotError(
                ErrorCode.INVALID_INPUT, "give either version or deploymentId", field="version"
            )
        )
    if errors:
        raise ValidationFailed(errors)
    environment = settings.environment
    app = await _application_row(db, request.application, environment)
    target = await find_target(db, request, environment, app)
    if app is not None and app.current_deployment_id == target.id:
        raise DeploybotError(
            ErrorCode.INVALID_INPUT,
            f"deployment #{target.id} ({target.version}) is what runs now",
            field="deploymentId" if request.deployment is not None else "version",
        )
    services = await restorable_services(db, target.id)
    if not services:
        raise DeploybotError(
            ErrorCode.BACKUP_NOT_FOUND,
            f"deployment #{target.id} recorded no service specs to restore",
        )
    policy = (await current_policy(db, settings)).policy
    violations = restore_violations(policy, target.id, {s.service: s.spec for s in services})
    if violations:
        raise ValidationFailed(violations)
    missing = []
    for service in services:
        image = (service.spec or {}).get("TaskTemplate", {}).get("ContainerSpec", {}).get("Image")
        if image and not await inspector.image_available(str(image)):
            missing.append(f"{service.service} ({image})")
    if missing:
        raise DeploybotError(
            ErrorCode.BACKUP_NOT_FOUND,
            f"the images of {target.version} (deployment #{target.id}) are no longer available:"
            f" {', '.join(missing)}",
            field="version" if request.version is not None else None,
        )
    gone = await inspector.missing_objects([dict(s.spec) for s in services if s.spec])
    if gone:
        raise DeploybotError(
            ErrorCode.BACKUP_NOT_FOUND,
            f"the configs and secrets of {target.version} (deployment #{target.id}) are no"
            f" longer on the Swarm: {', '.join(gone)}",
            field="version" if request.version is not None else None,
        )

    now = utcnow()
    async with db.transaction() as session:
        deployment = Deployment(
            environment=environment,
            application=request.application,
            previous_version=app.current_version if app else None,
            strategy=DeploymentStrategy.ROLLING,
            trigger=DeploymentTrigger.ROLLBACK,
            actor=request.actor,
            requested_by=request.requested_by,
            description=request.description
            or f"rollback to #{target.id} ({target.version or 'unversioned'})",
            original_request=request.original_request,
            rollback_of_id=app.current_deployment_id if app else None,
            rollback_to_id=target.id,
            rollout_options=RolloutOptions(rollback_on_failure=False).to_json(),
            state=DeploymentState.QUEUED,
            created_at=now,
            updated_at=now,
            **{name: getattr(target, name) for name in _COPIED},
        )
        session.add(deployment)
        await session.flush()
        assert deployment.id is not None
        for position, step in enumerate((StepName.ROLLOUT, StepName.CONVERGE)):
            session.add(
                DeploymentStep(deployment_id=deployment.id, position=position, name=step.value)
            )
        deployment_id = deployment.id
    bus.publish(DeploymentEvent(deployment_id, DeploymentState.QUEUED.value, "created"))
    return await require_deployment(db, deployment_id)


# --- the runner's side ------------------------------------------------------------------------


async def restorable_services(db: Database, deployment_id: int) -> list[ServiceRolloutRecord]:
    """The recorded services of a deployment that carry a spec to put back."""
    rows = (await services_for(db, [deployment_id]))[deployment_id]
    return [row for row in rows if row.spec]


async def recent_restorable_specs(
    db: Database, application: str, environment: str, limit: int
) -> list[dict[str, Any]]:
    """The recorded service specs of the application's `limit` latest deployments a rollback
    may restore: what their configs and secrets must stay on the Swarm for."""
    c, s = deployment_table.c, service_table.c
    async with db.connection() as connection:
        ids = (
            await connection.execute(
                select(c.id)
                .where(
                    c.application == application,
                    c.environment == environment,
                    c.state.in_(RESTORABLE),
                )
                .order_by(c.id.desc())
                .limit(limit)
            )
        ).scalars()
        wanted = list(ids)
        if not wanted:
            return []
        specs = (
            await connection.execute(select(s.spec).where(s.deployment_id.in_(wanted)))
        ).scalars()
        return [dict(spec) for spec in specs if spec]


async def last_good_deployment(
    db: Database, application: str, environment: str
) -> DeploymentRecord | None:
    """The application's current deployment (its last success), if it has one."""
    app = await _application_row(db, application, environment)
    if app is None or app.current_deployment_id is None:
        return None
    return await get_deployment(db, app.current_deployment_id)


async def set_application_state(
    db: Database, application: str, environment: str, state: ApplicationState
) -> None:
    """The application's live state while a deployment changes it (ROLLING_BACK...)."""
    now = utcnow()
    async with db.transaction() as session:
        app = await find_application(session, application, environment)
        if app is None:
            app = Application(name=application, environment=environment)
            session.add(app)
        app.state = state
        app.updated_at = now


async def add_step(db: Database, deployment_id: int, name: StepName) -> None:
    """Append a step the plan did not have (a rollback decided on during the run)."""
    async with db.transaction() as session:
        exists = (
            await session.execute(
                select(func.count()).where(
                    step_table.c.deployment_id == deployment_id, step_table.c.name == name.value
                )
            )
        ).scalar_one()
        if exists:
            return
        last = (
            await session.execute(
                select(func.max(step_table.c.position)).where(
                    step_table.c.deployment_id == deployment_id
                )
            )
        ).scalar_one()
        session.add(
            DeploymentStep(deployment_id=deployment_id, position=(last or 0) + 1, name=name.value)
        )


async def record_restored(db: Database, deployment_id: int, restored_id: int) -> None:
    """A deployment that was rolled back names the deployment it put back."""
    async with db.transaction() as session:
        await session.execute(
            update(deployment_table)
            .where(deployment_table.c.id == deployment_id)
            .values(rollback_to_id=restored_id, updated_at=utcnow())
        )
