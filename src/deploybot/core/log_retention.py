"""Log retention: finished deployments' logs are cut to their first and last lines, after
N days (`DEPLOYBOT_LOG_RETENTION_DAYS`) and/or beyond M lines (`DEPLOYBOT_LOG_MAX_LINES`).

Lines go in small batches (a `DELETE … WHERE id IN (SELECT … LIMIT n)` each, with a pause
between) so pruning never holds locks long enough to slow live traffic. Each pruned
deployment keeps a row in `log_retention`; the raw log marks the gap with when and how
many lines went. The deployment's summary, steps and results are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, func, or_, select

from deploybot.config import Settings
from deploybot.db.engine import Database
from deploybot.db.models import deployment_table, log_retention_table, log_table
from deploybot.times import utcnow

logger = logging.getLogger(__name__)

COUNT = "count"
AGE = "age"


@dataclass(frozen=True)
class RetentionPolicy:
    max_age: timedelta | None = None
    max_lines: int | None = None
    keep_lines: int = 100
    """Lines kept at each end of an expired log."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        days = settings.log_retention_days
        return cls(
            max_age=timedelta(days=days) if days is not None else None,
            max_lines=settings.log_max_lines,
            keep_lines=settings.log_keep_lines,
        )

    @property
    def active(self) -> bool:
        return self.max_age is not None or self.max_lines is not None

    def window(self, last: int, expired: bool) -> tuple[int, int] | None:
        """The sequences (lo, hi] to delete from a log of `last` lines, if any."""
        keep_head = keep_tail = None
        if expired:
            keep_head = keep_tail = self.keep_lines
        if self.max_lines is not None and last > self.max_lines:
            head = self.max_lines // 2
            if keep_head is None or head < keep_head:
                keep_head, keep_tail = head, self.max_lines - head
        if keep_head is None or keep_tail is None or last <= keep_head + keep_tail:
            return None
        return keep_head, last - keep_tail


@dataclass(frozen=True)
class PruneReport:
    deployments: int
    lines: int


async def prune(
    db: Database,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    batch: int = 2000,
    pause: float = 0.02,
    limit: int = 200,
) -> PruneReport:
    """One pass over at most `limit` finished deployments that retention has not yet seen
    (or that have since grown old enough for the age rule)."""
    if not policy.active:
        return PruneReport(0, 0)
    now = now or utcnow()
    cutoff = now - policy.max_age if policy.max_age is not None else None
    d, r = deployment_table, log_retention_table
    due: ColumnElement[bool] = r.c.deployment_id.is_(None)
    if cutoff is not None:
        due = or_(due, and_(r.c.rule == COUNT, d.c.finished_at < cutoff))
    query = (
        select(d.c.id, d.c.finished_at, r.c.rule, r.c.pruned_lines)
        .select_from(d.outerjoin(r, r.c.deployment_id == d.c.id))
        .where(d.c.finished_at.is_not(None), due)
        .order_by(d.c.id)
        .limit(limit)
    )
    async with db.engine.connect() as conn:
        candidates = (await conn.execute(query)).all()
    pruned_lines = pruned_deployments = 0
    for deployment_id, finished_at, rule, before in candidates:
        expired = cutoff is not None and finished_at < cutoff
        gone = await _prune_one(db, policy, deployment_id, expired, batch, pause)
        await _record(db, deployment_id, AGE if expired else COUNT, gone, before, rule, now)
        pruned_lines += gone
        pruned_deployments += bool(gone)
    return PruneReport(pruned_deployments, pruned_lines)


async def _prune_one(
    db: Database, policy: RetentionPolicy, deployment_id: int, expired: bool, batch: int,
    pause: float,
) -> int:  # fmt: skip
    async with db.engine.connect() as conn:
        last = (
            await conn.execute(
                select(func.max(log_table.c.seq)).where(log_table.c.deployment_id == deployment_id)
            )
        ).scalar_one()
    window = policy.window(int(last or 0), expired)
    if window is None:
        return 0
    lo, hi = window
    gone = 0
    while True:
        ids = (
            select(log_table.c.id)
            .where(
                log_table.c.deployment_id == deployment_id,
                log_table.c.seq > lo,
                log_table.c.seq <= hi,
            )
            .limit(batch)
            .scalar_subquery()
        )
        async with db.engine.begin() as conn:
            result = await conn.execute(delete(log_table).where(log_table.c.id.in_(ids)))
        gone += result.rowcount
        if result.rowcount < batch:
            return gone
        await asyncio.sleep(pause)


async def _record(
    db: Database, deployment_id: int, rule: str, gone: int, before: int | None,
    had: str | None, now: datetime,
) -> None:  # fmt: skip
    values = {"rule": rule, "pruned_lines": (before or 0) + gone}
    if gone:
        values["pruned_at"] = now
    async with db.engine.begin() as conn:
        if had is None:
            await conn.execute(
                log_retention_table.insert().values(deployment_id=deployment_id, **values)
            )
        else:
            await conn.execute(
                log_retention_table.update()
                .where(log_retention_table.c.deployment_id == deployment_id)
                .values(**values)
            )


async def pruned(db: Database, deployment_id: int) -> tuple[int, datetime | None]:
    """How many lines retention removed from a deployment's log, and when it last did."""
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                select(log_retention_table.c.pruned_lines, log_retention_table.c.pruned_at).where(
                    log_retention_table.c.deployment_id == deployment_id
                )
            )
        ).first()
    return (int(row[0]), row[1]) if row else (0, None)


async def prune_periodically(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    """The runner's pruning loop: a pass every `log_prune_interval` seconds until stopped."""
    policy = RetentionPolicy.from_settings(settings)
    if not policy.active:
        return
    while not stop.is_set():
        try:
            report = await prune(db, policy)
            if report.lines:
                logger.info(
                    "log retention pruned %d lines of %d deployments",
                    report.lines,
                    report.deployments,
                )
        except Exception:
            logger.exception("log retention pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.log_prune_interval)
