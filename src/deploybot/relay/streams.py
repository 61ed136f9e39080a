"""The relay's subscriptions: live feeds whose upstream is an environment's instance.

An instance serves its backend's `follow_*` methods to a relay as NDJSON over
`POST /relay/stream/<method>` (`web/relay_stream.py`): a header line, then one line per
batch with the batch's items as records (the same records the relay's RPC carries, richer
than the GraphQL payloads). Three modes: `check` (run the method as the forwarded caller and
answer whether it may follow: the instance's own permission checks), `initial` (what a
subscriber at a cursor is sent first: the backlog, a snapshot, a tail) and `follow`.

At the relay every feed is one upstream stream, shared through the same `Hub` the instances
use: N clients following one deployment's log cost one upstream stream. A log feed is
contiguous (sequence numbers): after a dropped connection it reconnects with `after:` the
last sequence it emitted, and late or lagging subscribers read the backlog upstream, so
every client sees every line exactly once.

Longer than 600 lines on purpose: the upstream feed, the merged events feed and `RelayLive`
share one reconnect-and-resume protocol (the header's cursor, the initial batch, the last
position delivered); split, each half would have to expose the other's private state.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import logging
import typing
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from datetime import datetime
from functools import cache
from typing import Any, Final

import httpx
import orjson
from prometheus_client import Counter, Gauge
from pydantic import TypeAdapter

from deploybot.access import Action
from deploybot.backend.protocol import Backend
from deploybot.core.feeds import cursor_at, parse_event_cursor
from deploybot.core.logs import format_line
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.filters import DeploymentFilter
from deploybot.inputs import DeploymentRef
from deploybot.live.feed import Batch, Emit, Feed
from deploybot.live.hub import Hub, Initial, LiveSource
from deploybot.records import DeploymentChange, LogLineRecord, Progress, ServiceLogLine
from deploybot.relay import wire
from deploybot.relay.backend import EnvironmentUnavailable, RelayBackend, _env_of
from deploybot.relay.config import Upstream

logger = logging.getLogger(__name__)

STREAM_PATH: Final = "/relay/stream/"
SHARED_CALLER: Final = "relay subscription"
"""The caller a shared upstream stream is opened as (each client was checked on its own)."""
HEARTBEAT: Final = 10.0
"""Seconds an instance's stream to a relay stays silent at most (it sends an empty line)."""
SILENCE: Final = 3 * HEARTBEAT
"""Seconds of silence after which the relay takes its upstream connection for dead."""
READ_ANYTHING: Final = "read"
"""A shared log/progress stream reads as the relay's token may (capped by it upstream)."""

UPSTREAM_STREAMS = Gauge(
    "deploybot_relay_upstream_streams", "Streams the relay has open to environments", ["method"]
)
UPSTREAM_OPENED = Counter(
    "deploybot_relay_upstream_opened_total",
    "Streams the relay opened to environments, by method and mode (follow, initial, check)",
    ["method", "mode"],
)
UPSTREAM_RECONNECTS = Counter(
    "deploybot_relay_upstream_reconnects_total",
    "Upstream streams the relay reopened after a dropped connection",
    ["environment"],
)

ITEMS: Final[dict[str, Any]] = {
    "follow_deployment_logs": LogLineRecord,
    "follow_deployment_progress": Progress,
    "follow_deployment_events": DeploymentChange,
    "follow_application_logs": ServiceLogLine,
    "raw_log": None,
}
"""The streamed methods and the records their batches carry (None: text chunks)."""


class StreamMethod:
    """One streamed backend method: its parameters' adapters and its items' adapter."""

    def __init__(self, name: str) -> None:
        function = getattr(Backend, name)
        hints = typing.get_type_hints(function)
        self.name = name
        self.text = ITEMS[name] is None
        self.arguments = {p: TypeAdapter(hints[p]) for p in hints if p != "return"}
        item: Any = ITEMS[name] or str
        self.items: TypeAdapter[list[Any]] = TypeAdapter(list[item])  # type: ignore[valid-type]

    def encode_arguments(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self.arguments[k].dump_python(v, mode="json") for k, v in values.items()}

    def decode_arguments(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not set(body) <= set(self.arguments):
            raise DeploybotError(ErrorCode.INVALID_INPUT, f"bad arguments for {self.name}")
        return {k: self.arguments[k].validate_python(v) for k, v in body.items()}

    def encode_batch(self, batch: Batch) -> bytes:
        items = self.items.dump_python(list(batch.items), mode="json")
        body = {"items": items, "start": batch.start, "end": batch.end, "final": batch.final}
        return orjson.dumps({"batch": body}) + b"\n"

    def decode_batch(self, body: Mapping[str, Any]) -> Batch:
        items = self.items.validate_python(body["items"])
        return Batch(items, body.get("start"), body.get("end"), bool(body.get("final")))


@cache
def stream_method(name: str) -> StreamMethod:
    if name not in ITEMS:
        raise DeploybotError(ErrorCode.INVALID_INPUT, f"{name!r} is not streamed to relays")
    return StreamMethod(name)


# --- opening a stream upstream ---------------------------------------------------------------


class Caller:
    """Whom an upstream stream is opened for: the relay's token, forwarding a caller."""

    def __init__(self, label: str, grants: str) -> None:
        self.label = label
        self.grants = grants

    def headers(self, upstream: Upstream) -> dict[str, str]:
        return {
            "authorization": f"Bearer {upstream.token.get_secret_value()}",
            wire.ON_BEHALF_OF: self.label,
            wire.FORWARDED_GRANTS: self.grants,
        }


def caller_of(relay: RelayBackend) -> Caller:
    principal = relay.principal
    return Caller(principal.label, ";".join(str(g) for g in principal.grants))


SHARED = Caller(SHARED_CALLER, READ_ANYTHING)

KEPT_LINES: Final = 10_000
"""Lines of a deployment's log the relay keeps while it follows it, for late followers."""


async def _lines(
    relay: RelayBackend,
    upstream: Upstream,
    name: str,
    body: dict[str, Any],
    caller: Caller,
    *,
    follow: bool,
    on_header: Callable[[dict[str, Any]], None] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """The stream's messages; the header line is checked (an error raises, typed) and
    handed to `on_header`."""
    timeout = httpx.Timeout(upstream.timeout, read=SILENCE if follow else upstream.timeout)
    UPSTREAM_OPENED.labels(name, str(body.get("mode"))).inc()
    try:
        async with relay.clients[upstream.name].stream(
            "POST",
            f"{upstream.url}{STREAM_PATH}{name}",
            content=orjson.dumps(body),
            headers=caller.headers(upstream),
            timeout=timeout,
        ) as response:
            if response.status_code in (401, 403) or response.status_code >= 500:
                raise EnvironmentUnavailable(upstream.name, f"HTTP {response.status_code}")
            header = True
            async for line in response.aiter_lines():
                if not line:
                    continue
                message = orjson.loads(line)
                if header:
                    header = False
                    if "error" in message:
                        raise wire.error_of(message)
                    if on_header is not None:
                        on_header(message.get("ok") or {})
                    continue
                yield message
            if header:
                raise EnvironmentUnavailable(upstream.name, "the stream ended at once")
    except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
        raise EnvironmentUnavailable(upstream.name, type(exc).__name__) from None


async def _initial_batch(
    relay: RelayBackend,
    upstream: Upstream,
    name: str,
    arguments: Mapping[str, Any],
    caller: Caller,
    cursor: int | None,
) -> Batch | None:
    """What the instance sends a subscriber at `cursor` first (mode `initial`)."""
    method = stream_method(name)
    body = {"arguments": method.encode_arguments(arguments), "mode": "initial", "cursor": cursor}
    async for message in _lines(relay, upstream, name, body, caller, follow=False):
        found = message.get("batch")
        return None if found is None else method.decode_batch(found)
    return None


async def check(
    relay: RelayBackend, upstream: Upstream, name: str, arguments: Mapping[str, Any]
) -> None:
    """Whether the relay's caller may follow this, asked of the environment (mode `check`):
    the instance's own checks, with the caller's forwarded grants."""
    method = stream_method(name)
    body = {"arguments": method.encode_arguments(arguments), "mode": "check"}
    async for _ in _lines(relay, upstream, name, body, caller_of(relay), follow=False):
        pass


# --- the relay's feeds ---------------------------------------------------------------------------


class UpstreamFeed(Feed):
    """One environment's live stream of one method, reopened after a dropped connection.

    `contiguous` (a deployment's log): reopened with `after:` the last sequence emitted, and
    lines at or before it are dropped, so nothing is emitted twice or skipped. The lines
    emitted are kept (up to `KEPT_LINES`): a late subscriber's backlog is served from them,
    so a log is read from upstream once however late its followers come.

    `resumable` (deployment events): reopened with `after:` the last change emitted (or
    where the environment stood when first opened), so what the environment did while the
    connection was down is replayed; a change the replay and the live stream both bring is
    emitted once."""

    def __init__(
        self,
        key: Hashable,
        relay: RelayBackend,
        upstream: Upstream,
        name: str,
        arguments: dict[str, Any],
        caller: Caller,
        *,
        contiguous: bool = False,
        snapshot: bool = False,
        resumable: bool = False,
    ) -> None:
        super().__init__(key)
        self.relay = relay
        self.upstream = upstream
        self.name = name
        self.arguments = arguments
        self.caller = caller
        self.contiguous = contiguous
        self.snapshot = snapshot
        """Whether a subscriber is first sent the instance's snapshot (progress)."""
        self.finished = False
        self._last: Any = None
        self.resumable = resumable
        self.since: datetime | None = None
        """The last change emitted (resumable): the stream is reopened after it."""
        self._replayed: set[tuple[int, datetime]] = set()
        self.kept: list[LogLineRecord] = []
        """The lines emitted, from the first (contiguous), while fewer than `KEPT_LINES`."""
        self.kept_whole = True
        """Whether `kept` holds every line emitted."""

    async def open(self) -> None:
        if self.contiguous:
            self.position = 0  # the upstream stream replays the stored lines first

    async def run(self, emit: Emit) -> None:
        method = stream_method(self.name)
        delay = 0.05
        while True:
            arguments = dict(self.arguments)
            if self.contiguous:
                arguments["after"] = self.position
            resumed = self.resumable and self.since is not None
            if resumed:
                assert self.since is not None
                arguments["after"] = cursor_at(self.since)
            body = {"arguments": method.encode_arguments(arguments), "mode": "follow"}
            UPSTREAM_STREAMS.labels(self.name).inc()
            opening = True
            try:
                async for message in _lines(
                    self.relay,
                    self.upstream,
                    self.name,
                    body,
                    self.caller,
                    follow=True,
                    on_header=self._header,
                ):
                    if "batch" not in message:
                        continue
                    delay = 0.05
                    received = method.decode_batch(message["batch"])
                    if self.resumable:
                        batch = self._unseen(received, replay=opening and resumed)
                    else:
                        batch = self._fresh(received, opening)
                    opening = False
                    if batch is None:
                        continue
                    if batch.final:
                        self.finished = True
                    await emit(batch)
                    if batch.final:
                        return
            except DeploybotError as exc:
                if exc.code is not ErrorCode.ENVIRONMENT_UNAVAILABLE:
                    raise
            finally:
                UPSTREAM_STREAMS.labels(self.name).dec()
            UPSTREAM_RECONNECTS.labels(self.upstream.name).inc()
            logger.info("relay: reopening %s of %s", self.name, self.upstream.name)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _header(self, header: dict[str, Any]) -> None:
        """A resumable stream's first header names where the environment stands."""
        cursor = header.get("cursor")
        if self.resumable and self.since is None and isinstance(cursor, str):
            self.since = parse_event_cursor(cursor)

    def _unseen(self, batch: Batch, *, replay: bool) -> Batch | None:
        """The changes of `batch` not emitted yet: the first batch of a resumed stream is
        the replay (what changed after `since`); a live change it already brought is
        dropped. Empty batches are not passed on."""
        items: list[DeploymentChange] = list(batch.items)
        if replay:
            self._replayed = {(c.deployment.id, c.deployment.updated_at) for c in items}
        elif self._replayed:
            items = [
                c for c in items if (c.deployment.id, c.deployment.updated_at) not in self._replayed
            ]
        for change in items:
            if self.since is None or change.deployment.updated_at > self.since:
                self.since = change.deployment.updated_at
        return Batch(items, batch.start, batch.end, batch.final) if items else None

    def _fresh(self, batch: Batch, opening: bool) -> Batch | None:
        """The part of `batch` not emitted yet (after a reconnection), None if nothing."""
        if self.contiguous:
            assert self.position is not None
            items = [line for line in batch.items if line.sequence > self.position]
            if not items and not batch.final:
                return None
            start = self.position
            self.position = items[-1].sequence if items else self.position
            self._keep(items)
            return Batch(items, start, self.position, batch.final)
        items = list(batch.items)
        if self.snapshot and opening and items and not batch.final:
            # Every upstream stream starts with the current state (the instance's snapshot):
            # the relay's subscribers got their own; after a reconnection it is news only if
            # a change was missed meanwhile.
            current, items = items[0], items[1:]
            if self._last is not None and not _same(current, self._last):
                items = [current, *items]
            self._last = current
            if not items:
                return None
        if items:
            self._last = items[-1]
        return Batch(items, batch.start, batch.end, batch.final)

    def _keep(self, lines: list[LogLineRecord]) -> None:
        if not self.kept_whole or not lines:
            return
        if len(self.kept) + len(lines) > KEPT_LINES:
            self.kept_whole = False
            lines = lines[: KEPT_LINES - len(self.kept)]
        self.kept.extend(lines)

    def _kept_after(self, after: int) -> Batch | None:
        """The emitted lines after `after` from memory (None: not all of them are kept)."""
        assert self.position is not None
        if after >= self.position:
            return Batch([], after, after, final=True) if self.finished else None
        if not self.kept:
            return None  # kept from the first line on: every cursor before the end is in it
        start = bisect.bisect_right(self.kept, after, key=lambda line: line.sequence)
        lines = self.kept[start:]
        if not lines:
            return None  # beyond what is kept: read upstream
        whole = self.kept_whole and lines[-1].sequence == self.position
        return Batch(lines, after, lines[-1].sequence, final=self.finished and whole)

    async def backlog(self, cursor: int | None) -> Batch | None:
        if self.snapshot:
            return await self._initial(cursor)
        if not self.contiguous:
            return None
        after = cursor or 0
        if not self.finished and after >= (self.position or 0):
            return None  # nothing stored that the live stream has not brought yet
        kept = self._kept_after(after)
        if kept is not None:
            return kept
        batch = await self._initial(after)
        if batch is None or batch.final or self.finished:
            return batch
        assert self.position is not None
        items = [line for line in batch.items if line.sequence <= self.position]
        return Batch(items, after, items[-1].sequence) if items else None

    async def _initial(self, cursor: int | None) -> Batch | None:
        """The instance's backlog for a subscriber at `cursor`, retried while unavailable."""
        delay = 0.05
        while True:
            try:
                return await _initial_batch(
                    self.relay, self.upstream, self.name, self.arguments, self.caller, cursor
                )
            except DeploybotError as exc:
                if exc.code is not ErrorCode.ENVIRONMENT_UNAVAILABLE:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def _same(a: Any, b: Any) -> bool:
    """Equal, progress messages but for the time they were made."""
    if isinstance(a, Progress) and isinstance(b, Progress):
        return dataclasses.replace(a, timestamp=b.timestamp) == b
    return bool(a == b)


class MergedFeed(Feed):
    """Several environments' streams as one (deployment events: never final)."""

    def __init__(self, key: Hashable, parts: list[UpstreamFeed]) -> None:
        super().__init__(key)
        self.parts = parts

    async def run(self, emit: Emit) -> None:
        lock = asyncio.Lock()

        async def one(batch: Batch) -> None:
            async with lock:  # one batch at a time to the hub
                await emit(batch)

        async with asyncio.TaskGroup() as group:
            for part in self.parts:
                group.create_task(part.run(one))


# --- the relay's follow_* methods ---------------------------------------------------------------


class RelayLive:
    """The relay's live side: one hub, whose channels each read one upstream stream."""

    def __init__(self) -> None:
        self.hub = Hub()

    async def close(self) -> None:
        await self.hub.close()

    async def follow_deployment_logs(
        self, relay: RelayBackend, ref: DeploymentRef, *, after: int
    ) -> LiveSource:
        upstream = relay._upstream(_env_of(ref), "id")
        name = "follow_deployment_logs"
        await check(relay, upstream, name, {"ref": ref, "after": after})
        feed = UpstreamFeed(
            ("logs", upstream.name, ref.number),
            relay,
            upstream,
            name,
            {"ref": ref, "after": 0},
            SHARED,
            contiguous=True,
        )
        await self.hub.prepare(feed)
        return LiveSource(self.hub, feed, upstream.name, cursor=after)

    async def follow_deployment_logs_text(
        self, relay: RelayBackend, ref: DeploymentRef
    ) -> AsyncIterator[str]:
        source = await self.follow_deployment_logs(relay, ref, after=0)

        async def text() -> AsyncIterator[str]:
            async for batch in source.batches():
                if batch.items:
                    yield "".join(format_line(line) for line in batch.items)

        return text()

    async def follow_deployment_progress(
        self, relay: RelayBackend, ref: DeploymentRef
    ) -> LiveSource:
        upstream = relay._upstream(_env_of(ref), "id")
        name = "follow_deployment_progress"
        await check(relay, upstream, name, {"ref": ref})
        key = ("progress", upstream.name, ref.number)
        feed = UpstreamFeed(key, relay, upstream, name, {"ref": ref}, SHARED, snapshot=True)
        return LiveSource(self.hub, feed, upstream.name)

    async def follow_deployment_events(
        self, relay: RelayBackend, filter: DeploymentFilter | None, *, after: str | None = None
    ) -> LiveSource:
        """Merged from every selected environment the caller may read; one that does not
        answer is reported (ENVIRONMENT_UNAVAILABLE) and joins the stream when it is back.
        The stream is opened with the caller's grants (the instance filters by them), so it
        is shared by the callers with the same grants and filter."""
        if not relay.principal.may_anywhere(Action.READ):
            raise DeploybotError(ErrorCode.FORBIDDEN, "reading deployments is not allowed")
        name = "follow_deployment_events"
        environments = relay._readable(filter.environments if filter else None)
        arguments = {"filter": filter}
        checks = await asyncio.gather(
            *(check(relay, relay.upstreams[env], name, arguments) for env in environments),
            return_exceptions=True,
        )
        for env, outcome in zip(environments, checks, strict=True):
            if isinstance(outcome, DeploybotError):
                if outcome.code is not ErrorCode.ENVIRONMENT_UNAVAILABLE:
                    raise outcome
                relay.unavailable[env] = outcome.message
            elif isinstance(outcome, BaseException):
                raise outcome
        caller = caller_of(relay)
        caller.label = SHARED_CALLER
        encoded = orjson.dumps(stream_method(name).encode_arguments(arguments))
        parts = [
            UpstreamFeed(
                ("events", env, encoded, caller.grants),
                relay,
                relay.upstreams[env],
                name,
                arguments,
                caller,
                resumable=True,
            )
            for env in environments
        ]
        feed = MergedFeed(("events", tuple(environments), encoded, caller.grants), parts)
        initial: Initial | None = None
        if after is not None:
            parse_event_cursor(after)  # INVALID_INPUT here rather than from each environment
            missed_arguments = {"filter": filter, "after": after}
            answering = [env for env in environments if env not in relay.unavailable]

            async def initial(_cursor: int | None) -> Batch | None:
                """Each environment's changes since the cursor (a time, comparable across
                environments), in the order they happened."""
                found = await asyncio.gather(
                    *(
                        _initial_batch(
                            relay, relay.upstreams[env], name, missed_arguments, caller, None
                        )
                        for env in answering
                    ),
                    return_exceptions=True,
                )
                items = [
                    item for batch in found if isinstance(batch, Batch) for item in batch.items
                ]
                items.sort(key=lambda change: change.deployment.updated_at)
                return Batch(items)

        return LiveSource(self.hub, feed, ",".join(environments), initial=initial)

    async def follow_application_logs(
        self,
        relay: RelayBackend,
        application: str,
        environment: str | None,
        *,
        tail: int | None,
        since: datetime | None,
    ) -> LiveSource:
        upstream = relay._upstream(environment)
        name = "follow_application_logs"
        arguments = {
            "application": application,
            "environment": upstream.name,
            "tail": tail,
            "since": since,
        }
        await check(relay, upstream, name, arguments)
        live = {**arguments, "tail": None, "since": None}
        key = ("application-logs", upstream.name, application)
        feed = UpstreamFeed(key, relay, upstream, name, live, SHARED)
        initial: Initial | None = None
        if tail or since is not None:
            caller = caller_of(relay)

            async def initial(cursor: int | None) -> Batch | None:
                return await _initial_batch(relay, upstream, name, arguments, caller, cursor)

        return LiveSource(self.hub, feed, upstream.name, initial=initial)

    async def raw_log(self, relay: RelayBackend, ref: DeploymentRef) -> AsyncIterator[str]:
        """The instance's raw log text, passed through (its errors before the first chunk)."""
        upstream = relay._upstream(_env_of(ref), "id")
        method = stream_method("raw_log")
        body = {"arguments": method.encode_arguments({"ref": ref}), "mode": "follow"}
        messages = _lines(relay, upstream, "raw_log", body, caller_of(relay), follow=True)

        # read the header now: an unknown deployment is an error, not an empty 200
        primed = await _prime(messages)
        if primed is not None:
            return _prepend(primed, messages)
        return _empty()


async def _prime(messages: AsyncIterator[dict[str, Any]]) -> dict[str, Any] | None:
    try:
        return await anext(messages)
    except StopAsyncIteration:
        return None


async def _prepend(
    first: dict[str, Any], messages: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[str]:
    yield str(first.get("text", ""))
    async for message in messages:
        yield str(message.get("text", ""))


async def _empty() -> AsyncIterator[str]:
    return
    yield  # pragma: no cover - makes this an async generator


def unavailable_notices(context: Any) -> list[dict[str, Any]]:
    """The errors a relay subscription starts with: one per environment left out of it."""
    missing: dict[str, str] = getattr(getattr(context, "backend", None), "unavailable", {})
    return [
        {"message": message, "extensions": {"code": "ENVIRONMENT_UNAVAILABLE", "environment": env}}
        for env, message in sorted(missing.items())
    ]
