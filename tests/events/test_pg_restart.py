"""A real PostgreSQL server restarted under the relay and the runner's writers.

The cluster is the module's own (`pg_cluster`): stopped with a fast shutdown, which
closes every client connection as a real restart does, and started again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from deploybot.core import lifecycle, logs
from deploybot.core.feeds import DeploymentLogFeed
from deploybot.db import migrate
from deploybot.db.engine import Database
from deploybot.db.models import Deployment, DeploymentStep, step_table
from deploybot.db.retry import retry_unavailable
from deploybot.domain import StepName, StepStatus
from deploybot.events.bus import DeploymentEvent, EventBus
from deploybot.events.postgres import PostgresRelay
from deploybot.live.hub import Hub, LiveSource
from deploybot.outages import is_database_unavailable
from tests.logproducer import LogProducer
from tests.pgcluster import PgCluster

OUTAGE = 2.0
"""Seconds the server stays down."""


async def restart(cluster: PgCluster, outage: float = OUTAGE) -> float:
    """Stop the server, wait, start it; when it answers again (time.monotonic())."""
    await asyncio.to_thread(cluster.stop)
    await asyncio.sleep(outage)
    await asyncio.to_thread(cluster.start)
    return time.monotonic()


@pytest.fixture
async def db(pg_cluster: PgCluster) -> AsyncIterator[Database]:
    database = Database(pg_cluster.url)
    await migrate.upgrade(database)
    yield database
    await database.dispose()


async def new_deployment(db: Database) -> int:
    async with db.transaction() as session:
        row = Deployment(environment="test", application="web")
        session.add(row)
        await session.flush()
        assert row.id is not None
        session.add(DeploymentStep(deployment_id=row.id, position=0, name=StepName.ROLLOUT.value))
        return row.id


async def next_event(sub_queue: asyncio.Queue[DeploymentEvent], timeout: float) -> DeploymentEvent:
    return await asyncio.wait_for(sub_queue.get(), timeout)


async def test_the_relay_listens_again_then_asks_for_a_resync(pg_cluster: PgCluster) -> None:
    here, there = EventBus(), EventBus()
    relays = [
        PostgresRelay(pg_cluster.url, here, reconnect_delay=0.2),
        PostgresRelay(pg_cluster.url, there, reconnect_delay=0.2),
    ]
    for relay in relays:
        await relay.start()
    try:
        async with there.subscribe() as theirs:
            here.publish(DeploymentEvent(1, None, "log", sequence=1, first_sequence=1))
            assert (await next_event(theirs.queue, 10)).sequence == 1

            stop_task = asyncio.create_task(restart(pg_cluster))
            await asyncio.sleep(0.5)  # down: this event waits in the sender's outbox
            here.publish(DeploymentEvent(1, None, "log", sequence=2, first_sequence=2))
            back_at = await stop_task

            received: list[DeploymentEvent] = []
            while not any(e.kind == "resync" for e in received):
                received.append(await next_event(theirs.queue, 15))
            resync_at = time.monotonic()
            # Announced once LISTEN is in place again, never while the server was down.
            assert resync_at >= back_at
            assert [e.origin for e in received if e.kind == "resync"] == ["relay"]

            # Notifications cross again, both ways of the restart.
            here.publish(DeploymentEvent(1, "SUCCESS"))
            while not any(e.state == "SUCCESS" for e in received):
                received.append(await next_event(theirs.queue, 10))
            sequences = [e.sequence for e in received if e.kind == "log"]
            # Sent during the outage: delivered after it, or covered by the resync.
            assert sequences in ([2], [])
    finally:
        for relay in relays:
            await relay.stop()


async def test_log_lines_written_during_a_restart_are_stored_once_in_order(
    pg_cluster: PgCluster, db: Database
) -> None:
    deployment_id = await new_deployment(db)
    bus = EventBus()
    written = 0

    async def write_steadily(writer: logs.LogWriter, until: asyncio.Task[float]) -> None:
        nonlocal written
        while not until.done() or written < 150:
            written += 1
            writer.write(f"line {written}")
            await asyncio.sleep(0.02)

    async with bus.subscribe() as sub:
        async with logs.LogWriter(db, bus, deployment_id, interval=0.05) as writer:
            await asyncio.sleep(0.3)
            outage = asyncio.create_task(restart(pg_cluster))
            await write_steadily(writer, outage)
            await outage
        announced = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]

    stored = await logs.list_lines(db, deployment_id, limit=10_000)
    assert [r.text for r in stored] == [f"line {n}" for n in range(1, written + 1)]
    assert [r.sequence for r in stored] == list(range(1, written + 1))
    # Every batch announced once, in order, covering each line exactly once.
    covered = [n for e in announced for n in range(e.first_sequence or 0, (e.sequence or 0) + 1)]
    assert covered == list(range(1, written + 1))


async def test_lines_of_a_long_outage_are_capped_and_the_log_says_so(
    pg_cluster: PgCluster, db: Database
) -> None:
    """The database down while a service talks a lot: the writer keeps at most its cap in
    memory (the first lines of the outage and the newest), never blocks a write, and once
    the database is back the log says how many lines it dropped, with no gap."""
    deployment_id = await new_deployment(db)
    written: list[str] = []
    async with logs.LogWriter(
        db, EventBus(), deployment_id, interval=0.05, buffer_bytes=30_000
    ) as writer:
        writer.write("before the outage")
        await asyncio.sleep(0.3)
        await asyncio.to_thread(pg_cluster.stop)
        try:
            for n in range(3000):
                written.append(f"line {n} " + "y" * 60)
                writer.write(written[-1])
                assert writer.buffered_bytes <= 30_000
                if n % 100 == 0:
                    await asyncio.sleep(0.01)  # the flusher tries (and waits) meanwhile
        finally:
            await asyncio.to_thread(pg_cluster.start)
    assert writer.dropped > 0

    stored = await logs.list_lines(db, deployment_id, limit=10_000)
    assert [r.sequence for r in stored] == list(range(1, len(stored) + 1))
    texts = [r.text for r in stored]
    assert texts[0] == "before the outage"
    markers = [i for i, text in enumerate(texts) if "lines dropped" in text]
    assert len(markers) == 1, markers
    at = markers[0]
    assert texts[at].startswith(
        f"… {writer.dropped} lines dropped while the database was unavailable"
    )
    head, tail = texts[1:at], texts[at + 1 :]
    assert head == written[: len(head)] and tail == written[len(written) - len(tail) :]
    assert len(head) + writer.dropped + len(tail) == len(written)


async def test_a_step_recorded_during_a_restart_waits_for_the_database(
    pg_cluster: PgCluster, db: Database
) -> None:
    deployment_id = await new_deployment(db)
    await asyncio.to_thread(pg_cluster.stop)
    try:
        with pytest.raises(Exception) as refused:
            await lifecycle.set_step(db, deployment_id, StepName.ROLLOUT, StepStatus.RUNNING)
        assert is_database_unavailable(refused.value)
        recording = asyncio.create_task(
            retry_unavailable(
                lambda: lifecycle.set_step(
                    db, deployment_id, StepName.ROLLOUT, StepStatus.COMPLETED, message="done"
                ),
                what="test step",
            )
        )
        await asyncio.sleep(OUTAGE)
        assert not recording.done()
    finally:
        await asyncio.to_thread(pg_cluster.start)
    await asyncio.wait_for(recording, 15)
    async with db.connection() as connection:
        row = (
            await connection.execute(
                select(step_table.c.status, step_table.c.message).where(
                    step_table.c.deployment_id == deployment_id
                )
            )
        ).one()
    assert (row.status, row.message) == (StepStatus.COMPLETED, "done")


async def test_a_log_subscriber_in_another_process_gets_every_line_once_across_a_restart(
    pg_cluster: PgCluster, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """The measured bug: the subscriber's feed read the database on a pooled connection the
    restart had closed, and failed with INTERNAL_ERROR. Now the feed resumes from its
    position, and the relay's resync covers the notifications lost meanwhile."""
    caplog.set_level(logging.WARNING)
    bus = EventBus()  # the API process: its own pool, bus, relay and hub
    relay = PostgresRelay(pg_cluster.url, bus, reconnect_delay=0.2)
    await relay.start()
    hub = Hub()
    try:
        async with LogProducer(pg_cluster.url) as runner:
            deployment_id = await runner.create()
            feed = DeploymentLogFeed(db, bus, deployment_id)
            source = LiveSource(hub, feed, "test", cursor=0)
            await hub.prepare(feed)

            async def follow() -> list[int]:
                return [line.sequence async for batch in source.batches() for line in batch.items]

            following = asyncio.create_task(follow())
            await runner.write(deployment_id, 20)
            writing = asyncio.create_task(runner.write(deployment_id, 150, rate=40))
            await asyncio.sleep(0.5)
            await restart(pg_cluster)
            await writing
            await runner.finish(deployment_id)
            sequences = await asyncio.wait_for(following, 30)
    finally:
        await hub.close()
        await relay.stop()
    assert sequences == list(range(1, 171))
    assert "lost its upstream" in caplog.text  # the feed's read failed, and was retried
