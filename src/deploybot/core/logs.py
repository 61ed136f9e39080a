"""Deployment log lines: batched writing, paginated reading, raw text.

Lines are numbered per deployment (`seq`, from 1) so that a reader can resume
exactly after the last line it saw. Writes are batched by time and by count:
a chatty service must not cost a database round trip per line. While the database
is unavailable (restarting), lines wait in memory and their batch is retried; the
sequence number makes the retry safe (see `store_lines`). The lines waiting are capped
(`buffer_bytes`): past the cap the first lines of the wait and the newest stay, the
middle is dropped for one line that says how many, and the numbering stays contiguous.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from deploybot.core.log_retention import pruned
from deploybot.db.engine import Database
from deploybot.db.models import log_table
from deploybot.db.retry import retry_unavailable
from deploybot.domain import LogSource, LogStream
from deploybot.events.bus import DeploymentEvent, EventBus
from deploybot.metrics import LOG_LINES
from deploybot.records import LogLineRecord
from deploybot.times import utcnow

LINE_OVERHEAD = 100
"""Bytes a buffered line costs beyond its text (its row: numbers, times, names), roughly."""

BUFFER_BYTES = 8 * 1024 * 1024
"""The default cap on one writer's waiting lines (the `log_buffer_bytes` setting)."""


def line_cost(row: dict[str, Any]) -> int:
    return len(row["text"]) + LINE_OVERHEAD


class LogWriter:
    """Appends one deployment's lines; flushes every `interval` seconds or `batch` lines.
    At most about `buffer_bytes` of lines wait in memory for the database (see `_shed`)."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        deployment_id: int,
        *,
        interval: float = 0.1,
        batch: int = 1000,
        buffer_bytes: int = BUFFER_BYTES,
    ) -> None:
        self.db = db
        self.bus = bus
        self.deployment_id = deployment_id
        self.interval = interval
        self.batch = batch
        self.buffer_bytes = buffer_bytes
        self.dropped = 0
        """Lines dropped so far because the buffer was full."""
        self._seq = 0
        self._pending: list[dict[str, Any]] = []
        self._pending_bytes = 0
        self._in_flight = 0
        """The first pending lines, being stored now: never dropped nor renumbered."""
        self._marker: dict[str, Any] | None = None
        """The line that counts the dropped lines, while it waits (it is updated as more go)."""
        self._marker_count = 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LogWriter:
        self._seq = await retry_unavailable(
            lambda: last_sequence(self.db, self.deployment_id),
            what=f"deployment {self.deployment_id}: reading its last log line",
        )
        self._task = asyncio.create_task(self._flusher())
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Stop the flusher between flushes, never in one: a cancelled insert would lose
        # its lines (and leave a gap in the sequence).
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self.flush()

    def write(
        self,
        text: str,
        *,
        source: LogSource = LogSource.SYSTEM,
        stream: LogStream = LogStream.STDOUT,
        source_name: str | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        for line in text.splitlines() or [""]:
            self._seq += 1
            row = {
                "deployment_id": self.deployment_id,
                "seq": self._seq,
                "timestamp": timestamp or utcnow(),
                "source": source,
                "source_name": source_name,
                "stream": stream,
                "text": line,
            }
            self._pending.append(row)
            self._pending_bytes += line_cost(row)
        if self._pending_bytes > self.buffer_bytes:
            self._shed()
        if len(self._pending) >= self.batch:
            self._wake.set()

    @property
    def buffered_bytes(self) -> int:
        """What the lines waiting to be stored cost now (see `line_cost`)."""
        return self._pending_bytes

    def _shed(self) -> None:
        """The buffer is full: the database has not taken lines for a while. Writing must
        not wait (the deployment goes on whatever the database does) and memory must not
        grow without end, so lines are dropped, visibly: the first lines of the wait (up to
        half the cap) and the newest stay, the ones between give way to one marker line
        counting them. The lines after the marker are numbered on from it, so the stored
        log has no gap. Down to three quarters of the cap, so that it is not redone for
        every line."""
        pending = self._pending
        at = next(
            (i for i in range(self._in_flight, len(pending)) if pending[i] is self._marker),
            None,
        )
        if at is None:  # a new marker, after the first lines of the wait
            at = self._in_flight
            kept = sum(line_cost(row) for row in pending[:at])
            while at < len(pending) - 1 and kept + line_cost(pending[at]) <= self.buffer_bytes // 2:
                kept += line_cost(pending[at])
                at += 1
            first = pending[at]
            self._marker = {
                **first,
                "source": LogSource.SYSTEM,
                "source_name": None,
                "stream": LogStream.STDERR,
            }
            self._marker_count = 0
            pending.insert(at, self._marker)
        marker = self._marker
        assert marker is not None
        total = sum(line_cost(row) for row in pending)
        end = at + 1
        while end < len(pending) - 1 and total > self.buffer_bytes * 3 // 4:
            total -= line_cost(pending[end])
            end += 1
        dropped = end - at - 1
        if dropped == 0 and self._marker_count == 0:  # nothing to drop (all in flight)
            del pending[at]
            self._marker = None
            return
        del pending[at + 1 : end]
        self._marker_count += dropped
        self.dropped += dropped
        marker["text"] = (
            f"… {self._marker_count} lines dropped while the database was unavailable (or too"
            f" slow): at most {self.buffer_bytes} bytes of log wait in memory …"
        )
        sequence = marker["seq"]
        for row in pending[at + 1 :]:
            sequence += 1
            row["seq"] = sequence
        self._seq = sequence
        self._pending_bytes = sum(line_cost(row) for row in pending)

    async def flush(self) -> None:
        async with self._lock:
            # Only what is pending now: lines written during the inserts wait for the next
            # flush, or a steady writer would turn batches into a trickle of tiny ones.
            remaining = len(self._pending)
            while remaining > 0:
                # Lines dropped meanwhile (see `_shed`) shorten what is left.
                chunk, size = self._chunk(min(self.batch, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                self._in_flight = len(chunk)
                try:
                    await store_lines(self.db, chunk)
                finally:
                    self._in_flight = 0
                del self._pending[: len(chunk)]
                self._pending_bytes -= size
                LOG_LINES.inc(len(chunk))
                self.bus.publish(
                    DeploymentEvent(
                        self.deployment_id,
                        None,
                        "log",
                        sequence=chunk[-1]["seq"],
                        first_sequence=chunk[0]["seq"],
                        lines=chunk,
                    )
                )

    def _chunk(self, most: int) -> tuple[list[dict[str, Any]], int]:
        """The next lines to store: at most `most`, and at most half the buffer's bytes (at
        least one line), so that lines in flight never crowd out the rest; and their cost."""
        chunk: list[dict[str, Any]] = []
        size = 0
        for row in self._pending[:most]:
            cost = line_cost(row)
            if chunk and size + cost > self.buffer_bytes // 2:
                break
            chunk.append(row)
            size += cost
        return chunk, size

    async def _flusher(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self.flush()


async def store_lines(db: Database, rows: list[dict[str, Any]]) -> None:
    """Insert a batch of one deployment's lines in one transaction. While the database is
    unavailable the batch is tried again until it is stored (the runner keeps its lines
    meanwhile). An attempt may have committed although its answer was lost with the
    connection: a retry therefore skips the lines whose (deployment, seq) is already
    stored, so no line is ever stored twice. The first attempt inserts plainly, so a
    conflict there (another runner wrote these numbers) still fails loudly."""
    attempts = 0

    async def attempt() -> None:
        nonlocal attempts
        attempts += 1
        statement = insert(log_table) if attempts == 1 else _insert_skipping_stored(db)
        async with db.transaction() as session:
            await session.execute(statement, rows)

    await retry_unavailable(
        attempt, what=f"storing log lines of deployment {rows[0]['deployment_id']}"
    )


def _insert_skipping_stored(db: Database) -> Insert:
    """INSERT … ON CONFLICT (deployment_id, seq) DO NOTHING, in the database's dialect."""
    dialect = sqlite if db.is_sqlite else postgresql
    statement: Insert = dialect.insert(log_table).on_conflict_do_nothing(
        index_elements=[log_table.c.deployment_id, log_table.c.seq]
    )
    return statement


async def list_lines(
    db: Database,
    deployment_id: int,
    *,
    after_seq: int = 0,
    limit: int = 100,
    until_seq: int | None = None,
) -> list[LogLineRecord]:
    query = select(log_table).where(
        log_table.c.deployment_id == deployment_id, log_table.c.seq > after_seq
    )
    if until_seq is not None:
        query = query.where(log_table.c.seq <= until_seq)
    async with db.connection() as conn:
        result = await conn.execute(query.order_by(log_table.c.seq).limit(limit))
        return [LogLineRecord.of(row._mapping) for row in result]


async def count_lines(db: Database, deployment_id: int) -> int:
    async with db.connection() as connection:
        result = await connection.execute(
            select(func.count()).where(log_table.c.deployment_id == deployment_id)
        )
        return int(result.scalar_one())


async def last_sequence(db: Database, deployment_id: int) -> int:
    """The sequence of a deployment's last stored line (0: none yet)."""
    async with db.connection() as connection:
        result = await connection.execute(
            select(func.max(log_table.c.seq)).where(log_table.c.deployment_id == deployment_id)
        )
        return int(result.scalar_one() or 0)


def format_line(line: LogLineRecord) -> str:
    label = line.source_name or line.source.value.lower()
    return f"[{label}] {line.text}\n"


async def raw_text(db: Database, deployment_id: int, *, chunk: int = 2000) -> AsyncIterator[str]:
    """The whole log as text, read in chunks so a huge log never sits in memory at once;
    where log retention removed lines, one line says how many and when."""
    after = 0
    pruned_at: datetime | None = None
    while True:
        rows = await list_lines(db, deployment_id, after_seq=after, limit=chunk)
        if not rows:
            return
        parts = []
        for row in rows:
            if row.sequence != after + 1:
                if pruned_at is None:
                    _, pruned_at = await pruned(db, deployment_id)
                parts.append(gap_line(row.sequence - after - 1, pruned_at))
            parts.append(format_line(row))
            after = row.sequence
        yield "".join(parts)


def gap_line(count: int, when: datetime | None) -> str:
    at = f" on {when.isoformat(timespec='seconds')}" if when else ""
    return f"[deploybot] … {count} lines pruned by log retention{at} …\n"
