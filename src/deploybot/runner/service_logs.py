"""The live logs of an application's running services, read from Docker.

One log stream per Swarm service of the application's stack; the feed that
owns them (one per application, shared by every subscriber) cancels them
when its last subscriber leaves, and a service's stream is closed when the
service is removed. Docker's multiplexed log format is read here directly so
that stdout and stderr stay apart (aiodocker's helper mixes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from aiodocker.exceptions import DockerError

from deploybot.domain import LogStream
from deploybot.namespaces import StackNamespaces
from deploybot.records import ServiceLogLine
from deploybot.runner.swarm import DockerUnavailable, Swarm

_STREAMS = {1: LogStream.STDOUT, 2: LogStream.STDERR}


def parse_timestamp(value: str) -> datetime:
    """Docker's RFC 3339 with nanoseconds (`2026-11-22T18:40:00.123456789Z`)."""
    value = value.rstrip("Z")
    if "." in value:
        whole, fraction = value.split(".", 1)
        value = f"{whole}.{fraction[:6]:0<6}"
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def parse_line(service: str, stream: LogStream, raw: str) -> ServiceLogLine:
    """`<timestamp> <details> <text>` as Docker writes it with timestamps and details on."""
    stamp, _, rest = raw.partition(" ")
    task = None
    if rest.startswith("com.docker.swarm."):
        details, _, rest = rest.partition(" ")
        for item in details.split(","):
            key, _, value = item.partition("=")
            if key == "com.docker.swarm.task.id":
                task = value
    try:
        timestamp = parse_timestamp(stamp)
    except ValueError:
        timestamp, rest = datetime.now(UTC), raw
    return ServiceLogLine(service=service, task=task, timestamp=timestamp, stream=stream, text=rest)


class ServiceLogStreams:
    """`core.feeds.ServiceLogSource` over the Docker API."""

    def __init__(
        self,
        swarm: Swarm,
        namespaces: StackNamespaces,
        *,
        poll_interval: float = 2.0,
        flush: float = 0.1,
    ) -> None:
        self.swarm = swarm
        self.namespaces = namespaces
        """An application's services are those of its stack application."""
        self.poll_interval = poll_interval
        self.flush = flush
        self.open_streams: dict[str, int] = {}
        """Open Docker log streams per service (what the tests observe)."""

    async def _services(self, application: str) -> dict[str, str]:
        found = await self.swarm.stack_services(self.namespaces.of(application))
        return {s["ID"]: s["Spec"]["Name"] for s in found}

    async def services(self, application: str) -> list[str]:
        try:
            return sorted((await self._services(application)).values())
        except (DockerError, DockerUnavailable):
            return []

    async def _frames(
        self, service_id: str, *, follow: bool, tail: int | None, since: float | None
    ) -> AsyncIterator[tuple[LogStream, str]]:
        async with self.swarm.service_log_frames(
            service_id, follow=follow, tail=tail, since=since
        ) as content:
            pending = {1: "", 2: ""}
            while True:
                try:
                    header = await content.readexactly(8)
                except asyncio.IncompleteReadError:
                    return
                kind, size = header[0], int.from_bytes(header[4:8], "big")
                data = (await content.readexactly(size)).decode("utf-8", "replace")
                text = pending.get(kind, "") + data
                *lines, pending[kind] = text.split("\n")
                for line in lines:
                    yield _STREAMS.get(kind, LogStream.STDOUT), line

    async def tail(
        self, application: str, *, tail: int | None, since: datetime | None
    ) -> list[ServiceLogLine]:
        lines: list[ServiceLogLine] = []
        for service_id, name in (await self._services(application)).items():
            with contextlib.suppress(DockerError, DockerUnavailable):
                async for stream, raw in self._frames(
                    service_id,
                    follow=False,
                    tail=tail,
                    since=since.timestamp() if since else None,
                ):
                    lines.append(parse_line(name, stream, raw))
        lines.sort(key=lambda line: line.timestamp)
        return lines[-tail:] if tail else lines

    async def follow(
        self, application: str, emit: Callable[[list[ServiceLogLine]], Awaitable[None]]
    ) -> None:
        """Stream every service of the stack until none is left (or until cancelled)."""
        buffer: list[ServiceLogLine] = []
        streams: dict[str, asyncio.Task[None]] = {}
        started = time.time()
        flusher = asyncio.create_task(self._flush_every(buffer, emit))
        try:
            while True:
                current = await self._current(application, streams)
                for service_id in list(streams):
                    if service_id not in current:  # removed: its stream would never end
                        streams.pop(service_id).cancel()
                for service_id, name in current.items():
                    if service_id not in streams:
                        reader = self._read(service_id, name, started, buffer)
                        streams[service_id] = asyncio.create_task(reader)
                if not streams:
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            await _stop([*streams.values(), flusher])
            if buffer:
                await emit(buffer)

    async def _current(
        self, application: str, streams: dict[str, asyncio.Task[None]]
    ) -> dict[str, str]:
        """The stack's services now; while Docker does not answer, the ones being read."""
        try:
            return await self._services(application)
        except (DockerError, DockerUnavailable):
            return {service_id: "" for service_id in streams}

    async def _read(
        self, service_id: str, name: str, since: float, buffer: list[ServiceLogLine]
    ) -> None:
        """Follow one service's stream into `buffer` (counted in `open_streams` while open)."""
        self.open_streams[name] = self.open_streams.get(name, 0) + 1
        try:
            async for stream, raw in self._frames(service_id, follow=True, tail=None, since=since):
                buffer.append(parse_line(name, stream, raw))
        except (DockerError, DockerUnavailable, OSError):
            pass
        finally:
            self.open_streams[name] -= 1
            if not self.open_streams[name]:
                del self.open_streams[name]

    async def _flush_every(
        self, buffer: list[ServiceLogLine], emit: Callable[[list[ServiceLogLine]], Awaitable[None]]
    ) -> None:
        """Every `flush` seconds, hand what the streams have read to `emit`, in one batch."""
        while True:
            await asyncio.sleep(self.flush)
            if buffer:
                lines = buffer[:]
                buffer.clear()
                await emit(lines)


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
