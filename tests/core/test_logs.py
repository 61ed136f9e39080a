"""Log lines on real SQLite and PostgreSQL: batched writes, contiguous sequences, raw text."""

from __future__ import annotations

from deploybot.core import logs
from deploybot.db.engine import Database
from deploybot.db.models import Deployment
from deploybot.domain import LogSource, LogStream
from deploybot.events.bus import EventBus
from tests.conftest import both_databases


async def new_deployment(db: Database) -> int:
    async with db.transaction() as session:
        row = Deployment(environment="test", application="web")
        session.add(row)
        await session.flush()
        assert row.id is not None
        return row.id


@both_databases
async def test_batched_lines_keep_their_order(database: Database) -> None:
    bus = EventBus()
    deployment_id = await new_deployment(database)
    async with bus.subscribe() as sub:
        async with logs.LogWriter(database, bus, deployment_id, batch=500) as writer:
            for i in range(5000):
                writer.write(f"line {i}", source=LogSource.SERVICE, source_name="web")
            writer.write("oops\nsecond", stream=LogStream.STDERR)
        log_events = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    # Batches, not a round trip per line.
    assert 10 <= len(log_events) <= 12
    assert await logs.count_lines(database, deployment_id) == 5002
    page = await logs.list_lines(database, deployment_id, after_seq=4998, limit=10)
    assert [(r.sequence, r.text) for r in page] == [
        (4999, "line 4998"),
        (5000, "line 4999"),
        (5001, "oops"),
        (5002, "second"),
    ]
    assert page[-1].stream is LogStream.STDERR and page[-1].source is LogSource.SYSTEM

    # A second writer (a resumed deployment) continues the sequence.
    async with logs.LogWriter(database, bus, deployment_id) as writer:
        writer.write("resumed")
    last = await logs.list_lines(database, deployment_id, after_seq=5002)
    assert [(r.sequence, r.text) for r in last] == [(5003, "resumed")]

    text = "".join([chunk async for chunk in logs.raw_text(database, deployment_id, chunk=700)])
    lines = text.splitlines()
    assert len(lines) == 5003
    assert lines[0] == "[web] line 0" and lines[-1] == "[system] resumed"
