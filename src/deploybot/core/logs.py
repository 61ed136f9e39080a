"""Deployment log lines: batched writing, paginated reading, raw text.

Lines are numbered per deployment (`seq`, from 1) so that a reader can resume
exactly after the last line it saw. Writes are batched by time and by count:
a chatty service must not cost a database round trip per line. While the database
is unavailable (restarting), lines wait in memory and their batch is retried; the
sequence number makes the retry safe (see `store_lines`).
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


class LogWriter:
    """Appends one deployment's lines; flushes every `interval` seconds or `batch` lines."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        deployment_id: int,
        *,
        interval: float = 0.1,
        batch: int = 1000,
    ) -> None:
        self.db = db
        self.bus = bus
        self.deployment_id = deployment_id
        self.interval = interval
        self.batch = batch
        self._seq = 0
        self._pending: list[dict[str, Any]] = []
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
            self._pending.append(
                {
                    "deployment_id": self.deployment_id,
                    "seq": self._seq,
                    "timestamp": timestamp or utcnow(),
                    "source": source,
                    "source_name": source_name,
                    "stream": stream,
                    "text": line,
                }
            )
        if len(self._pending) >= self.batch:
            self._wake.set()

    async def flush(self) -> None:
        async with self._lock:
            # Only what is pending now: lines written during the inserts wait for the next
            # flush, or a steady writer would turn batches into a trickle of tiny ones.
            remaining = len(self._pending)
            while remaining > 0:
                chunk = self._pending[: min(self.batch, remaining)]
                remaining -= len(chunk)
                await store_lines(self.db, chunk)
                del self._pending[: len(chunk)]
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
