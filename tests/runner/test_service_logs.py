"""Application logs read from the real Swarm: one Docker stream per service, shared."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from deploybot.core.feeds import ApplicationLogFeed
from deploybot.domain import LogStream
from deploybot.live.hub import Hub, LiveSource
from deploybot.namespaces import StackNamespaces
from deploybot.records import ServiceLogLine
from deploybot.runner.service_logs import ServiceLogStreams, parse_line, parse_timestamp
from deploybot.runner.swarm import Swarm
from tests.conftest import docker, remove_stack

APP = "alogs"
TALK = "i=0; while true; do echo out $i; echo err $i >&2; i=$((i+1)); sleep 0.2; done"


def start_talker(name: str = "talk") -> str:
    return docker(
        "service", "create", "--detach", "--name", f"{APP}_{name}",
        "--label", f"com.docker.stack.namespace={APP}",
        "--stop-grace-period", "1s",
        "deploybot/busybox:latest", "sh", "-c", TALK,
    ).strip()  # fmt: skip


@pytest.fixture
def talker(swarm: str) -> Iterator[str]:
    remove_stack(APP)
    start_talker()
    yield f"{APP}_talk"
    remove_stack(APP)


def test_docker_timestamps_and_details_are_parsed() -> None:
    assert parse_timestamp("2026-11-22T18:40:00.123456789Z") == datetime(
        2026, 11, 22, 18, 40, 0, 123456, tzinfo=UTC
    )
    line = parse_line(
        "web",
        LogStream.STDERR,
        "2026-11-22T18:40:00.5Z com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,"
        "com.docker.swarm.task.id=t1 hello world",
    )
    assert (line.task, line.text, line.stream) == ("t1", "hello world", LogStream.STDERR)


async def wait_for_lines(source: ServiceLogStreams, count: int) -> list[ServiceLogLine]:
    for _ in range(100):
        lines = await source.tail(APP, tail=None, since=None)
        if len(lines) >= count:
            return lines
        await asyncio.sleep(0.2)
    raise AssertionError("the service printed nothing")


async def test_tail_keeps_streams_apart(talker: str, swarm_client: Swarm) -> None:
    source = ServiceLogStreams(swarm_client, StackNamespaces())
    lines = await wait_for_lines(source, 6)
    assert {line.service for line in lines} == {talker}
    assert all(line.task for line in lines)
    outs = [line.text for line in lines if line.stream is LogStream.STDOUT]
    errs = [line.text for line in lines if line.stream is LogStream.STDERR]
    assert outs[0].startswith("out ") and errs[0].startswith("err ")
    assert len(await source.tail(APP, tail=2, since=None)) == 2


async def test_one_stream_per_service_shared_and_closed(talker: str, swarm_client: Swarm) -> None:
    source = ServiceLogStreams(swarm_client, StackNamespaces(), poll_interval=0.5)
    hub = Hub()
    try:
        await wait_for_lines(source, 1)
        streams = []
        for _ in range(3):
            feed = ApplicationLogFeed(source, APP, "test")
            await hub.prepare(feed)
            streams.append(LiveSource(hub, feed, "test"))
        received: list[list[str]] = [[], [], []]

        async def read(n: int) -> None:
            async for batch in streams[n].batches():
                received[n].extend(line.text for line in batch.items)

        readers = [asyncio.create_task(read(n)) for n in range(3)]
        await asyncio.sleep(2)
        assert source.open_streams == {talker: 1}
        assert all(len(lines) >= 4 for lines in received), received
        readers[0].cancel()
        readers[1].cancel()
        await asyncio.sleep(0.5)
        assert source.open_streams == {talker: 1}  # one reader left

        # A new service of the stack gets its stream; a removed one loses it.
        start_talker("second")
        await asyncio.sleep(2)
        assert source.open_streams == {talker: 1, f"{APP}_second": 1}
        docker("service", "rm", talker)
        await asyncio.sleep(2)
        assert source.open_streams == {f"{APP}_second": 1}
        docker("service", "rm", f"{APP}_second")
        await asyncio.wait_for(readers[2], 10)  # no service left: the subscription completes
        assert source.open_streams == {}
    finally:
        await hub.close()


async def test_the_stream_closes_when_the_last_subscriber_leaves(
    talker: str, swarm_client: Swarm
) -> None:
    source = ServiceLogStreams(swarm_client, StackNamespaces(), poll_interval=0.5)
    hub = Hub()
    try:
        feed = ApplicationLogFeed(source, APP, "test")
        await hub.prepare(feed)
        stream = LiveSource(hub, feed, "test")
        first: list[object] = []

        async def read() -> None:
            async for batch in stream.batches():
                first.append(batch)

        reader = asyncio.create_task(read())
        await asyncio.sleep(1.5)
        assert source.open_streams == {talker: 1}
        reader.cancel()
        await asyncio.sleep(0.5)
        assert source.open_streams == {}
        assert hub.channel_count() == 0
        assert first
    finally:
        await hub.close()
