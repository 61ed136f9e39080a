"""The runner's side of the queue: claiming queued deployments, heartbeats while one runs,
and finding the deployments whose runner is gone."""

from __future__ import annotations

import os
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from deploybot.core.lifecycle import update_deployment
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


async def heartbeat(db: Database, deployment_id: int) -> None:
    """A running deployment says it is alive (its runner may be in a long wait)."""
    await update_deployment(db, deployment_id)


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


async def abandoned(
    db: Database, environment: str, hostname: str, *, stale_after: float
) -> list[int]:
    """IN_PROGRESS deployments whose runner is gone: a dead process on this host, or no
    heartbeat for `stale_after` seconds (a runner elsewhere, or a reused pid)."""
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
        if runner_alive(row.runner_id or "", hostname) is False or row.updated_at < cutoff:
            lost.append(int(row.id))
    return lost


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
