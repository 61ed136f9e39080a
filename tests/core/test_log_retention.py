"""Log retention on real SQLite and PostgreSQL: long logs cut to their ends, expired logs
cut harder, running deployments untouched, the raw log saying what went."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from deploybot.core import log_retention, logs
from deploybot.core.log_retention import RetentionPolicy
from deploybot.db.engine import Database
from deploybot.db.models import Deployment, deployment_table
from deploybot.events.bus import EventBus
from deploybot.times import utcnow
from tests.conftest import both_databases


async def deployment_with_lines(
    db: Database, count: int, *, finished_days_ago: float | None
) -> int:
    async with db.transaction() as session:
        row = Deployment(environment="test", application="web")
        session.add(row)
        await session.flush()
        assert row.id is not None
        deployment_id = row.id
    async with logs.LogWriter(db, EventBus(), deployment_id, batch=1000) as writer:
        for i in range(1, count + 1):
            writer.write(f"line {i}")
    if finished_days_ago is not None:
        async with db.engine.begin() as conn:
            await conn.execute(
                update(deployment_table)
                .where(deployment_table.c.id == deployment_id)
                .values(finished_at=utcnow() - timedelta(days=finished_days_ago))
            )
    return deployment_id


async def texts(db: Database, deployment_id: int) -> list[str]:
    rows = await logs.list_lines(db, deployment_id, after_seq=0, limit=100_000)
    return [r.text for r in rows]


def test_the_window_keeps_both_ends() -> None:
    policy = RetentionPolicy(max_age=timedelta(days=7), max_lines=1000, keep_lines=10)
    assert policy.window(800, expired=False) is None
    assert policy.window(5000, expired=False) == (500, 4500)
    assert policy.window(5000, expired=True) == (10, 4990)
    assert policy.window(15, expired=True) is None
    assert not RetentionPolicy().active


@both_databases
async def test_long_and_old_logs_are_cut_to_their_ends(database: Database) -> None:
    long = await deployment_with_lines(database, 3000, finished_days_ago=1)
    old = await deployment_with_lines(database, 500, finished_days_ago=40)
    running = await deployment_with_lines(database, 3000, finished_days_ago=None)
    short = await deployment_with_lines(database, 50, finished_days_ago=1)
    policy = RetentionPolicy(max_age=timedelta(days=30), max_lines=1000, keep_lines=20)

    report = await log_retention.prune(database, policy, batch=300, pause=0)
    assert report.deployments == 2
    assert report.lines == 2000 + 460

    kept = await texts(database, long)
    assert len(kept) == 1000
    assert kept[:2] == ["line 1", "line 2"] and kept[499] == "line 500"
    assert kept[500] == "line 2501" and kept[-1] == "line 3000"
    assert await texts(database, old) == [f"line {i}" for i in [*range(1, 21), *range(481, 501)]]
    assert len(await texts(database, running)) == 3000
    assert len(await texts(database, short)) == 50
    assert await log_retention.pruned(database, long) == (2000, await _when(database, long))

    raw = "".join([c async for c in logs.raw_text(database, long, chunk=400)]).splitlines()
    assert raw[499] == "[system] line 500"
    assert raw[500].startswith("[deploybot] … 2000 lines pruned by log retention on 20")
    assert raw[501] == "[system] line 2501" and len(raw) == 1001

    # A second pass finds nothing new; once the long log is old, the age rule cuts it more.
    assert (await log_retention.prune(database, policy, pause=0)).lines == 0
    later = utcnow() + timedelta(days=31)
    report = await log_retention.prune(database, policy, now=later, pause=0)
    assert report.lines == 960 + 10  # the long log and the short one; never the running one
    assert len(await texts(database, long)) == 40
    assert (await log_retention.pruned(database, long))[0] == 2960


async def _when(database: Database, deployment_id: int) -> object:
    return (await log_retention.pruned(database, deployment_id))[1]
