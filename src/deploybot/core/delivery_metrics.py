"""Delivery metrics (the DORA four) from deploybot's own records, per interval.

Definitions (README, "Delivery metrics", says the same):

- A deployment counts in the interval its `finished_at` falls in. CANCELLED and
  unfinished deployments don't count; deployments made *by* a rollback (trigger
  ROLLBACK) are remediation, not changes: they count only as restores.
- deployment frequency: successful changes (SUCCESS, or INACTIVE: a success a later
  one replaced) per interval, and per day of the interval.
- lead time for changes: commit time → end of the successful deployment, over the
  successful changes whose commit time is known; median and p90 (nearest rank).
- change failure rate: changes that failed (FAILURE, ERROR, ROLLED_BACK) or were
  followed by a rollback (a deployment with `rollback_of_id` pointing at it, or the
  application's next deployment on the environment made by a rollback) ÷ all changes.
- time to restore: from the end of a failed change to the end of the application's
  next successful deployment on that environment (of any trigger); median. Failures
  not restored yet are left out (and counted as `unrestored`).
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from deploybot.db.engine import Database
from deploybot.db.models import deployment_table
from deploybot.domain import DeploymentState, DeploymentTrigger, Interval
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.filters import MetricsFilter, sql_filter
from deploybot.records import DeliveryMetrics, DeliverySample, Period
from deploybot.times import as_utc, utcnow

MAX_PERIODS = 400

SUCCEEDED = (DeploymentState.SUCCESS, DeploymentState.INACTIVE)
FAILED = (DeploymentState.FAILURE, DeploymentState.ERROR, DeploymentState.ROLLED_BACK)


def interval_start(moment: datetime, interval: Interval) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if interval is Interval.DAY:
        return day
    if interval is Interval.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_start(start: datetime, interval: Interval) -> datetime:
    if interval is Interval.DAY:
        return start + timedelta(days=1)
    if interval is Interval.WEEK:
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def p90(values: Sequence[float]) -> float | None:
    """Nearest rank: the smallest value with at least 90% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


@dataclass
class _Facts:
    """What one finished deployment contributes."""

    finished_at: datetime
    change: bool
    succeeded: bool
    failed_change: bool
    lead_time: float | None
    restore: float | None


def _facts(rows: Sequence[Any]) -> list[_Facts]:
    """One entry per counted deployment, in order of their ends; each application's line
    on each environment is walked backwards once, so the next success is always at hand.
    Numbers are an environment's own: a rollback's link is read with its environment."""
    rolled_back = {
        (r.environment, int(r.rollback_of_id)) for r in rows if r.rollback_of_id is not None
    }
    lines: dict[tuple[str | int, str], list[Any]] = {}
    for row in rows:  # a recording without an application is a line of its own
        line = row.application if row.application is not None else int(row.id)
        lines.setdefault((line, row.environment), []).append(row)
    facts: list[_Facts] = []
    for history in lines.values():
        history.sort(key=lambda r: (r.finished_at, r.id))
        next_success: Any = None
        following: Any = None  # the next deployment that was not cancelled
        for row in reversed(history):
            if row.state is not DeploymentState.CANCELLED:
                facts.append(_fact(row, following, next_success, rolled_back))
                following = row
            if row.state in SUCCEEDED:
                next_success = row
    facts.sort(key=lambda f: f.finished_at)
    return facts


def _fact(row: Any, following: Any, next_success: Any, rolled_back: set[tuple[str, int]]) -> _Facts:
    change = row.trigger is not DeploymentTrigger.ROLLBACK
    succeeded = row.state in SUCCEEDED
    failed = (
        row.state in FAILED
        or (row.environment, int(row.id)) in rolled_back
        or (following is not None and following.trigger is DeploymentTrigger.ROLLBACK)
    )
    lead_time = None
    if change and succeeded and row.committed_at is not None:
        lead_time = (row.finished_at - row.committed_at).total_seconds()
    restore = None
    if change and failed and next_success is not None:
        restore = (next_success.finished_at - row.finished_at).total_seconds()
    return _Facts(
        finished_at=row.finished_at,
        change=change,
        succeeded=change and succeeded,
        failed_change=change and failed,
        lead_time=lead_time,
        restore=restore,
    )


def _period(start: datetime, end: datetime, facts: Sequence[_Facts]) -> Period:
    changes = [f for f in facts if f.change]
    successes = [f for f in changes if f.succeeded]
    failures = [f for f in changes if f.failed_change]
    lead_times = [f.lead_time for f in successes if f.lead_time is not None]
    restores = [f.restore for f in failures if f.restore is not None]
    days = (end - start).total_seconds() / 86400
    return Period(
        start=start,
        end=end,
        deployments=len(changes),
        successful_deployments=len(successes),
        deployments_per_day=round(len(successes) / days, 6) if days > 0 else 0.0,
        lead_time_median=median(lead_times),
        lead_time_p90=p90(lead_times),
        change_failures=len(failures),
        change_failure_rate=round(len(failures) / len(changes), 6) if changes else None,
        restores=len(restores),
        unrestored=len(failures) - len(restores),
        time_to_restore_median=median(restores),
    )


def _boundaries(since: datetime, until: datetime, interval: Interval) -> list[datetime]:
    if since >= until:
        raise DeploybotError(ErrorCode.INVALID_INPUT, "since must be before until", field="since")
    boundaries = [interval_start(since, interval)]
    while boundaries[-1] < until:
        boundaries.append(next_start(boundaries[-1], interval))
        if len(boundaries) > MAX_PERIODS + 1:
            raise DeploybotError(
                ErrorCode.INVALID_INPUT,
                f"at most {MAX_PERIODS} intervals: use a longer interval or a shorter range",
                field="interval",
            )
    return boundaries


def window(
    since: datetime | None, until: datetime | None, interval: Interval
) -> tuple[datetime, datetime]:
    """The range asked (default: the 30 days to now), INVALID_INPUT if it cannot be cut."""
    until = as_utc(until or utcnow())
    since = as_utc(since or until - timedelta(days=30))
    _boundaries(since, until, interval)
    return since, until


async def delivery_samples(
    db: Database, flt: MetricsFilter | None, *, since: datetime
) -> list[DeliverySample]:
    """The finished deployments the metrics of a range from `since` read (and those after
    its end: the restores of late failures)."""
    c = deployment_table.c
    query = select(
        c.id,
        c.application,
        c.environment,
        c.state,
        c.trigger,
        c.committed_at,
        c.finished_at,
        c.rollback_of_id,
    ).where(
        c.finished_at.is_not(None),
        c.finished_at >= since,
        c.state.not_in([DeploymentState.QUEUED, DeploymentState.IN_PROGRESS]),
    )
    query = query.where(*sql_filter(flt))
    async with db.connection() as connection:
        rows = (await connection.execute(query)).all()
    return [
        DeliverySample(
            id=int(r.id),
            environment=r.environment,
            application=r.application,
            state=r.state,
            trigger=r.trigger,
            committed_at=as_utc(r.committed_at) if r.committed_at is not None else None,
            finished_at=as_utc(r.finished_at),
            rollback_of_id=int(r.rollback_of_id) if r.rollback_of_id is not None else None,
        )
        for r in rows
    ]


def compute(
    samples: Sequence[DeliverySample], *, since: datetime, until: datetime, interval: Interval
) -> DeliveryMetrics:
    """The metrics of `samples` (of one environment or the union of several: every median
    and p90 is taken over the union's own values)."""
    boundaries = _boundaries(since, until, interval)
    facts = [f for f in _facts(samples) if f.finished_at < until]
    ends = [f.finished_at for f in facts]
    periods = []
    for left, right in itertools.pairwise(boundaries):
        start, end = max(left, since), min(right, until)
        inside = facts[bisect.bisect_left(ends, start) : bisect.bisect_left(ends, end)]
        periods.append(_period(start, end, inside))
    return DeliveryMetrics(
        since=since,
        until=until,
        interval=interval,
        total=_period(since, until, facts),
        periods=periods,
    )


async def delivery_metrics(
    db: Database,
    flt: MetricsFilter | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    interval: Interval = Interval.WEEK,
) -> DeliveryMetrics:
    since, until = window(since, until, interval)
    samples = await delivery_samples(db, flt, since=since)
    return compute(samples, since=since, until=until, interval=interval)
