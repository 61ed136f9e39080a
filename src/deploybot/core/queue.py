"""The runner's side of the queue: claiming queued deployments, heartbeats while one runs,
and finding the deployments whose runner is gone."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from deploybot.db.engine import Database
from deploybot.db.models import application_table, deployment_table
from deploybot.domain import DeploymentState, DeploymentTrigger
from deploybot.times import utcnow


async def claim_next(db: Database, environment: str, runner_id: str) -> int | None:
    """Take the oldest queued deployment whose application has nothing in progress.

    The conditional UPDATE is the claim: of two runners racing for one row,
    exactly one sees a row count of 1; and the partial unique index on
    (application, environment) WHERE state = 'IN_PROGRESS' refuses a second
    deployment of the same application, on SQLite and PostgreSQL alike.
    """
    c = deployment_table.c
    busy = (
        select(c.application)
        .where(c.environment == environment, c.state == DeploymentState.IN_PROGRESS)
        .scalar_subquery()
    )
    async with db.session() as session:
        candidates = list(
            (
                await session.execute(
                    select(c.id)
                    .where(
                        c.environment == environment,
                        c.state == DeploymentState.QUEUED,
                        c.trigger != DeploymentTrigger.EXTERNAL,  # recorded, not run here
                        c.application.not_in(busy),
                    )
                    .order_by(c.id)
                    .limit(5)
                )
            ).scalars()
        )
    apps = application_table
    # A queued deployment follows whatever succeeded while it waited.
    current_version = (
        select(apps.c.current_version)
        .where(apps.c.name == c.application, apps.c.environment == c.environment)
        .scalar_subquery()
    )
    for candidate in candidates:
        now = utcnow()
        try:
            async with db.transaction() as session:
                result = await session.execute(
                    update(deployment_table)
                    .where(c.id == candidate, c.state == DeploymentState.QUEUED)
                    .values(
                        state=DeploymentState.IN_PROGRESS,
                        previous_version=current_version,
                        runner_id=runner_id,
                        started_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            continue  # another runner started this application meanwhile
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return int(candidate)
    return None


async def heartbeat(db: Database, deployment_id: int, runner_id: str) -> bool:
    """A running deployment says it is alive (its runner may be in a long wait). False when
    the claim is no longer this runner's: another runner took the deployment over."""
    c = deployment_table.c
    async with db.transaction() as session:
        result = await session.execute(
            update(deployment_table)
            .where(
                c.id == deployment_id,
                c.runner_id == runner_id,
                c.state == DeploymentState.IN_PROGRESS,
            )
            .values(updated_at=utcnow())
        )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def release(db: Database, deployment_id: int, runner_id: str) -> None:
    """A runner that stops gracefully leaves its deployment to the next one (no owner)."""
    c = deployment_table.c
    async with db.transaction() as session:
        await session.execute(
            update(deployment_table)
            .where(
                c.id == deployment_id,
                c.runner_id == runner_id,
                c.state == DeploymentState.IN_PROGRESS,
            )
            .values(runner_id=None, updated_at=utcnow())
        )


async def owns(db: Database, deployment_id: int, runner_id: str) -> bool:
    """Whether `runner_id` still holds the deployment's claim."""
    c = deployment_table.c
    async with db.connection() as connection:
        owner = (
            await connection.execute(
                select(c.runner_id).where(
                    c.id == deployment_id, c.state == DeploymentState.IN_PROGRESS
                )
            )
        ).one_or_none()
    return owner is not None and owner.runner_id == runner_id


def runner_alive(runner_id: str, hostname: str) -> bool | None:
    """Whether a runner id (`host-pid-nonce`) of this host still runs; None if not ours."""
    host, _, rest = runner_id.rpartition("-")[0].rpartition("-")
    pid = rest
    if host != hostname or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Abandoned:
    """An IN_PROGRESS deployment whose runner is gone, and why it counts as gone."""

    deployment_id: int
    runner_id: str | None
    reason: str


async def abandoned(
    db: Database, environment: str, hostname: str, *, stale_after: float
) -> list[Abandoned]:
    """IN_PROGRESS deployments whose runner is gone: released by a runner that stopped, a
    dead process on this host, or no heartbeat for `stale_after` seconds (a runner
    elsewhere, a reused pid, a runner alive but stuck)."""
    c = deployment_table.c
    cutoff = utcnow() - timedelta(seconds=stale_after)
    async with db.connection() as connection:
        rows = (
            await connection.execute(
                select(c.id, c.runner_id, c.updated_at).where(
                    c.environment == environment,
                    c.state == DeploymentState.IN_PROGRESS,
                    c.trigger != DeploymentTrigger.EXTERNAL,  # its reporter ends it, not a runner
                )
            )
        ).all()
    lost = []
    for row in rows:
        runner = row.runner_id
        if runner is None:
            reason = "runner stopped and handed it over"
        elif runner_alive(runner, hostname) is False:
            reason = f"runner {runner} died"
        elif row.updated_at < cutoff:
            reason = f"runner {runner} was silent for more than {stale_after:g}s"
        else:
            continue
        lost.append(Abandoned(int(row.id), runner, reason))
    return lost


async def take_over(db: Database, lost: Abandoned, runner_id: str, *, stale_after: float) -> bool:
    """Claim an abandoned deployment. Conditional on the owner seen by `abandoned` and, for a
    silent runner, on its silence still lasting: of two runners taking over, one wins, and a
    runner that woke up and beat its heart keeps its deployment."""
    c = deployment_table.c
    conditions = [c.id == lost.deployment_id, c.state == DeploymentState.IN_PROGRESS]
    if lost.runner_id is None:
        conditions.append(c.runner_id.is_(None))
    else:
        conditions.append(c.runner_id == lost.runner_id)
        if runner_alive(lost.runner_id, socket.gethostname()) is not False:
            conditions.append(c.updated_at < utcnow() - timedelta(seconds=stale_after))
    async with db.transaction() as session:
        result = await session.execute(
            update(deployment_table)
            .where(*conditions)
            .values(runner_id=runner_id, updated_at=utcnow())
        )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def cancel_requested(db: Database, deployment_id: int) -> bool:
    """Whether someone asked a running deployment to stop (the runner asks between steps)."""
    async with db.connection() as connection:
        value = (
            await connection.execute(
                select(deployment_table.c.cancel_requested_at).where(
                    deployment_table.c.id == deployment_id
                )
            )
        ).scalar_one_or_none()
    return value is not None
