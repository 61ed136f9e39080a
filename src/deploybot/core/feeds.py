"""Live feeds: what the subscriptions (and `?follow=true`) stream.

A feed is one live upstream (a deployment's log, its progress, the stream of
deployment changes, an application's service logs) shared by every
subscriber with the same key, so a thousand readers of one log cost one
reader of the bus and one database read per batch.

A feed with exact cursors (`contiguous`: log sequence numbers) also answers
`backlog(cursor)` from the database, which is how a late subscriber, a
reconnecting one (`after:`) and one whose queue overflowed get exactly the
lines they have not seen: no gap, no duplicate.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any, NamedTuple, Protocol

from sqlalchemy import func, select

from deploybot.core import deployments as core
from deploybot.core import logs as core_logs
from deploybot.core.progress import Progress, progress_of
from deploybot.db.engine import Database
from deploybot.db.types import utcnow
from deploybot.domain import DeploymentState, LogSource, LogStream, StepStatus
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.events.bus import DeploymentEvent, EventBus

BACKLOG_PAGE = 1000
"""Lines per backlog read (and per frame of a catching-up subscriber)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Items a feed produced; `start`/`end` are the cursors around them (None: no cursor).
    `final`: nothing follows, the stream ends after this batch."""

    items: Sequence[Any]
    start: int | None = None
    end: int | None = None
    final: bool = False


Emit = Callable[[Batch], Awaitable[None]]


class Feed(ABC):
    contiguous = False
    """True when cursors are exact positions a subscriber can resume from storage."""

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.position: int | None = None
        """The end cursor of the last live batch emitted (contiguous feeds)."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Check the feed can exist (raise DeploybotError) and set the live position."""

    @abstractmethod
    async def run(self, emit: Emit) -> None:
        """Emit live batches until the stream is final (then return) or cancelled."""

    async def backlog(self, cursor: int | None) -> Batch | None:
        """What a subscriber at `cursor` gets before (or instead of) live batches."""
        return None


class LogEntry(NamedTuple):
    """A log line as the feeds carry it (a database row has the same attributes)."""

    seq: int
    timestamp: datetime
    source: LogSource
    source_name: str | None
    stream: LogStream
    text: str

    @classmethod
    def of(cls, line: Any) -> LogEntry:
        if isinstance(line, dict):
            return cls(
                line["seq"],
                line["timestamp"],
                line["source"],
                line["source_name"],
                line["stream"],
                line["text"],
            )
        return cls(line.seq, line.timestamp, line.source, line.source_name, line.stream, line.text)


async def _require_deployment(db: Database, deployment_id: int) -> Any:
    record = await core.get_deployment(db, deployment_id)
    if record is None:
        raise DeploybotError(
            ErrorCode.DEPLOYMENT_NOT_FOUND, f"deployment {deployment_id} not found", field="id"
        )
    return record


def _drain(queue: asyncio.Queue[DeploymentEvent]) -> list[DeploymentEvent]:
    events = []
    while not queue.empty():
        events.append(queue.get_nowait())
    return events


class DeploymentLogFeed(Feed):
    """One deployment's log lines, in order, ending when the deployment has ended
    and its last line was emitted."""

    contiguous = True

    def __init__(self, db: Database, bus: EventBus, deployment_id: int) -> None:
        super().__init__(("logs", deployment_id))
        self.db = db
        self.bus = bus
        self.deployment_id = deployment_id

    async def _max_seq(self) -> int:
        table = core_logs.log_table
        async with self.db.connection() as conn:
            result = await conn.execute(
                select(func.max(table.c.seq)).where(table.c.deployment_id == self.deployment_id)
            )
            return int(result.scalar_one() or 0)

    async def open(self) -> None:
        await _require_deployment(self.db, self.deployment_id)
        self.position = await self._max_seq()

    async def _state(self) -> DeploymentState:
        record = await _require_deployment(self.db, self.deployment_id)
        state: DeploymentState = record.state
        return state

    async def _read(self, after: int, until: int | None = None) -> list[LogEntry]:
        rows = await core_logs.list_lines(
            self.db, self.deployment_id, after_seq=after, limit=BACKLOG_PAGE, until_seq=until
        )
        return [LogEntry.of(r) for r in rows]

    async def backlog(self, cursor: int | None) -> Batch | None:
        after = cursor or 0
        final = (await self._state()).is_final  # read first: then every line is stored
        until = None if final else self.position
        if until is not None and after >= until:
            return None
        lines = await self._read(after, until)
        done = final and len(lines) < BACKLOG_PAGE
        if not lines and not done:
            return None
        end = lines[-1].seq if lines else after
        return Batch(lines, start=after, end=end, final=done)

    async def run(self, emit: Emit) -> None:
        async with self.bus.subscribe() as sub:
            # Lines stored between open() and subscribing are picked up from the database.
            await self._catch_up(emit, await self._max_seq())
            if (await self._state()).is_final:
                await self._finish(emit)
                return
            while True:
                events = [await sub.queue.get(), *_drain(sub.queue)]
                overflowed, sub.overflowed = sub.overflowed, False
                mine = [e for e in events if e.deployment_id == self.deployment_id]
                final = any(e.state and DeploymentState(e.state).is_final for e in mine)
                if final:
                    await self._finish(emit)
                    return
                logs = [e for e in mine if e.kind == "log" and e.sequence is not None]
                resync = overflowed or any(e.kind == "resync" for e in events)
                if logs or resync:
                    await self._emit_logs(emit, logs, resync)

    async def _emit_logs(self, emit: Emit, events: list[DeploymentEvent], resync: bool) -> None:
        assert self.position is not None
        lines: list[LogEntry] = []
        expected = self.position + 1
        in_memory = not resync
        for event in events:
            if not in_memory or event.lines is None or event.first_sequence != expected:
                in_memory = False
                break
            lines.extend(LogEntry.of(line) for line in event.lines)
            expected = lines[-1].seq + 1
        if in_memory:
            if lines:
                start, self.position = self.position, lines[-1].seq
                await emit(Batch(lines, start=start, end=self.position))
            return
        target = max((e.sequence or 0 for e in events), default=0) if not resync else None
        await self._catch_up(emit, target)

    async def _catch_up(self, emit: Emit, target: int | None) -> None:
        """Emit stored lines after the position (up to `target`, or all)."""
        assert self.position is not None
        while target is None or self.position < target:
            lines = await self._read(self.position, target)
            if not lines:
                break
            start, self.position = self.position, lines[-1].seq
            await emit(Batch(lines, start=start, end=self.position))

    async def _finish(self, emit: Emit) -> None:
        assert self.position is not None
        while True:
            lines = await self._read(self.position)
            start = self.position
            if lines:
                self.position = lines[-1].seq
            if len(lines) < BACKLOG_PAGE:
                await emit(Batch(lines, start=start, end=self.position, final=True))
                return
            await emit(Batch(lines, start=start, end=self.position))


class DeploymentProgressFeed(Feed):
    """Seed 002's progress messages of one deployment: a snapshot first, then each change."""

    def __init__(self, db: Database, bus: EventBus, deployment_id: int) -> None:
        super().__init__(("progress", deployment_id))
        self.db = db
        self.bus = bus
        self.deployment_id = deployment_id

    async def open(self) -> None:
        await _require_deployment(self.db, self.deployment_id)

    async def _snapshot(self) -> Batch:
        record = await _require_deployment(self.db, self.deployment_id)
        steps = (await core.steps_for(self.db, [self.deployment_id])).get(self.deployment_id, [])
        progress = progress_of(record, steps)
        return Batch([progress], final=progress.final)

    async def backlog(self, cursor: int | None) -> Batch | None:
        return await self._snapshot()

    async def _read(self) -> tuple[SimpleNamespace, list[SimpleNamespace]]:
        """The deployment and its steps as mutable copies, to replay events onto."""
        record = await _require_deployment(self.db, self.deployment_id)
        steps = (await core.steps_for(self.db, [self.deployment_id])).get(self.deployment_id, [])
        return SimpleNamespace(**record._mapping), [SimpleNamespace(**s._mapping) for s in steps]

    async def run(self, emit: Emit) -> None:
        """Each step event is replayed onto the last known state, so quick successive
        changes are each reported, not only the latest one the database shows."""
        async with self.bus.subscribe() as sub:
            record, steps = await self._read()
            last = progress_of(record, steps)
            if last.final:
                await emit(Batch([last], final=True))
                return

            async def report(progress: Progress) -> None:
                nonlocal last
                if progress != last:
                    last = progress
                    await emit(Batch([progress], final=progress.final))

            while True:
                events = [await sub.queue.get(), *_drain(sub.queue)]
                if sub.overflowed or any(e.kind == "resync" for e in events):
                    sub.overflowed = False
                    record, steps = await self._read()
                    await report(progress_of(record, steps))
                    if last.final:
                        return
                    continue
                for event in events:
                    if event.deployment_id != self.deployment_id:
                        continue
                    if event.state and DeploymentState(event.state).is_final:
                        record, steps = await self._read()
                        await report(progress_of(record, steps))
                        return
                    if event.state:
                        record.state = DeploymentState(event.state)
                    if event.kind == "step" and event.step and event.step_status:
                        _apply_step(steps, event)
                    await report(progress_of(record, steps))


def _apply_step(steps: list[SimpleNamespace], event: DeploymentEvent) -> None:
    now = utcnow()
    status = StepStatus(event.step_status)
    for step in steps:
        if step.name == event.step:
            step.status = status
            if status is StepStatus.RUNNING:
                step.started_at = now
            elif status is StepStatus.FAILED:
                step.error, step.finished_at = event.message, now
            elif status is not StepStatus.PENDING:
                step.message, step.finished_at = event.message or step.message, now


@dataclass(frozen=True, slots=True)
class DeploymentChange:
    """A deployment was created or changed to `state`; `deployment` is its row as read
    afterwards (it may already have moved on)."""

    kind: str
    state: DeploymentState
    deployment: Any


class DeploymentEventFeed(Feed):
    """Every deployment created or changing state in this environment (never final).
    Filters are applied per subscription by the reader, since they differ."""

    def __init__(self, db: Database, bus: EventBus) -> None:
        super().__init__(("deployment-events",))
        self.db = db
        self.bus = bus

    async def run(self, emit: Emit) -> None:
        async with self.bus.subscribe(maxsize=10_000) as sub:
            while True:
                events = [await sub.queue.get(), *_drain(sub.queue)]
                changes = [e for e in events if e.kind in ("created", "changed") and e.state]
                if not changes:
                    continue
                rows = await core.get_deployments(self.db, {e.deployment_id for e in changes})
                items = [
                    DeploymentChange(e.kind, DeploymentState(e.state), rows[e.deployment_id])
                    for e in changes
                    if e.deployment_id in rows
                ]
                if items:
                    await emit(Batch(items))


# --- application (service) logs -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceLogLine:
    """A line a running service printed (the Docker log of one of its tasks)."""

    service: str
    task: str | None
    timestamp: datetime
    stream: LogStream
    text: str


class ServiceLogSource(Protocol):
    """The runner's side of application logs (the core never talks to Docker itself)."""

    async def services(self, namespace: str) -> list[str]: ...

    async def tail(
        self, namespace: str, *, tail: int | None, since: datetime | None
    ) -> list[ServiceLogLine]: ...

    async def follow(
        self, namespace: str, emit: Callable[[list[ServiceLogLine]], Awaitable[None]]
    ) -> None: ...


class ApplicationLogFeed(Feed):
    """The live logs of an application's running services: one Docker log stream per
    service, shared by every subscriber, closed when the last one leaves."""

    def __init__(self, source: ServiceLogSource, application: str, environment: str) -> None:
        super().__init__(("application-logs", application, environment))
        self.source = source
        self.application = application
        self.environment = environment

    async def open(self) -> None:
        if not await self.source.services(self.application):
            raise DeploybotError(
                ErrorCode.DEPLOYMENT_NOT_FOUND,
                f"application {self.application!r} has no running services",
                field="application",
            )

    async def run(self, emit: Emit) -> None:
        async def forward(lines: list[ServiceLogLine]) -> None:
            await emit(Batch(lines))

        await self.source.follow(self.application, forward)
        await emit(Batch([], final=True))
