"""Log lines on real SQLite and PostgreSQL: batched writes, contiguous sequences, raw text."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from deploybot.core import logs
from deploybot.db.engine import Database
from deploybot.db.models import Deployment
from deploybot.domain import LogSource, LogStream
from deploybot.events.bus import EventBus
from deploybot.times import utcnow
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


@both_databases
async def test_a_batch_retried_after_a_lost_commit_answer_is_stored_once(
    database: Database,
) -> None:
    """The connection dies right after COMMIT went through: the writer cannot tell, so it
    retries the batch; its lines must be stored (and announced) once, not twice."""
    bus = EventBus()
    deployment_id = await new_deployment(database)
    lost: list[str] = []

    def lose_the_answer(session: Session) -> None:
        if not lost:
            lost.append("once")
            raise ConnectionResetError("connection lost after COMMIT")

    async with bus.subscribe() as sub:
        async with logs.LogWriter(database, bus, deployment_id) as writer:
            writer.write("before")
            await writer.flush()
            event.listen(Session, "after_commit", lose_the_answer)
            try:
                writer.write("first\nsecond")
                await writer.flush()
            finally:
                event.remove(Session, "after_commit", lose_the_answer)
            writer.write("after")
        announced = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert lost == ["once"]  # the first attempt's commit did go through, and was "lost"
    stored = await logs.list_lines(database, deployment_id)
    assert [(r.sequence, r.text) for r in stored] == [
        (1, "before"),
        (2, "first"),
        (3, "second"),
        (4, "after"),
    ]
    assert [(e.first_sequence, e.sequence) for e in announced] == [(1, 1), (2, 3), (4, 4)]


@both_databases
async def test_storing_a_batch_again_skips_the_stored_lines_only_on_retry(
    database: Database,
) -> None:
    """A first attempt that collides with stored numbers (another writer) still fails."""
    deployment_id = await new_deployment(database)
    row = {
        "deployment_id": deployment_id,
        "seq": 1,
        "timestamp": utcnow(),
        "source": LogSource.SYSTEM,
        "source_name": None,
        "stream": LogStream.STDOUT,
        "text": "one",
    }
    await logs.store_lines(database, [row])
    with pytest.raises(IntegrityError):
        await logs.store_lines(database, [{**row, "text": "other"}])
    stored = await logs.list_lines(database, deployment_id)
    assert [(r.sequence, r.text) for r in stored] == [(1, "one")]
