"""Logs and subscriptions through a real `deploybot relay`: production is a `deploybot
serve` on PostgreSQL behind a TCP proxy that can cut the relay's connections (the test
process writes its log as a runner would, `LogProducer`), staging one on SQLite, and dev an
environment whose instance is down."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from gql import Client as GqlClient
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from deploybot.domain import DeploymentState, StepName, StepStatus
from deploybot.ids import encode_id
from tests.conftest import server_env
from tests.e2e.test_relay import RECORD, RelayProcess, _instance, _service_token
from tests.logproducer import LogProducer
from tests.servers import ADMIN_TOKEN, AUTH_HEADERS, Client, ServerProcess, free_port
from tests.tcpproxy import DroppingProxy

JS = Path(__file__).resolve().parents[1] / "js"
TRANSPORT_WS = WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL  # graphql-transport-ws
LEGACY_WS = WebsocketsTransport.APOLLO_SUBPROTOCOL  # graphql-ws

LOGS = """subscription($id: ID!, $after: Int) {
  deploymentLogs(id: $id, after: $after) { deploymentId lastSequence lines { sequence text } } }"""
EVENTS = """subscription($apps: [String!]) {
  deploymentEvents(filter: {applications: $apps}) {
    kind state deployment { id environment application } } }"""


@dataclass
class Setup:
    relay: RelayProcess
    production: ServerProcess
    staging: ServerProcess
    proxy: DroppingProxy
    postgres_url: str
    relay_env: dict[str, str]

    def relay_token(self, name: str, scope: str) -> str:
        """A token of the relay's own (`deploybot token create` on its database)."""
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "deploybot",
                "token",
                "create",
                "--name",
                name,
                "--scope",
                scope,
            ],
            env={**os.environ, **self.relay_env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.split()[-1]

    @property
    def relay_ws(self) -> str:
        return self.relay.url.replace("http://", "ws://") + "/graphql"


@pytest.fixture(scope="module")
def setup(
    postgres_url: str, swarm: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("relay-logs")
    home = tmp / "production"
    home.mkdir()
    production = ServerProcess(
        server_env(home, DEPLOYBOT_DATABASE_URL=postgres_url, DEPLOYBOT_ENVIRONMENT="production"),
        home,
        "--no-runner",
        wait=False,
    )
    staging = _instance(tmp, "staging", swarm)  # its own database: starts beside production
    production.ready()
    proxy = DroppingProxy(production.port)
    upstreams = {
        "production": {"url": proxy.url, "token": _service_token(production), "timeout": 3},
        "staging": {"url": staging.url, "token": _service_token(staging), "timeout": 3},
        "dev": {"url": f"http://127.0.0.1:{free_port()}", "token": "dbt_down", "timeout": 1},
    }
    relay_home = tmp / "relay"
    relay_home.mkdir()
    env = server_env(relay_home, DEPLOYBOT_RELAY_ENVIRONMENTS=json.dumps(upstreams))
    relay = RelayProcess(env, relay_home)
    yield Setup(relay, production, staging, proxy, postgres_url, env)
    relay.stop()
    proxy.close()
    production.stop()
    staging.stop()


@pytest.fixture
async def producer(setup: Setup) -> AsyncIterator[LogProducer]:
    async with LogProducer(setup.postgres_url, environment="production") as p:
        yield p


def _transport(url: str, protocol: str, token: str) -> WebsocketsTransport:
    return WebsocketsTransport(
        url=url, subprotocols=[protocol], init_payload={"authorization": f"Bearer {token}"}
    )


async def follow_gql(
    url: str, protocol: str, gid: str, *, token: str = ADMIN_TOKEN, after: int | None = None
) -> list[int]:
    """Every line's sequence until the subscription completes."""
    seen: list[int] = []
    variables = {"id": gid, "after": after}
    async with GqlClient(transport=_transport(url, protocol, token)) as session:
        async for result in session.subscribe(GraphQLRequest(LOGS, variable_values=variables)):
            seen.extend(line["sequence"] for line in result["deploymentLogs"]["lines"])
    return seen


async def follow_raw(url: str, gid: str) -> list[int]:
    """`curl -N …/logs?follow=true`: the `n` of every `[label] line n t` until it ends."""
    async with (
        httpx.AsyncClient(timeout=60, headers=AUTH_HEADERS) as http,
        http.stream("GET", f"{url}/deployments/{gid}/logs?follow=true") as response,
    ):
        assert response.status_code == 200
        return [int(line.split()[2]) async for line in response.aiter_lines() if line]


async def follow_node(url: str, gid: str) -> asyncio.subprocess.Process:
    if not (JS / "node_modules" / "graphql-ws").is_dir():
        pytest.fail("the npm clients are missing; run `bash scripts/prepare-machine.sh`")
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(JS / "follow-logs.mjs"),
        url,
        gid,
        env={**os.environ, "DEPLOYBOT_TOKEN": ADMIN_TOKEN},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"ready", line
    return proc


async def node_result(proc: asyncio.subprocess.Process) -> list[int]:
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    sequences: list[int] = json.loads(out.decode().strip().splitlines()[-1])["sequences"]
    return sequences


def _runs(seen: list[int]) -> list[tuple[int, int]]:
    """`seen` as runs of consecutive numbers (what a failure shows)."""
    runs: list[tuple[int, int]] = []
    for n in seen:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def metric(url: str, name: str, labels: str = "") -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    selector = re.escape(f"{{{labels}}}") if labels else ""
    found = re.search(rf"^{name}{selector} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_every_client_gets_every_line_once_across_cut_upstream_connections(
    setup: Setup, producer: LogProducer
) -> None:
    deployment = await producer.create("relayed")
    gid = encode_id("Deployment", "production", deployment)
    await producer.write(deployment, 500)  # a backlog before anyone follows
    node = await follow_node(setup.relay_ws, gid)
    followers = [
        asyncio.create_task(follow_gql(setup.relay_ws, TRANSPORT_WS, gid)),
        asyncio.create_task(follow_gql(setup.relay_ws, LEGACY_WS, gid)),
        asyncio.create_task(follow_raw(setup.relay.url, gid)),
    ]
    direct_ws = setup.production.url.replace("http://", "ws://") + "/graphql"
    direct = asyncio.create_task(follow_gql(direct_ws, TRANSPORT_WS, gid))
    active = "deploybot_active_subscriptions"
    deadline = time.monotonic() + 30
    while await asyncio.to_thread(metric, setup.relay.url, active) < 3:  # the WebSocket ones
        assert time.monotonic() < deadline, "the subscriptions did not start"
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    assert not any(task.done() for task in [*followers, direct])
    # four clients at the relay, one stream from the relay to the instance
    labels = 'method="follow_deployment_logs"'
    streams = await asyncio.to_thread(
        metric, setup.production.url, "deploybot_relay_streams", labels
    )
    assert streams == 1
    relay_streams = "deploybot_relay_upstream_streams"
    assert await asyncio.to_thread(metric, setup.relay.url, relay_streams, labels) == 1

    writing = asyncio.create_task(producer.write(deployment, 3000, rate=2000))
    for _ in range(2):  # cut the relay's upstream connections mid-stream, twice
        await asyncio.sleep(0.5)
        setup.proxy.drop_all()
    await writing
    await producer.finish(deployment)
    results = await asyncio.wait_for(asyncio.gather(*followers, node_result(node), direct), 60)
    gql_transport_ws, gql_legacy_ws, raw, npm_graphql_ws, at_the_instance = results
    expected = list(range(1, 3501))
    for seen in (gql_transport_ws, gql_legacy_ws, npm_graphql_ws, at_the_instance):
        assert seen == expected, _runs(seen)
    # the raw text numbers each write's lines from 1: the backlog's 500, then the 3000
    assert raw == list(range(1, 501)) + list(range(1, 3001)), _runs(raw)
    assert setup.proxy.dropped >= 2
    reconnects = 'environment="production"'
    reopened = "deploybot_relay_upstream_reconnects_total"
    assert await asyncio.to_thread(metric, setup.relay.url, reopened, reconnects) >= 1


async def test_progress_routed_by_id_snapshot_then_changes(
    setup: Setup, producer: LogProducer
) -> None:
    deployment = await producer.create("progressing")
    gid = encode_id("Deployment", "production", deployment)
    query = """subscription($id: ID!) { deploymentProgress(id: $id) {
        deploymentId state step status percentage } }"""
    updates: list[dict[str, Any]] = []

    async def watch() -> None:
        async with GqlClient(transport=_transport(setup.relay_ws, LEGACY_WS, ADMIN_TOKEN)) as s:
            async for result in s.subscribe(GraphQLRequest(query, variable_values={"id": gid})):
                updates.append(result["deploymentProgress"])

    task = asyncio.create_task(watch())
    labels = 'method="follow_deployment_progress"'
    deadline = time.monotonic() + 30
    while (
        not updates
        or await asyncio.to_thread(metric, setup.production.url, "deploybot_relay_streams", labels)
        < 1
    ):  # the snapshot came, and the relay's stream is open at the instance
        assert time.monotonic() < deadline and not task.done(), "the subscription did not start"
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.3)
    await producer.step(deployment, StepName.BUILD, StepStatus.RUNNING)
    await producer.step(deployment, StepName.BUILD, StepStatus.COMPLETED)
    await asyncio.sleep(0.5)
    dropped = setup.proxy.dropped
    setup.proxy.drop_all()  # reopened upstream: the current state is not reported twice
    await asyncio.sleep(0.5)
    await producer.step(deployment, StepName.ROLLOUT, StepStatus.RUNNING)
    await asyncio.sleep(0.5)
    await producer.finish(deployment, DeploymentState.FAILURE)
    await asyncio.wait_for(task, 20)
    assert {u["deploymentId"] for u in updates} == {gid}
    steps = [(u["state"], u["step"], u["status"], u["percentage"]) for u in updates]
    assert len(steps) == len(set(steps)), steps
    assert steps[0][0] == "IN_PROGRESS"
    assert ("IN_PROGRESS", "build", "RUNNING", 0) in steps
    assert ("IN_PROGRESS", "rollout", "RUNNING", 50) in steps
    assert steps[-1][0] == "FAILURE" and steps[-1][3] == 100
    assert setup.proxy.dropped > dropped


async def test_a_staging_token_cannot_follow_production_logs(
    setup: Setup, producer: LogProducer
) -> None:
    deployment = await producer.create("guarded")
    await producer.write(deployment, 5)
    await producer.finish(deployment)
    gid = encode_id("Deployment", "production", deployment)
    token = await asyncio.to_thread(setup.relay_token, "staging-only", "read:staging")
    admin = Client(setup.relay.url)
    recorded = admin.query(
        RECORD, {"input": {"application": "guarded", "version": "1", "environment": "staging"}}
    )["recordDeployment"]["deployment"]["id"]
    admin.close()

    with pytest.raises(TransportQueryError) as refused:
        await follow_gql(setup.relay_ws, TRANSPORT_WS, gid, token=token)
    assert refused.value.errors is not None
    assert refused.value.errors[0]["extensions"]["code"] == "FORBIDDEN"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        for follow in ("true", "false"):
            url = f"{setup.relay.url}/deployments/{gid}/logs?follow={follow}"
            answer = await http.get(url)
            assert answer.status_code == 403
            assert answer.json()["error"]["code"] == "FORBIDDEN"
        # its own environment's: a recorded deployment has ended, its (empty) log too
        own = await http.get(f"{setup.relay.url}/deployments/{recorded}/logs?follow=true")
        assert own.status_code == 200 and own.text == ""
    assert await follow_gql(setup.relay_ws, LEGACY_WS, recorded, token=token) == []
    # the admin reads production's log through the relay, raw
    async with httpx.AsyncClient(headers=AUTH_HEADERS) as http:
        raw = await http.get(f"{setup.relay.url}/deployments/{gid}/logs")
        # an instance streams to relays only (a token with the relay grant forwarding a caller)
        body = {"arguments": {"ref": {"environment": "production", "number": deployment}}}
        direct = await http.post(
            f"{setup.production.url}/relay/stream/follow_deployment_logs", json=body
        )
    assert direct.status_code == 403
    assert direct.json()["error"]["code"] == "FORBIDDEN"
    assert [line.split()[2] for line in raw.text.splitlines()] == ["1", "2", "3", "4", "5"]


async def test_deployment_events_merged_from_environments_and_one_down(setup: Setup) -> None:
    async with websockets.connect(setup.relay_ws, subprotocols=[TRANSPORT_WS]) as ws:  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {ADMIN_TOKEN}"}}
        await ws.send(orjson.dumps(init).decode())
        assert orjson.loads(await ws.recv())["type"] == "connection_ack"
        subscribe = {"query": EVENTS, "variables": {"apps": ["merged-app"]}}
        await ws.send(orjson.dumps({"id": "e", "type": "subscribe", "payload": subscribe}).decode())
        notice = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert notice["type"] == "next"
        errors = notice["payload"]["errors"]
        assert [(e["extensions"]["code"], e["extensions"]["environment"]) for e in errors] == [
            ("ENVIRONMENT_UNAVAILABLE", "dev")
        ]
        await asyncio.sleep(0.5)  # the upstream streams open
        admin = Client(setup.relay.url)
        for environment in ("staging", "production", "staging"):
            variables = {"application": "merged-app", "version": "1", "environment": environment}
            data = await asyncio.to_thread(admin.query, RECORD, {"input": variables})
            assert data["recordDeployment"]["userErrors"] == []
        await asyncio.to_thread(
            admin.query, RECORD, {"input": {"application": "other", "environment": "staging"}}
        )
        admin.close()
        seen: list[dict[str, Any]] = []
        while sum(e["kind"] == "CREATED" for e in seen) < 3:
            message = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            if message["type"] == "next":
                seen.append(message["payload"]["data"]["deploymentEvents"])
    created = [e["deployment"]["environment"] for e in seen if e["kind"] == "CREATED"]
    assert sorted(created) == ["production", "staging", "staging"]
    assert {e["deployment"]["application"] for e in seen} == {"merged-app"}


APPLICATION_LOGS = """subscription($app: String!, $env: String) {
  applicationLogs(application: $app, environment: $env, tail: 5) { environment lines { text } } }"""


async def _first_error(url: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The error a subscription of APPLICATION_LOGS ends with (these instances run no
    application)."""
    async with GqlClient(transport=_transport(url, TRANSPORT_WS, ADMIN_TOKEN)) as session:
        request = GraphQLRequest(APPLICATION_LOGS, variable_values=variables)
        with pytest.raises(TransportQueryError) as failed:
            async for _ in session.subscribe(request):
                pass
    assert failed.value.errors is not None
    error: dict[str, Any] = failed.value.errors[0]
    return error


async def test_application_logs_routed_by_environment(setup: Setup) -> None:
    staging_ws = setup.staging.url.replace("http://", "ws://") + "/graphql"
    at_staging = await _first_error(staging_ws, {"app": "nothing-runs", "env": "staging"})
    through_relay = await _first_error(setup.relay_ws, {"app": "nothing-runs", "env": "staging"})
    assert through_relay["extensions"] == at_staging["extensions"]
    assert through_relay["message"] == at_staging["message"]
    down = await _first_error(setup.relay_ws, {"app": "nothing-runs", "env": "dev"})
    assert down["extensions"]["code"] == "ENVIRONMENT_UNAVAILABLE"
    assert "dev" in down["message"]
    unnamed = await _first_error(setup.relay_ws, {"app": "nothing-runs", "env": None})
    assert unnamed["extensions"]["code"] == "INVALID_INPUT"


EVENTS_AFTER = """subscription($apps: [String!], $after: String) {
  deploymentEvents(filter: {applications: $apps}, after: $after) {
    kind cursor deployment { environment version } } }"""


async def _events(
    setup: Setup, variables: dict[str, Any], count: int, record: list[dict[str, str]]
) -> list[dict[str, Any]]:
    """The first `count` events of a subscription through the relay, recording `record`
    once it is open."""
    async with websockets.connect(setup.relay_ws, subprotocols=[TRANSPORT_WS]) as ws:  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {ADMIN_TOKEN}"}}
        await ws.send(orjson.dumps(init).decode())
        assert orjson.loads(await ws.recv())["type"] == "connection_ack"
        subscribe = {"query": EVENTS_AFTER, "variables": variables}
        await ws.send(orjson.dumps({"id": "r", "type": "subscribe", "payload": subscribe}).decode())
        await asyncio.sleep(0.5)  # the upstream streams open
        admin = Client(setup.relay.url)
        for variables_in in record:
            data = await asyncio.to_thread(admin.query, RECORD, {"input": variables_in})
            assert data["recordDeployment"]["userErrors"] == []
        admin.close()
        seen: list[dict[str, Any]] = []
        while len(seen) < count:
            message = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            assert message["type"] == "next", message
            if message["payload"].get("data"):  # the first may only name the down environment
                seen.append(message["payload"]["data"]["deploymentEvents"])
    return seen


async def test_deployment_events_resume_after_a_cursor_through_the_relay(setup: Setup) -> None:
    app = {"application": "resume-app"}
    (first,) = await _events(
        setup, {"apps": ["resume-app"]}, 1, [{**app, "version": "1", "environment": "staging"}]
    )
    admin = Client(setup.relay.url)
    for version, environment in (("2", "production"), ("3", "staging")):
        variables = {**app, "version": version, "environment": environment}
        data = await asyncio.to_thread(admin.query, RECORD, {"input": variables})
        assert data["recordDeployment"]["userErrors"] == []
    admin.close()
    # read back from each environment as they are now; staging's version 1 changed too
    # (version 3 superseded it), so it comes again
    missed = await _events(setup, {"apps": ["resume-app"], "after": first["cursor"]}, 3, [])
    seen = [(e["deployment"]["environment"], e["deployment"]["version"]) for e in missed]
    assert sorted(seen) == [("production", "2"), ("staging", "1"), ("staging", "3")]
    assert seen.index(("production", "2")) < seen.index(("staging", "3"))  # in time order


EVENTS_STATES = """subscription($apps: [String!]) {
  deploymentEvents(filter: {applications: $apps}) {
    kind state cursor deployment { environment version } } }"""


async def test_deployment_events_missed_in_an_outage_are_replayed_once(setup: Setup) -> None:
    """Production is unreachable for a while (its connections cut, new ones refused) and
    records a deployment meanwhile; when it is back the relay resumes production's stream
    after the last change it delivered: the subscriber gets the missed change, and no
    change twice."""
    app = {"application": "outage-app"}
    relay, production = Client(setup.relay.url), Client(setup.production.url)

    def record(client: Client, version: str, environment: str) -> None:
        variables = {**app, "version": version, "environment": environment}
        data = client.query(RECORD, {"input": variables})
        assert data["recordDeployment"]["userErrors"] == []

    seen: list[tuple[str, str, str, str]] = []
    async with websockets.connect(setup.relay_ws, subprotocols=[TRANSPORT_WS]) as ws:  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {ADMIN_TOKEN}"}}
        await ws.send(orjson.dumps(init).decode())
        assert orjson.loads(await ws.recv())["type"] == "connection_ack"
        subscribe = {"query": EVENTS_STATES, "variables": {"apps": ["outage-app"]}}
        await ws.send(orjson.dumps({"id": "o", "type": "subscribe", "payload": subscribe}).decode())

        async def until(environment: str, version: str) -> None:
            while (environment, version) not in {(e[2], e[3]) for e in seen}:
                message = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
                if message["type"] == "ping":  # the server's keep-alive
                    await ws.send(orjson.dumps({"type": "pong"}).decode())
                    continue
                assert message["type"] == "next", message
                event = (message["payload"].get("data") or {}).get("deploymentEvents")
                if event:  # the first message may only name the down environment
                    what, d = f"{event['kind']} {event['state']}", event["deployment"]
                    seen.append((what, event["cursor"], d["environment"], d["version"]))

        await asyncio.sleep(0.5)  # the upstream streams open
        await asyncio.to_thread(record, relay, "1", "production")
        await until("production", "1")
        setup.proxy.refuse()
        try:
            await asyncio.to_thread(record, production, "2", "production")  # at the instance
            await asyncio.to_thread(record, relay, "3", "staging")
            await until("staging", "3")  # the relay is up; production's change waits
            assert ("production", "2") not in {(e[2], e[3]) for e in seen}
        finally:
            setup.proxy.admit()
        await until("production", "2")  # replayed when the stream is resumed
        await asyncio.to_thread(record, relay, "4", "production")
        await until("production", "4")
    relay.close()
    production.close()
    assert len(set(seen)) == len(seen), seen
    versions = [(e[2], e[3]) for e in seen]
    assert versions.index(("production", "2")) < versions.index(("production", "4"))
    assert versions.index(("staging", "3")) < versions.index(("production", "2"))


async def test_a_late_follower_of_a_finished_log_reads_it_from_upstream_once(
    setup: Setup, producer: LogProducer
) -> None:
    """A follower of a finished deployment's log from `after: 300`: the relay's stream
    upstream reads the log from its start, and the follower's lines are served from what
    the relay kept of it, not read again (`mode="initial"`)."""
    deployment = await producer.create("finished-log")
    gid = encode_id("Deployment", "production", deployment)
    await producer.write(deployment, 400)
    await producer.finish(deployment)
    opened = "deploybot_relay_upstream_opened_total"

    async def opens(mode: str) -> float:
        labels = f'method="follow_deployment_logs",mode="{mode}"'
        return await asyncio.to_thread(metric, setup.relay.url, opened, labels)

    before = {mode: await opens(mode) for mode in ("follow", "initial")}
    late = await asyncio.wait_for(follow_gql(setup.relay_ws, TRANSPORT_WS, gid, after=300), 60)
    raw = await asyncio.wait_for(follow_raw(setup.relay.url, gid), 60)
    assert late == list(range(301, 401)), _runs(late)
    assert raw == list(range(1, 401)), _runs(raw)
    # one follow stream per follower (the channel ends with the log), no backlog read
    assert await opens("follow") - before["follow"] == 2
    assert await opens("initial") - before["initial"] == 0
