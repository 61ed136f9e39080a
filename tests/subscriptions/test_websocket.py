"""Subscriptions over real WebSockets against a running server on PostgreSQL.

The test process plays the runner (`LogProducer`: real LogWriter, real NOTIFY),
so the server only learns of lines and state changes across processes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from deploybot.domain import DeploymentState, StepName, StepStatus
from tests.conftest import remove_stack, server_env, ws_url
from tests.logproducer import LogProducer
from tests.runner.test_service_logs import APP, start_talker
from tests.servers import AUTH_HEADERS, WS_INIT_PAYLOAD, ServerProcess

TRANSPORT_WS = WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL  # graphql-transport-ws
LEGACY_WS = WebsocketsTransport.APOLLO_SUBPROTOCOL  # graphql-ws

LOGS = """
subscription Logs($id: ID!, $after: Int) {
  deploymentLogs(id: $id, after: $after) {
    deploymentId lastSequence lines { sequence text source stream }
  }
}
"""


@pytest.fixture
async def producer(postgres_url: str, pg_api: ServerProcess) -> AsyncIterator[LogProducer]:
    async with LogProducer(postgres_url) as p:
        yield p


def _client(server: ServerProcess, protocol: str) -> Client:
    transport = WebsocketsTransport(
        url=ws_url(server), subprotocols=[protocol], init_payload=WS_INIT_PAYLOAD
    )
    return Client(transport=transport)


async def follow_logs(
    server: ServerProcess,
    protocol: str,
    deployment_id: int,
    *,
    after: int | None = None,
    stop_at: int | None = None,
) -> list[int]:
    """Every line's sequence received, until the subscription completes (or `stop_at`)."""
    seen: list[int] = []
    async with _client(server, protocol) as session:
        request = GraphQLRequest(LOGS, variable_values={"id": str(deployment_id), "after": after})
        async for result in session.subscribe(request):
            seen.extend(line["sequence"] for line in result["deploymentLogs"]["lines"])
            if stop_at is not None and seen and seen[-1] >= stop_at:
                break
    return seen


async def started(task: asyncio.Task[Any], server: ServerProcess) -> None:
    """Give a subscription a moment to be in place (the server logs nothing we can await)."""
    await asyncio.sleep(0.7)
    assert not task.done(), task


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_every_line_exactly_once_then_complete(
    pg_api: ServerProcess, producer: LogProducer, protocol: str
) -> None:
    deployment = await producer.create()
    await producer.write(deployment, 500)  # a backlog before anyone listens
    task = asyncio.create_task(follow_logs(pg_api, protocol, deployment))
    await started(task, pg_api)
    await producer.write(deployment, 2500, rate=5000)
    await producer.finish(deployment)
    seen = await asyncio.wait_for(task, 30)
    assert seen == list(range(1, 3001))


async def test_reconnect_with_after_gets_exactly_the_rest(
    pg_api: ServerProcess, producer: LogProducer
) -> None:
    deployment = await producer.create()
    first = asyncio.create_task(follow_logs(pg_api, TRANSPORT_WS, deployment, stop_at=1000))
    await started(first, pg_api)
    writing = asyncio.create_task(producer.write(deployment, 3000, rate=3000))
    before = await asyncio.wait_for(first, 30)  # disconnected mid-deployment
    rest = asyncio.create_task(follow_logs(pg_api, LEGACY_WS, deployment, after=before[-1]))
    await writing
    await producer.finish(deployment)
    after = await asyncio.wait_for(rest, 30)
    assert before == list(range(1, before[-1] + 1))
    assert before + after == list(range(1, 3001))


async def test_progress_snapshot_then_changes_then_complete(
    pg_api: ServerProcess, producer: LogProducer
) -> None:
    deployment = await producer.create()
    query = """subscription($id: ID!) { deploymentProgress(id: $id) {
        state step status message percentage timestamp } }"""
    updates: list[dict[str, Any]] = []

    async def watch() -> None:
        async with _client(pg_api, TRANSPORT_WS) as session:
            request = GraphQLRequest(query, variable_values={"id": str(deployment)})
            async for result in session.subscribe(request):
                updates.append(result["deploymentProgress"])

    task = asyncio.create_task(watch())
    await started(task, pg_api)
    await producer.step(deployment, StepName.BUILD, StepStatus.RUNNING)
    await producer.step(deployment, StepName.BUILD, StepStatus.COMPLETED)
    await producer.step(deployment, StepName.ROLLOUT, StepStatus.RUNNING)
    await asyncio.sleep(0.5)
    await producer.finish(deployment, DeploymentState.FAILURE)
    await asyncio.wait_for(task, 20)
    assert updates[0]["state"] == "IN_PROGRESS"
    steps = [(u["step"], u["status"], u["percentage"]) for u in updates[1:]]
    assert ("build", "RUNNING", 0) in steps
    assert ("rollout", "RUNNING", 50) in steps
    assert updates[-1]["state"] == "FAILURE"
    assert updates[-1]["status"] == "FAILED"
    assert updates[-1]["percentage"] == 100


async def test_deployment_events_follow_the_filter(
    pg_api: ServerProcess, producer: LogProducer
) -> None:
    query = """subscription { deploymentEvents(filter: {applications: ["watched"]}) {
        kind state deployment { number application state } } }"""
    events: list[dict[str, Any]] = []

    async def watch() -> None:
        async with _client(pg_api, LEGACY_WS) as session:
            async for result in session.subscribe(GraphQLRequest(query)):
                events.append(result["deploymentEvents"])
                if result["deploymentEvents"]["state"] == "SUCCESS":
                    return

    task = asyncio.create_task(watch())
    await started(task, pg_api)
    ignored = await producer.create("ignored")
    watched = await producer.create("watched")
    await producer.finish(ignored)
    await producer.finish(watched)
    await asyncio.wait_for(task, 20)
    assert [(e["kind"], e["state"], e["deployment"]["number"]) for e in events] == [
        ("CREATED", "IN_PROGRESS", watched),
        ("CHANGED", "SUCCESS", watched),
    ]


RESUMABLE_EVENTS = """subscription($after: String) {
  deploymentEvents(filter: {applications: ["resumed"]}, after: $after) {
    kind state cursor deployment { number } } }"""


async def test_deployment_events_resume_after_a_cursor(
    pg_api: ServerProcess, producer: LogProducer
) -> None:
    """A subscriber gone for a while resumes from its last event's cursor: each deployment
    changed meanwhile comes first, once, as it is now; then live events."""

    async def events(after: str | None, count: int) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        request = GraphQLRequest(RESUMABLE_EVENTS, variable_values={"after": after})
        async with _client(pg_api, TRANSPORT_WS) as session:
            async for result in session.subscribe(request):
                got.append(result["deploymentEvents"])
                if len(got) == count:
                    return got
        return got

    first = asyncio.create_task(events(None, 1))
    await started(first, pg_api)
    old = await producer.create("resumed")
    [seen] = await asyncio.wait_for(first, 20)
    assert (seen["kind"], seen["state"], seen["deployment"]["number"]) == (
        "CREATED",
        "IN_PROGRESS",
        old,
    )

    # Missed while away: the first one ended, another one started.
    await producer.finish(old)
    new = await producer.create("resumed")
    resumed = asyncio.create_task(events(seen["cursor"], 3))
    await started(resumed, pg_api)
    await producer.finish(new)
    got = await asyncio.wait_for(resumed, 20)
    assert [(e["kind"], e["state"], e["deployment"]["number"]) for e in got] == [
        ("CHANGED", "SUCCESS", old),
        ("CREATED", "IN_PROGRESS", new),
        ("CHANGED", "SUCCESS", new),
    ]
    assert len({e["cursor"] for e in got}) == 3

    with pytest.raises(TransportQueryError) as caught:
        await events("not a cursor", 1)
    assert "INVALID_INPUT" in json.dumps(caught.value.errors or [caught.value.args[0]])


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_unknown_deployment_is_a_clear_error(pg_api: ServerProcess, protocol: str) -> None:
    with pytest.raises(TransportQueryError) as caught:
        await follow_logs(pg_api, protocol, 987654)
    errors = caught.value.errors or [caught.value.args[0]]
    text = json.dumps(errors)
    assert "deployment 987654 not found" in text
    assert "DEPLOYMENT_NOT_FOUND" in text


async def test_queries_and_mutations_also_work_over_the_socket(pg_api: ServerProcess) -> None:
    async with _client(pg_api, TRANSPORT_WS) as session:
        result = await session.execute(GraphQLRequest("{ deployments(first: 1) { totalCount } }"))
    assert result["deployments"]["totalCount"] >= 0


async def test_follow_over_plain_http(pg_api: ServerProcess, producer: LogProducer) -> None:
    deployment = await producer.create()
    await producer.write(deployment, 10)

    async def read() -> list[str]:
        url = f"{pg_api.url}/deployments/{deployment}/logs?follow=true"
        async with (
            httpx.AsyncClient(timeout=30, headers=AUTH_HEADERS) as http,
            http.stream("GET", url) as response,
        ):
            assert response.status_code == 200
            return [line async for line in response.aiter_lines()]

    task = asyncio.create_task(read())
    await started(task, pg_api)
    await producer.write(deployment, 20)
    await producer.finish(deployment)
    lines = await asyncio.wait_for(task, 20)
    assert [int(line.split()[2]) for line in lines] == list(range(1, 11)) + list(range(1, 21))
    async with httpx.AsyncClient(headers=AUTH_HEADERS) as http:
        missing = await http.get(f"{pg_api.url}/deployments/987654/logs?follow=true")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "DEPLOYMENT_NOT_FOUND"


# --- the protocols themselves, spoken by hand ---------------------------------------------------


async def _raw(server: ServerProcess, protocol: str) -> websockets.ClientConnection:
    return await websockets.connect(
        ws_url(server),
        subprotocols=[protocol],  # type: ignore[list-item]
        additional_headers=AUTH_HEADERS,
    )


async def test_graphql_transport_ws_rules(pg_api: ServerProcess) -> None:
    async with await _raw(pg_api, TRANSPORT_WS) as ws:  # subscribe before connection_init
        await ws.send(
            json.dumps({"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }"}})
        )
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4401

    async with await _raw(pg_api, TRANSPORT_WS) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
        await ws.send(
            json.dumps({"type": "subscribe", "id": "q", "payload": {"query": "{ nope }"}})
        )
        error = json.loads(await ws.recv())
        assert error["type"] == "error" and error["id"] == "q"
        assert "nope" in error["payload"][0]["message"]
        await ws.send(json.dumps({"type": "connection_init"}))
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4429

    async with await _raw(pg_api, TRANSPORT_WS) as ws:
        await ws.send(b'{"type": "connection_init"}')  # a binary frame
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4400

    async with await _raw(pg_api, TRANSPORT_WS) as ws:
        await ws.send("not json")
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4400


async def test_no_known_subprotocol_is_refused(pg_api: ServerProcess) -> None:
    async with websockets.connect(ws_url(pg_api), subprotocols=["chat"]) as ws:  # type: ignore[list-item]
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4406


async def test_subscriptions_per_connection_are_bounded(
    pg_api: ServerProcess, producer: LogProducer
) -> None:
    deployment = await producer.create()
    async with await _raw(pg_api, TRANSPORT_WS) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        await ws.recv()
        payload = {"query": LOGS, "variables": {"id": str(deployment)}}
        for n in range(101):
            await ws.send(json.dumps({"type": "subscribe", "id": str(n), "payload": payload}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message["type"] == "error" and message["id"] == "100"
        assert message["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
        await ws.send(json.dumps({"type": "subscribe", "id": "0", "payload": payload}))
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await ws.recv()
        assert ws.close_code == 4409
    await producer.finish(deployment)


async def test_a_subscriber_that_never_reads_delays_no_one(
    pg_api: ServerProcess, producer: LogProducer
) -> None:
    deployment = await producer.create()
    stuck = await websockets.connect(
        ws_url(pg_api),
        subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
        additional_headers=AUTH_HEADERS,
        max_queue=1,
    )
    await stuck.send(json.dumps({"type": "connection_init"}))
    await stuck.recv()
    await stuck.send(
        json.dumps(
            {
                "type": "subscribe",
                "id": "stuck",
                "payload": {"query": LOGS, "variables": {"id": str(deployment)}},
            }
        )
    )
    stuck.transport.pause_reading()  # and from here on it reads nothing at all
    task = asyncio.create_task(follow_logs(pg_api, TRANSPORT_WS, deployment))
    await started(task, pg_api)
    padding = "x" * 400
    started_at = time.monotonic()
    await producer.write(deployment, 20000, rate=10000, prefix=f"line-{padding}")
    await producer.finish(deployment)
    seen = await asyncio.wait_for(task, 30)
    took = time.monotonic() - started_at
    assert seen == list(range(1, 20001))
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{pg_api.url}/healthz", timeout=5)).status_code == 200
    assert took < 25, f"the reading subscriber needed {took:.1f}s for 2s of lines"
    stuck.transport.abort()


async def test_application_logs_of_running_services(pg_api: ServerProcess, swarm: str) -> None:

    remove_stack(APP)
    start_talker()
    try:
        query = """subscription($app: String!) {
            applicationLogs(application: $app, tail: 3) {
                application lines { service task stream text }
            }
        }"""
        lines: list[dict[str, Any]] = []
        await asyncio.sleep(2)  # let it print something
        async with _client(pg_api, TRANSPORT_WS) as session:
            request = GraphQLRequest(query, variable_values={"app": APP})
            async for result in session.subscribe(request):
                lines.extend(result["applicationLogs"]["lines"])
                if len(lines) >= 10:
                    break
        assert len(lines) >= 10
        assert {line["service"] for line in lines} == {f"{APP}_talk"}
        assert {line["stream"] for line in lines} == {"STDOUT", "STDERR"}
        with pytest.raises(TransportQueryError) as caught:
            async with _client(pg_api, LEGACY_WS) as session:
                async for _ in session.subscribe(
                    GraphQLRequest(query, variable_values={"app": "nope"})
                ):
                    pass
        assert "has no running services" in str(caught.value)
    finally:
        remove_stack(APP)


@pytest.mark.parametrize(("protocol", "keep_alive"), [(TRANSPORT_WS, "ping"), (LEGACY_WS, "ka")])
async def test_keep_alive(
    protocol: str, keep_alive: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("keep-alive")
    server = ServerProcess(server_env(tmp, DEPLOYBOT_WS_KEEP_ALIVE="0.5"), tmp, "--no-runner")
    try:
        async with await _raw(server, protocol) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            types = [json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] for _ in range(3)]
            assert types.count(keep_alive) >= 2
    finally:
        server.stop()
