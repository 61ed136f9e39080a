"""Shared delivery of live feeds to many subscribers.

The cost of a subscription must not grow with its readers. One *channel* per
feed (a deployment's log, ...) reads the upstream once; one *topic* per
distinct rendering (for GraphQL: the same document and variables) renders
each batch once — one GraphQL execution, one JSON encoding — and hands the
result to every *subscriber* of the topic, the way Hasura multiplexes live
queries.

Each subscriber has a bounded queue and reads at its own pace. One that falls
behind (its queue overflowed) or joined in the middle (a backlog to read, a
resume cursor) is served from the database on its own until its cursor meets
the live stream again; it never holds up the feed or the other subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from deploybot.live.feed import Batch, Feed

logger = logging.getLogger(__name__)

FRAME_QUEUE = 100
"""Frames a subscriber may have waiting before it falls back to the database."""

RETRY_FIRST = 0.2
RETRY_MAX = 5.0
"""Backoff (seconds) between attempts while a feed's upstream is passingly unavailable."""


class Backoff:
    """Doubling waits from RETRY_FIRST to RETRY_MAX."""

    def __init__(self) -> None:
        self.delay = RETRY_FIRST

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, RETRY_MAX)

    def reset(self) -> None:
        self.delay = RETRY_FIRST


Render = Callable[[Batch], Awaitable[Any]]
Initial = Callable[[int | None], Awaitable[Batch | None]]


@dataclass(slots=True)
class Frame:
    start: int | None
    end: int | None
    final: bool
    data: Any
    """What the topic rendered, once for every subscriber."""


class FeedFailed(Exception):
    """The feed stopped with an error; its subscribers end with it."""


class Subscriber:
    def __init__(
        self, channel: Channel, topic: Topic, cursor: int | None, initial: Initial
    ) -> None:
        self.channel = channel
        self.topic = topic
        self.cursor = cursor
        self.initial = initial
        self.frames: deque[Frame] = deque()
        self.overflowed = False
        self.failure: BaseException | None = None
        self._ready = asyncio.Event()

    def offer(self, frame: Frame) -> None:
        if len(self.frames) >= FRAME_QUEUE:
            self.overflowed = True
        else:
            self.frames.append(frame)
        self._ready.set()

    def fail(self, exc: BaseException) -> None:
        self.failure = exc
        self._ready.set()

    async def _next(self) -> Frame | None:
        while not self.frames:
            if self.failure is not None or self.overflowed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self.frames.popleft()

    async def _read_stored(self) -> AsyncIterator[Batch]:
        """Batches from storage from the cursor on, until caught up with the live feed."""
        feed = self.channel.feed
        backoff = Backoff()
        while True:
            try:
                batch = await self.initial(self.cursor)
            except Exception as exc:
                if not feed.retryable(exc):
                    raise
                logger.warning("reading %s from storage failed (%s); retrying", feed.key, exc)
                await backoff.wait()
                continue
            backoff.reset()
            if batch is None:
                return
            if batch.end is not None:
                self.cursor = batch.end
            yield batch
            if batch.final or not self.channel.feed.contiguous:
                return
            await asyncio.sleep(0)  # a long backlog must not starve the event loop

    async def stream(self) -> AsyncIterator[tuple[Any, bool]]:
        """(rendered data, final) in order; ends after the final one.

        Storage first (the backlog, or the snapshot), then live frames; back to storage
        whenever the queue overflowed or a frame does not start at the cursor.
        """
        contiguous = self.channel.feed.contiguous
        from_storage = True
        while True:
            if from_storage:
                from_storage = False
                async for batch in self._read_stored():
                    yield await self.topic.render(batch), batch.final
                    if batch.final:
                        return
            frame = await self._next()
            if frame is None:
                if self.failure is not None:
                    raise FeedFailed(str(self.failure)) from self.failure
                # Overflowed: drop what is queued and read from storage instead.
                self.overflowed = False
                self.frames.clear()
                from_storage = contiguous
                continue
            if contiguous:
                assert frame.start is not None and frame.end is not None
                assert self.cursor is not None
                if frame.end <= self.cursor:
                    if frame.final:
                        yield None, True
                        return
                    continue  # already read from storage
                if frame.start != self.cursor:
                    from_storage = True
                    continue
                self.cursor = frame.end
            yield frame.data, frame.final
            if frame.final:
                return


class Topic:
    """Subscribers that render a batch the same way; it is rendered once for all of them."""

    def __init__(self, key: Hashable, render: Render) -> None:
        self.key = key
        self.render = render
        self.subscribers: set[Subscriber] = set()

    async def deliver(self, batch: Batch) -> None:
        if not self.subscribers:
            return
        frame = Frame(batch.start, batch.end, batch.final, await self.render(batch))
        for subscriber in self.subscribers:
            subscriber.offer(frame)


class Channel:
    """One running feed and the topics reading it."""

    def __init__(self, hub: Hub, feed: Feed) -> None:
        self.hub = hub
        self.feed = feed
        self.topics: dict[Hashable, Topic] = {}
        self.done = False
        self.task: asyncio.Task[None] | None = None
        self._delivered = False

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"feed {self.feed.key}")

    async def _run(self) -> None:
        try:
            await self._run_retrying()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("live feed %s failed", self.feed.key)
            for topic in self.topics.values():
                for subscriber in topic.subscribers:
                    subscriber.fail(exc)
        finally:
            self.done = True
            self.hub._forget(self)

    async def _run_retrying(self) -> None:
        """Run the feed; after a passing failure run it again (it resumes from its position)."""
        backoff = Backoff()
        while True:
            self._delivered = False
            try:
                await self.feed.run(self._deliver)
                return
            except Exception as exc:
                if not self.feed.retryable(exc):
                    raise
                if self._delivered:
                    backoff.reset()
                logger.warning(
                    "live feed %s lost its upstream (%s); resuming in %.1f s",
                    self.feed.key,
                    exc,
                    backoff.delay,
                )
                await backoff.wait()

    async def _deliver(self, batch: Batch) -> None:
        self._delivered = True
        for topic in list(self.topics.values()):
            try:
                await topic.deliver(batch)
            except Exception as exc:
                logger.exception("rendering %s failed", topic.key)
                for subscriber in topic.subscribers:
                    subscriber.fail(exc)
            await asyncio.sleep(0)


class Hub:
    """The live channels of one process, by feed key."""

    def __init__(self) -> None:
        self._channels: dict[Hashable, Channel] = {}

    def _live(self, key: Hashable) -> Channel | None:
        channel = self._channels.get(key)
        return channel if channel is not None and not channel.done else None

    async def prepare(self, feed: Feed) -> None:
        """Check the feed can be followed (raises DeploybotError): free if it already runs."""
        if self._live(feed.key) is None:
            await feed.open()

    def subscribe(
        self,
        feed: Feed,
        topic_key: Hashable,
        render: Render,
        *,
        cursor: int | None = None,
        initial: Initial | None = None,
    ) -> Subscriber:
        """Join the feed's channel (starting it with this prepared feed if it isn't running)."""
        channel = self._live(feed.key)
        if channel is None:
            channel = Channel(self, feed)
            self._channels[feed.key] = channel
            channel.start()
        topic = channel.topics.get(topic_key)
        if topic is None:
            topic = channel.topics[topic_key] = Topic(topic_key, render)
        if cursor is None and channel.feed.contiguous:
            cursor = 0
        subscriber = Subscriber(channel, topic, cursor, initial or channel.feed.backlog)
        topic.subscribers.add(subscriber)
        return subscriber

    def leave(self, subscriber: Subscriber) -> None:
        channel, topic = subscriber.channel, subscriber.topic
        topic.subscribers.discard(subscriber)
        if not topic.subscribers and channel.topics.get(topic.key) is topic:
            del channel.topics[topic.key]
        if not channel.topics and channel.task is not None:
            channel.task.cancel()
            self._forget(channel)

    def _forget(self, channel: Channel) -> None:
        if self._channels.get(channel.feed.key) is channel:
            del self._channels[channel.feed.key]

    def channel_count(self) -> int:
        return len(self._channels)

    async def close(self) -> None:
        channels = list(self._channels.values())
        self._channels.clear()
        for channel in channels:
            if channel.task is not None:
                channel.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await channel.task


async def _raw(batch: Batch) -> Batch:
    return batch


@dataclass(frozen=True)
class LiveSource:
    """What a backend answers for a subscription: a prepared feed, whose it is, where a subscriber
    starts (`cursor`, or `initial` for what it is sent first), which items it may see
    (`keep`), and `view`, what makes its items differ from another subscriber's of the
    same feed (part of the multiplexing key)."""

    hub: Hub
    feed: Feed
    environment: str
    """Whose objects it streams (the IDs in its payloads carry it)."""
    cursor: int | None = None
    initial: Initial | None = None
    keep: Callable[[Any], bool] | None = None
    view: Hashable = None
    resume: Callable[[], Awaitable[str]] | None = None
    """Where a reader that loses this stream resumes it (`deploymentEvents(after:)`): the
    feed's position now. Sent to a relay when it opens the stream (`web/relay_stream.py`)."""

    def subscribe(self, topic_key: Hashable, render: Render) -> Subscriber:
        return self.hub.subscribe(
            self.feed, (self.view, topic_key), render, cursor=self.cursor, initial=self.initial
        )

    def kept(self, batch: Batch) -> Batch:
        if self.keep is None:
            return batch
        return Batch([i for i in batch.items if self.keep(i)], batch.start, batch.end, batch.final)

    async def batches(self) -> AsyncIterator[Batch]:
        """Every batch for this one reader, in order (`?follow=true`, a plain iteration)."""
        subscriber = self.subscribe(("raw", id(self)), _raw)
        try:
            async for batch, _final in subscriber.stream():
                if batch is not None:
                    yield self.kept(batch)
        finally:
            self.hub.leave(subscriber)


class LiveStream:
    """What a subscription resolver returns: a live source and how a batch becomes the
    field's values.

    The WebSocket endpoint recognises it and multiplexes; any other consumer (a
    direct `schema.subscribe`) can simply iterate it.
    """

    def __init__(self, source: LiveSource, payloads: Callable[[Batch], list[Any]]) -> None:
        self.source = source
        self._payloads_of = payloads
        self._iterator: AsyncIterator[Any] | None = None

    def payloads(self, batch: Batch) -> list[Any]:
        return self._payloads_of(self.source.kept(batch))

    def subscribe(self, topic_key: Hashable, render: Render) -> Subscriber:
        return self.source.subscribe(topic_key, render)

    def leave(self, subscriber: Subscriber) -> None:
        self.source.hub.leave(subscriber)

    def __aiter__(self) -> LiveStream:
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._all_payloads()
        return await self._iterator.__anext__()

    async def _all_payloads(self) -> AsyncIterator[Any]:
        async for batch in self.source.batches():
            for payload in self._payloads_of(batch):
                yield payload
