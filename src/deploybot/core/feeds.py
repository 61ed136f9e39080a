"""The live feeds an instance serves from its own database and bus (and, for application
logs, from the runner's Docker log streams): a deployment's log, its progress, every
deployment change, an application's service logs. See `live/feed.py` for what a feed is.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from deploybot.core import history
from deploybot.core import logs as core_logs
from deploybot.core.inspectors import ServiceLogSource
from deploybot.core.progress import progress_of
from deploybot.db.engine import Database
from deploybot.domain import DeploymentState, StepStatus
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.events.bus import DeploymentEvent, EventBus
from deploybot.ids import InvalidId, decode_keyset, encode_keyset
from deploybot.live.feed import Batch, Emit, Feed
from deploybot.outages import is_database_unavailable
from deploybot.records import (
    DeploymentChange,
    DeploymentRecord,
    LogLineRecord,
    Progress,
    ServiceLogLine,
)
from deploybot.times import utcnow

BACKLOG_PAGE = 1000
"""Lines per backlog read (and per frame of a catching-up subscriber)."""

CHANGES_PAGE = 1000
"""Deployments per read of what changed since a cursor (a resume, a resync)."""


class DatabaseFeed(Feed):
    """A feed read from the database: a database outage is passing, the feed resumes."""

    def retryable(self, exc: BaseException) -> bool:
        return is_database_unavailable(exc)


def _drain(queue: asyncio.Queue[DeploymentEvent]) -> list[DeploymentEvent]:
    events = []
    while not queue.empty():
        events.append(queue.get_nowait())
    return events


class DeploymentLogFeed(DatabaseFeed):
    """One deployment's log lines, in order, ending when the deployment has ended
    and its last line was emitted."""

    contiguous = True

    def __init__(self, db: Database, bus: EventBus, deployment_id: int) -> None:
        super().__init__(("logs", deployment_id))
        self.db = db
        self.bus = bus
        self.deployment_id = deployment_id

    async def _max_seq(self) -> int:
        return await core_logs.last_sequence(self.db, self.deployment_id)

    async def open(self) -> None:
        await history.require_deployment(self.db, self.deployment_id)
        self.position = await self._max_seq()

    async def _state(self) -> DeploymentState:
        record = await history.require_deployment(self.db, self.deployment_id)
        state: DeploymentState = record.state
        return state

    async def _read(self, after: int, until: int | None = None) -> list[LogLineRecord]:
        return await core_logs.list_lines(
            self.db, self.deployment_id, after_seq=after, limit=BACKLOG_PAGE, until_seq=until
        )

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
        end = lines[-1].sequence if lines else after
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
        lines: list[LogLineRecord] = []
        expected = self.position + 1
        in_memory = not resync
        for event in events:
            if not in_memory or event.lines is None or event.first_sequence != expected:
                in_memory = False
                break
            lines.extend(LogLineRecord.of(line) for line in event.lines)
            expected = lines[-1].sequence + 1
        if in_memory:
            if lines:
                start, self.position = self.position, lines[-1].sequence
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
            start, self.position = self.position, lines[-1].sequence
            await emit(Batch(lines, start=start, end=self.position))

    async def _finish(self, emit: Emit) -> None:
        assert self.position is not None
        while True:
            lines = await self._read(self.position)
            start = self.position
            if lines:
                self.position = lines[-1].sequence
            if len(lines) < BACKLOG_PAGE:
                await emit(Batch(lines, start=start, end=self.position, final=True))
                return
            await emit(Batch(lines, start=start, end=self.position))


class DeploymentProgressFeed(DatabaseFeed):
    """Seed 002's progress messages of one deployment: a snapshot first, then each change."""

    def __init__(self, db: Database, bus: EventBus, deployment_id: int) -> None:
        super().__init__(("progress", deployment_id))
        self.db = db
        self.bus = bus
        self.deployment_id = deployment_id

    async def open(self) -> None:
        await history.require_deployment(self.db, self.deployment_id)

    async def _snapshot(self) -> Batch:
        record = await history.require_deployment(self.db, self.deployment_id)
        steps = (await history.steps_for(self.db, [self.deployment_id]))[self.deployment_id]
        progress = progress_of(record, steps)
        return Batch([progress], final=progress.final)

    async def backlog(self, cursor: int | None) -> Batch | None:
        return await self._snapshot()

    async def _read(self) -> tuple[SimpleNamespace, list[SimpleNamespace]]:
        """The deployment and its steps as mutable copies, to replay events onto."""
        record = await history.require_deployment(self.db, self.deployment_id)
        steps = (await history.steps_for(self.db, [self.deployment_id]))[self.deployment_id]
        return SimpleNamespace(**record.__dict__), [SimpleNamespace(**asdict(s)) for s in steps]

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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def event_cursor(deployment: DeploymentRecord) -> str:
    """A `deploymentEvents` cursor (opaque to clients): when the deployment last changed,
    its `updated_at` in microseconds since the epoch."""
    return cursor_at(deployment.updated_at)


def cursor_at(when: datetime) -> str:
    """The `deploymentEvents` cursor of a moment: a resume there gets what changed after."""
    return encode_keyset((when - EPOCH) // MICROSECOND)


async def resume_cursor(db: Database, environment: str) -> str:
    """Where a follower of this environment's changes stands now (its last change, or the
    epoch when it has none): a relay resumes there if it loses the stream before a change."""
    return cursor_at(await history.last_change(db, environment) or EPOCH)


def parse_event_cursor(text: str) -> datetime:
    """The time a cursor stands for; INVALID_INPUT naming `after` when it is not one."""
    try:
        (micros,) = decode_keyset(text, 1)
        return EPOCH + micros * MICROSECOND
    except (InvalidId, OverflowError):
        raise DeploybotError(
            ErrorCode.INVALID_INPUT, "after is not a deploymentEvents cursor", field="after"
        ) from None


def change_of(deployment: DeploymentRecord) -> DeploymentChange:
    """A change read back from storage: the deployment as it is now."""
    kind = "created" if deployment.updated_at == deployment.created_at else "changed"
    return DeploymentChange(kind, deployment.state, deployment)


async def changes_since(db: Database, environment: str, since: datetime) -> Batch:
    """What a subscriber resuming at `since` missed: each deployment changed since then, once,
    as it is now (its intermediate states are not stored), oldest change first."""
    rows = await history.changed_since(db, environment, since, limit=CHANGES_PAGE)
    return Batch([change_of(row) for row in rows])


class DeploymentEventFeed(DatabaseFeed):
    """Every deployment created or changing state in this environment (never final).
    Filters are applied per subscription by the reader, since they differ.

    `watermark` is the latest change emitted. When events may have been missed (the
    relay lost its LISTEN connection, the bus queue overflowed, the database went
    away under the feed), the deployments changed after it are read back and emitted.
    """

    def __init__(self, db: Database, bus: EventBus, environment: str) -> None:
        super().__init__(("deployment-events", environment))
        self.db = db
        self.bus = bus
        self.environment = environment
        self.watermark: datetime | None = None

    async def run(self, emit: Emit) -> None:
        async with self.bus.subscribe(maxsize=10_000) as sub:
            if self.watermark is None:
                self.watermark = await history.last_change(self.db, self.environment)
            else:  # run again after a database outage: what changed meanwhile
                await self._resync(emit)
            while True:
                events = [await sub.queue.get(), *_drain(sub.queue)]
                overflowed, sub.overflowed = sub.overflowed, False
                if overflowed or any(e.kind == "resync" for e in events):
                    await self._resync(emit)
                    continue
                changes = [e for e in events if e.kind in ("created", "changed") and e.state]
                if not changes:
                    continue
                rows = await history.get_deployments(self.db, {e.deployment_id for e in changes})
                items = [
                    DeploymentChange(e.kind, DeploymentState(e.state), rows[e.deployment_id])
                    for e in changes
                    if e.deployment_id in rows
                ]
                if items:
                    self._advance(items)
                    await emit(Batch(items))

    def _advance(self, items: list[DeploymentChange]) -> None:
        latest = max(item.deployment.updated_at for item in items)
        if self.watermark is None or latest > self.watermark:
            self.watermark = latest

    async def _resync(self, emit: Emit) -> None:
        """Emit the deployments changed after the watermark (all of them, page by page)."""
        while True:
            if self.watermark is None:
                self.watermark = await history.last_change(self.db, self.environment)
                return
            batch = await changes_since(self.db, self.environment, self.watermark)
            if not batch.items:
                return
            self._advance(list(batch.items))
            await emit(batch)
            if len(batch.items) < CHANGES_PAGE:
                return


# --- application (service) logs -----------------------------------------------------------------


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
