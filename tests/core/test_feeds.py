"""Live feeds shared through the hub, on both databases, with the real log writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from deploybot.core.feeds import DeploymentLogFeed, DeploymentProgressFeed
from deploybot.domain import DeploymentState, StepName, StepStatus
from deploybot.live import hub as multiplex
from deploybot.live.feed import Batch
from deploybot.live.hub import Hub, LiveSource, LiveStream
from tests.conftest import both_databases
from tests.logproducer import LogProducer

pytestmark = both_databases


@pytest.fixture
async def producer(empty_database_url: str) -> AsyncIterator[LogProducer]:
    async with LogProducer(empty_database_url) as p:
        yield p


async def collect(stream: LiveSource, *, slow: float = 0) -> list[int]:
    seen: list[int] = []
    async for batch in stream.batches():
        seen.extend(line.sequence for line in batch.items)
        if slow:
            await asyncio.sleep(slow)
    return seen


def log_stream(hub: Hub, producer: LogProducer, deployment: int, after: int = 0) -> LiveSource:
    feed = DeploymentLogFeed(producer.db, producer.bus, deployment)
    return LiveSource(hub, feed, "test", cursor=after)


async def test_late_resuming_and_overflowing_readers_all_get_exactly_their_lines(
    producer: LogProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multiplex, "FRAME_QUEUE", 3)
    hub = Hub()
    deployment = await producer.create()
    await producer.write(deployment, 1500)
    streams = [log_stream(hub, producer, deployment, after) for after in (0, 1200)]
    for stream in streams:
        await hub.prepare(stream.feed)
    readers = [
        asyncio.create_task(collect(streams[0])),
        asyncio.create_task(collect(streams[1])),
        asyncio.create_task(collect(streams[0], slow=0.05)),  # overflows its queue of 3
    ]
    await asyncio.sleep(0.2)
    assert hub.channel_count() == 1  # one upstream for every reader of this log
    await producer.write(deployment, 4000, rate=8000)
    late = log_stream(hub, producer, deployment, 5000)
    await hub.prepare(late.feed)
    readers.append(asyncio.create_task(collect(late)))
    await producer.write(deployment, 500)
    await producer.finish(deployment)
    everything, resumed, slow, last = await asyncio.wait_for(asyncio.gather(*readers), 60)
    assert everything == list(range(1, 6001))
    assert resumed == list(range(1201, 6001))
    assert slow == list(range(1, 6001))
    assert last == list(range(5001, 6001))
    assert hub.channel_count() == 0


async def test_a_finished_deployment_sends_its_backlog_and_completes(
    producer: LogProducer,
) -> None:
    deployment = await producer.create()
    await producer.write(deployment, 2500)
    await producer.finish(deployment)
    hub = Hub()
    stream = log_stream(hub, producer, deployment, 10)
    await hub.prepare(stream.feed)
    assert await asyncio.wait_for(collect(stream), 20) == list(range(11, 2501))


async def test_each_batch_is_rendered_once_for_all_subscribers_of_a_topic(
    producer: LogProducer,
) -> None:
    hub = Hub()
    deployment = await producer.create()
    renders: list[int] = []

    async def render(batch: Batch) -> Any:
        renders.append(len(batch.items))
        return batch

    feed = DeploymentLogFeed(producer.db, producer.bus, deployment)
    await hub.prepare(feed)
    subscribers = [hub.subscribe(feed, "topic", render, cursor=0) for _ in range(50)]

    async def drain(subscriber: multiplex.Subscriber) -> int:
        count = 0
        async for batch, _final in subscriber.stream():
            count += len(batch.items) if batch else 0
        hub.leave(subscriber)
        return count

    tasks = [asyncio.create_task(drain(s)) for s in subscribers]
    await asyncio.sleep(0.2)
    await producer.write(deployment, 1000, rate=5000)
    await producer.finish(deployment)
    assert await asyncio.wait_for(asyncio.gather(*tasks), 20) == [1000] * 50
    assert sum(renders) == 1000  # rendered once, not once per subscriber


async def test_progress_reports_each_step_change(producer: LogProducer) -> None:
    hub = Hub()
    deployment = await producer.create()
    feed = DeploymentProgressFeed(producer.db, producer.bus, deployment)
    await hub.prepare(feed)
    stream = LiveStream(LiveSource(hub, feed, "test"), lambda batch: list(batch.items))

    async def watch() -> list[Any]:
        return [progress async for progress in stream]

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    for name in (StepName.BUILD, StepName.ROLLOUT):
        await producer.step(deployment, name, StepStatus.RUNNING)
        await producer.step(deployment, name, StepStatus.COMPLETED)
    await producer.finish(deployment, DeploymentState.SUCCESS)
    updates = await asyncio.wait_for(task, 20)
    assert [(u.state.value, u.step, u.status.value, u.percentage) for u in updates] == [
        ("IN_PROGRESS", None, "RUNNING", 0),
        ("IN_PROGRESS", "build", "RUNNING", 0),
        ("IN_PROGRESS", "build", "SUCCESS", 50),
        ("IN_PROGRESS", "rollout", "RUNNING", 50),
        ("IN_PROGRESS", "rollout", "SUCCESS", 100),
        ("SUCCESS", "rollout", "SUCCESS", 100),
    ]
    assert updates[0].message == "starting"
    assert updates[-1].message == "deployment success"
