"""Admission of deployments: one active deployment per application and environment, queueing
with supersession, idempotency keys, and cancellation.

Admissions of one application are serialised by the database itself: the first statement of
the admission transaction is an upsert of the application's row, which takes that row's lock
on PostgreSQL and the database's write lock on SQLite (as a first statement it waits out a
concurrent writer instead of failing). Whatever the admission then reads is what is committed,
so of two concurrent requests exactly one is accepted, across processes.

Queueing follows GitHub Actions' concurrency groups: a request that asks to queue waits behind
the running deployment, and a newer waiting request cancels an older waiting one.
Idempotency keys follow Stripe and the IETF Idempotency-Key draft: the same key with the same
request answers the first deployment, the same key with another request is an error.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from deploybot.config import Settings
from deploybot.core.applications import check_dependencies
from deploybot.core.history import require_deployment
from deploybot.core.inspectors import SourceInspector, SwarmInspector
from deploybot.core.lifecycle import skip_pending_steps
from deploybot.core.policy_store import current_policy
from deploybot.core.requests import (
    PreparedDeployment,
    application_of,
    check_request,
    inspect_source,
)
from deploybot.db.engine import Database
from deploybot.db.models import Deployment, application_table, deployment_table, step_table
from deploybot.domain import ACTIVE_STATES, ApplicationState, DeploymentState, Health, StepStatus
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.events.bus import DeploymentEvent, EventBus
from deploybot.inputs import DeployRequest
from deploybot.records import DeploymentRecord
from deploybot.times import utcnow

#: Fields of a request that do not change what it asks for (Relay's echo, recorded copies).
_NOT_FINGERPRINTED = frozenset(
    {"original_request", "mapped_request", "idempotency_key", "requested_by"}
)


def fingerprint(request: DeployRequest) -> str:
    """A hash of what a request asks for, to tell a retry from a different request."""

    def plain(value: object) -> object:
        return value.value if isinstance(value, enum.Enum) else value

    fields = {
        k: plain(v)
        for k, v in sorted(dataclasses.asdict(request).items())
        if k not in _NOT_FINGERPRINTED and v not in (None, [], False)
    }
    text = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


async def replay(
    db: Database | AsyncSession, environment: str, request: DeployRequest
) -> int | None:
    """The deployment an idempotency key already created, if the request is the same one;
    DeploybotError(IDEMPOTENCY_KEY_REUSED) if the key was used for another request."""
    if not request.idempotency_key:
        return None
    c = deployment_table.c
    query = select(c.id, c.request_fingerprint).where(
        c.environment == environment, c.idempotency_key == request.idempotency_key
    )
    rows = await _rows(db, query)
    row = rows[0] if rows else None
    if row is None:
        return None
    if row.request_fingerprint != fingerprint(request):
        raise DeploybotError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            f"idempotency key {request.idempotency_key!r} was already used by deployment"
            f" #{row.id} for a different request; use a new key for a new request",
            field="idempotencyKey",
        )
    return int(row.id)


async def active_deployments(
    db: Database | AsyncSession, application: str, environment: str
) -> list[Any]:
    """The application's QUEUED and IN_PROGRESS deployments, oldest first."""
    c = deployment_table.c
    query = (
        select(c.id, c.state)
        .where(
            c.application == application,
            c.environment == environment,
            c.state.in_(list(ACTIVE_STATES)),
        )
        .order_by(c.id)
    )
    return await _rows(db, query)


async def _rows(db: Database | AsyncSession, query: Any) -> list[Any]:
    """In the admission's own transaction when given its session, else on a read connection."""
    if isinstance(db, AsyncSession):
        return list((await db.execute(query)).all())
    async with db.connection() as connection:
        return list((await connection.execute(query)).all())


def in_progress_error(application: str, active: list[Any]) -> DeploybotError:
    running = ", ".join(f"#{row.id} ({row.state.value})" for row in active)
    return DeploybotError(
        ErrorCode.DEPLOYMENT_IN_PROGRESS,
        f"{application} already has a deployment under way: {running}; wait for it, cancel"
        " it, or ask to queue behind it (queue: true)",
        field="application",
    )


async def lock_application(session: AsyncSession, application: str, environment: str) -> str | None:
    """Serialise admissions of one application; must be the transaction's first statement.
    Answers the application's current version (the upsert reads it back)."""
    now = utcnow()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(application_table).values(
        name=application,
        environment=environment,
        state=ApplicationState.UNKNOWN,
        health=Health.UNKNOWN,
        configuration={},
        created_at=now,
        updated_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=["name", "environment"], set_={"name": statement.excluded.name}
    ).returning(application_table.c.current_version)
    current: str | None = (await session.execute(statement)).scalar_one()
    return current


async def make_room(
    session: AsyncSession, application: str, environment: str, *, queue: bool
) -> list[int]:
    """Under the application's lock: refuse when a deployment is under way (unless queueing),
    else cancel the queued ones the new request supersedes; returns their ids."""
    active = await active_deployments(session, application, environment)
    if not active:
        return []
    if not queue:
        raise in_progress_error(application, active)
    waiting = [int(row.id) for row in active if row.state is DeploymentState.QUEUED]
    if waiting:
        await _cancel_queued(session, waiting, "superseded by a newer queued deployment")
    return waiting


async def name_successor(session: AsyncSession, superseded: list[int], successor: int) -> None:
    if superseded:
        await session.execute(
            update(deployment_table)
            .where(deployment_table.c.id.in_(superseded))
            .values(error_message=f"superseded by deployment #{successor}, queued after it")
        )


async def _cancel_queued(session: AsyncSession, ids: list[int], message: str) -> int:
    """QUEUED → CANCELLED for those still queued (a runner may have claimed one meanwhile)."""
    now = utcnow()
    c = deployment_table.c
    result = await session.execute(
        update(deployment_table)
        .where(c.id.in_(ids), c.state == DeploymentState.QUEUED)
        .values(
            state=DeploymentState.CANCELLED,
            finished_at=now,
            updated_at=now,
            error_message=message,
        )
    )
    await skip_pending_steps(session, ids)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def cancel_deployment(
    db: Database, bus: EventBus, deployment_id: int, *, actor: str | None = None
) -> None:
    """Cancel a deployment: a queued one at once; a running one is asked to stop (its runner
    notices between steps and while waiting for convergence, and records where it stopped);
    a finished one is DeploybotError(DEPLOYMENT_FINISHED)."""
    c = deployment_table.c
    by = f" by {actor}" if actor else ""
    for _ in range(3):  # a queued deployment may be claimed while we look at it
        async with db.connection() as connection:
            row = (
                await connection.execute(select(c.id, c.state).where(c.id == deployment_id))
            ).first()
        if row is None:
            raise DeploybotError(
                ErrorCode.DEPLOYMENT_NOT_FOUND, f"deployment {deployment_id} not found", field="id"
            )
        if row.state is DeploymentState.QUEUED:
            async with db.transaction() as session:
                done = await _cancel_queued(session, [deployment_id], f"cancelled{by} while queued")
            if done:
                bus.publish(DeploymentEvent(deployment_id, DeploymentState.CANCELLED.value))
                return
        elif row.state is DeploymentState.IN_PROGRESS:
            now = utcnow()
            async with db.transaction() as session:
                result = await session.execute(
                    update(deployment_table)
                    .where(c.id == deployment_id, c.state == DeploymentState.IN_PROGRESS)
                    .values(cancel_requested_at=now, updated_at=now)
                )
            if result.rowcount:  # type: ignore[attr-defined]
                bus.publish(DeploymentEvent(deployment_id, DeploymentState.IN_PROGRESS.value))
                return
        else:
            raise DeploybotError(
                ErrorCode.DEPLOYMENT_FINISHED,
                f"deployment #{deployment_id} already ended ({row.state.value}); nothing to cancel",
                field="id",
            )
    raise DeploybotError(
        ErrorCode.DEPLOYMENT_IN_PROGRESS, f"deployment #{deployment_id} changed state; try again"
    )


# --- admitting a deploy request ------------------------------------------------------------------


async def create_deployment(
    db: Database,
    bus: EventBus,
    settings: Settings,
    inspector: SourceInspector,
    request: DeployRequest,
    *,
    swarm: SwarmInspector | None = None,
) -> DeploymentRecord:
    """Check everything a deploy needs, then queue it. Nothing is written when a check fails.

    A retry with the same idempotency key answers the deployment it created; a deployment
    already under way refuses the request unless it asks to queue (see above).
    """
    check_request(request, settings)
    environment = settings.environment
    application = application_of(request)
    active = await active_deployments(db, application, environment)
    # Read after `active`, so a retry's first attempt seen there is seen here too.
    replayed = await replay(db, environment, request)
    if replayed is None:
        if active and not request.queue:
            raise in_progress_error(application, active)
        if request.dependencies:
            if swarm is None:
                raise DeploybotError(
                    ErrorCode.DEPENDENCY_FAILED, "dependencies cannot be checked here"
                )
            await check_dependencies(db, swarm, environment, request.dependencies)
        policy = (await current_policy(db, settings)).policy
        prepared = await inspect_source(settings, inspector, request, application, policy)
        try:
            replayed, created, superseded = await _admit(db, settings, request, prepared)
        except IntegrityError:
            # The same key was just taken by a request for another application.
            replayed = await replay(db, environment, request)
            if replayed is None:
                raise
        else:
            for old in superseded:
                bus.publish(DeploymentEvent(old, DeploymentState.CANCELLED.value))
            if created:
                bus.publish(DeploymentEvent(replayed, DeploymentState.QUEUED.value, "created"))
    return await require_deployment(db, replayed)


async def _admit(
    db: Database, settings: Settings, request: DeployRequest, prepared: PreparedDeployment
) -> tuple[int, bool, list[int]]:
    """Write the deployment under the application's lock: (its id, whether it is new (not
    written meanwhile by an identical request with the same key), the ids it superseded)."""
    async with db.transaction() as session:
        previous_version = await lock_application(
            session, prepared.application, settings.environment
        )
        replayed = await replay(session, settings.environment, request)
        if replayed is not None:
            return replayed, False, []
        return await _write(session, settings, request, prepared, previous_version)


async def _write(
    session: AsyncSession,
    settings: Settings,
    request: DeployRequest,
    prepared: PreparedDeployment,
    previous_version: str | None,
) -> tuple[int, bool, list[int]]:
    """Under the application's lock, no replay found: make room, write the deployment and
    its steps (the steps in one statement)."""
    now = utcnow()
    application = prepared.application
    superseded = await make_room(session, application, settings.environment, queue=request.queue)
    deployment = Deployment(
        environment=settings.environment,
        application=application,
        previous_version=previous_version,
        strategy=request.strategy,
        trigger=request.trigger,
        provider=request.provider,
        provider_repository=request.provider_repository,
        actor=request.actor,
        requested_by=request.requested_by,
        team=request.team,
        description=request.description,
        references=list(request.references),
        original_request=request.original_request,
        mapped_request=request.mapped_request,
        rollout_options=request.rollout.to_json(),
        state=DeploymentState.QUEUED,
        created_at=now,
        updated_at=now,
        idempotency_key=request.idempotency_key,
        request_fingerprint=fingerprint(request),
        dependencies=list(request.dependencies) or None,
        **prepared.values,
    )
    session.add(deployment)
    await session.flush()
    assert deployment.id is not None
    if prepared.steps:
        await session.execute(
            insert(step_table),
            [
                dict(
                    deployment_id=deployment.id,
                    position=position,
                    name=step.value,
                    status=StepStatus.PENDING,
                )
                for position, step in enumerate(prepared.steps)
            ],
        )
    await name_successor(session, superseded, deployment.id)
    return deployment.id, True, superseded


WriteAlong = Callable[[AsyncSession, int], Awaitable[None]]
"""Writes what goes with a deployment (a webhook's delivery) in the admission's transaction,
given the deployment's id."""


async def admit_at_once(
    db: Database,
    bus: EventBus,
    settings: Settings,
    inspector: SourceInspector,
    request: DeployRequest,
    write_along: WriteAlong,
) -> DeploymentRecord:
    """`create_deployment` for an inspector that does no I/O (a webhook's payload): every
    check and write in one transaction under the application's lock, with `write_along`'s
    rows, so one commit and one connection instead of five connections and two commits.
    Answers the same errors; nothing is written when one is raised, nor when `write_along`
    raises (an IntegrityError of its own or of a concurrent identical request included: the
    caller reads what the first one wrote). No dependencies: checking them is Swarm I/O."""
    check_request(request, settings)
    if request.dependencies:
        raise DeploybotError(ErrorCode.DEPENDENCY_FAILED, "dependencies cannot be checked here")
    environment = settings.environment
    application = application_of(request)
    created: tuple[int, bool, list[int]] | None = None
    async with db.transaction() as session:
        previous_version = await lock_application(session, application, environment)
        replayed = await replay(session, environment, request)
        if replayed is None:
            policy = (await current_policy(session, settings)).policy
            prepared = await inspect_source(settings, inspector, request, application, policy)
            created = await _write(session, settings, request, prepared, previous_version)
            replayed = created[0]
        await write_along(session, replayed)
        row = (
            await session.execute(select(deployment_table).where(deployment_table.c.id == replayed))
        ).one()
    if created is not None:
        for old in created[2]:
            bus.publish(DeploymentEvent(old, DeploymentState.CANCELLED.value))
        bus.publish(DeploymentEvent(replayed, DeploymentState.QUEUED.value, "created"))
    return DeploymentRecord.of(row._mapping)
