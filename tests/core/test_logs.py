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


@both_databases
async def test_a_full_buffer_keeps_the_first_and_newest_lines_and_says_what_it_dropped(
    database: Database,
) -> None:
    """Lines that cannot be stored (here: no flush yet) are capped: the first lines and the
    newest stay, one line counts the dropped ones, and the numbering has no gap."""
    deployment_id = await new_deployment(database)
    writer = logs.LogWriter(database, EventBus(), deployment_id, buffer_bytes=20_000)
    texts = [f"line {i} " + "x" * 90 for i in range(2000)]
    for text in texts:
        writer.write(text, source=LogSource.SERVICE, source_name="web")
        assert writer.buffered_bytes <= 20_000
    assert 0 < writer.dropped < 2000
    await writer.flush()

    stored = await logs.list_lines(database, deployment_id, limit=10_000)
    assert [r.sequence for r in stored] == list(range(1, len(stored) + 1))
    markers = [i for i, r in enumerate(stored) if "lines dropped" in r.text]
    assert len(markers) == 1, [r.text for r in stored if "dropped" in r.text]
    at = markers[0]
    marker = stored[at]
    assert marker.text.startswith(
        f"… {writer.dropped} lines dropped while the database was unavailable"
    )
    assert marker.source is LogSource.SYSTEM and marker.stream is LogStream.STDERR
    # The first lines, then the newest: nothing else, nothing twice, in order.
    head = [r.text for r in stored[:at]]
    tail = [r.text for r in stored[at + 1 :]]
    assert head == texts[: len(head)] and tail == texts[len(texts) - len(tail) :]
    assert len(head) + writer.dropped + len(tail) == len(texts)
    assert head and tail

    # The next line goes on from there.
    writer.write("after")
    await writer.flush()
    last = await logs.list_lines(database, deployment_id, after_seq=len(stored))
    assert [(r.sequence, r.text) for r in last] == [(len(stored) + 1, "after")]


async def test_an_unfull_buffer_drops_nothing(database: Database) -> None:
    deployment_id = await new_deployment(database)
    async with logs.LogWriter(database, EventBus(), deployment_id, buffer_bytes=4096) as writer:
        for i in range(30):
            writer.write(f"line {i}")
    assert writer.dropped == 0
    stored = await logs.list_lines(database, deployment_id)
    assert [r.text for r in stored] == [f"line {i}" for i in range(30)]
