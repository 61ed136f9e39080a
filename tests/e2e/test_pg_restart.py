"""End to end on the real Swarm: PostgreSQL restarted in the middle of a deployment.

Two `deploybot serve` processes share a PostgreSQL cluster of the test's own (the
shared one is never restarted): the first runs the deployment, the second serves the
subscribers. The deployed service prints a line every 0.1 s; while it does, the cluster
is stopped (a fast shutdown ends every connection, as a restart does) and started again
two seconds later. Requests during the outage get a typed DATABASE_UNAVAILABLE; the
deployment ends with its true outcome; the log subscriber on the other process gets
every line exactly once, in order; the events subscriber hears of what happened after
the restart, and `deploymentEvents(after:)` resumes from a cursor.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client as GqlClient
from gql import GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.websockets import WebsocketsTransport

from tests.conftest import DOCKER, remove_stack, server_env, ws_url
from tests.e2e.test_takeover import start_deploy, wait_final, wait_step
from tests.gitserver import GitServer
from tests.pgcluster import PgCluster
from tests.servers import AUTH_HEADERS, WS_INIT_PAYLOAD, Client, ServerProcess
from tests.tcpproxy import DroppingProxy

APP = "pgrestart"
TICKS = 80
TALKER = (
    "FROM deploybot/busybox:latest\n"
    'CMD ["sh", "-c", "i=1; while [ $i -le %d ]; do echo tick $i; i=$((i+1)); sleep 0.1;'
    ' done; sleep 3600"]\n' % TICKS
)
OUTAGE = 2.0

EVENTS = """subscription($apps: [String!], $after: String) {
  deploymentEvents(filter: {applications: $apps}, after: $after) {
    kind state cursor deployment { id number }
  }
}"""
LOGS = """subscription($id: ID!) {
  deploymentLogs(id: $id) { lines { sequence source sourceName text } }
}"""
STATE = "query($id: ID!) { deployment(id: $id) { state } }"


@pytest.fixture(scope="module")
def talker(swarm: str) -> Iterator[str]:
    tag = f"{APP}/talker:v1"
    subprocess.run(
        [DOCKER, "build", "-q", "-t", tag, "-"],
        input=TALKER,
        text=True,
        check=True,
        capture_output=True,
        timeout=120,
    )
    yield tag
    subprocess.run([DOCKER, "rmi", "-f", tag], capture_output=True, timeout=60)


@pytest.fixture
def servers(
    swarm: str, pg_cluster: PgCluster, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """The runner's process (first) and an API process (second), on the test's cluster."""
    remove_stack(APP)
    env = server_env(
        tmp_path,
        DEPLOYBOT_DATABASE_URL=pg_cluster.url,
        DEPLOYBOT_DOCKER_HOST=swarm,
        DEPLOYBOT_CONVERGE_STABLE_SECONDS=str(TICKS / 10 + 2),
        DEPLOYBOT_RUNNER_POLL_INTERVAL="0.2",
    )
    runner = ServerProcess(env, tmp_path)
    api: ServerProcess | None = None
    try:
        api = ServerProcess(env, tmp_path, "--no-runner")
        yield runner, api
    finally:
        for server in (runner, api):
            if server is not None:
                server.stop()
        remove_stack(APP)


def label(line: dict[str, Any]) -> str:
    """A line as the raw log route prints it."""
    return f"[{line['sourceName'] or line['source'].lower()}] {line['text']}"


async def collect_logs(
    session: AsyncClientSession, gid: str, into: list[dict[str, Any]], talking: asyncio.Event
) -> None:
    """The deployment's log lines; `talking` is set once the service's lines come."""
    request = GraphQLRequest(LOGS, variable_values={"id": gid})
    async for result in session.subscribe(request):
        into.extend(result["deploymentLogs"]["lines"])
        if sum(line["text"].startswith("tick") for line in into) >= 15:
            talking.set()


async def collect_events(
    session: AsyncClientSession, into: list[tuple[float, dict[str, Any]]], until: str
) -> None:
    request = GraphQLRequest(EVENTS, variable_values={"apps": [APP]})
    async for result in session.subscribe(request):
        event = result["deploymentEvents"]
        into.append((time.monotonic(), event))
        if event["state"] == until:
            return


def ask_state(http: httpx.Client, deployment_id: str) -> tuple[int, dict[str, Any]]:
    """A GraphQL query's HTTP status and body. Down, the database may fail the query
    itself (200, an error in the body) or the token check before it (503, a GraphQL body)."""
    response = http.post("/graphql", json={"query": STATE, "variables": {"id": deployment_id}})
    body: dict[str, Any] = response.json()
    return response.status_code, body


def during_outage(api: ServerProcess, deployment_id: str, number: int) -> dict[str, Any]:
    """What a GraphQL query and the raw log route answer while the database is down."""
    with httpx.Client(base_url=api.url, headers=AUTH_HEADERS, timeout=10) as http:
        status, body = ask_state(http, deployment_id)
        raw = http.get(f"/deployments/{number}/logs")
    return {"status": status, "graphql": body, "raw_status": raw.status_code, "raw": raw.json()}


def until_answering(api: ServerProcess, deployment_id: str, timeout: float = 30) -> float:
    """Poll a query until it succeeds again; when it did (time.monotonic())."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=api.url, headers=AUTH_HEADERS, timeout=10) as http:
        while True:
            status, body = ask_state(http, deployment_id)
            if status == 200 and not body.get("errors"):
                return time.monotonic()
            assert body["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE", body
            assert time.monotonic() < deadline, body
            time.sleep(0.05)


async def test_postgresql_restarted_mid_deployment_every_line_once(
    talker: str, pg_cluster: PgCluster, servers: tuple[ServerProcess, ServerProcess]
) -> None:
    runner, api = servers
    transport = WebsocketsTransport(
        url=ws_url(api),
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        init_payload=WS_INIT_PAYLOAD,
    )
    lines: list[dict[str, Any]] = []
    events: list[tuple[float, dict[str, Any]]] = []
    async with GqlClient(transport=transport, execute_timeout=60) as session:
        following = asyncio.create_task(collect_events(session, events, "SUCCESS"))
        await asyncio.sleep(1.0)  # the events subscription in place before the deploy
        with Client(runner.url) as client:
            gid = await asyncio.to_thread(
                start_deploy, client, image=talker, application=APP, service="talker", version="1"
            )
            await asyncio.to_thread(wait_step, client, gid, "converge")
        talking = asyncio.Event()
        logging = asyncio.create_task(collect_logs(session, gid, lines, talking))
        await asyncio.wait_for(talking.wait(), 30)

        # The restart, while the service talks.
        await asyncio.to_thread(pg_cluster.stop)
        stopped_at = time.monotonic()
        number = events[0][1]["deployment"]["number"]
        answered = await asyncio.to_thread(during_outage, api, gid, number)
        await asyncio.sleep(max(0.0, stopped_at + OUTAGE - time.monotonic()))
        await asyncio.to_thread(pg_cluster.start)
        started_at = time.monotonic()
        answering_at = await asyncio.to_thread(until_answering, api, gid)

        with Client(api.url) as client:
            final = await asyncio.to_thread(wait_final, client, gid)
        await asyncio.wait_for(logging, 60)
        await asyncio.wait_for(following, 30)

        # Resuming from the cursor of the first event: the deployment as it is now first.
        first_cursor = events[0][1]["cursor"]
        resume = GraphQLRequest(EVENTS, variable_values={"apps": [APP], "after": first_cursor})
        async for result in session.subscribe(resume):
            resumed = result["deploymentEvents"]
            break

    print(
        f"outage {started_at - stopped_at:.2f} s; API answering again"
        f" {answering_at - started_at:.2f} s after the start"
    )
    # During the outage: a typed error, never a 500 or an internal error.
    errors = answered["graphql"]["errors"]
    assert answered["status"] in (200, 503), answered
    assert [e["extensions"]["code"] for e in errors] == ["DATABASE_UNAVAILABLE"], errors
    assert "Internal server error" not in str(answered)
    assert answered["raw_status"] == 503, answered
    assert answered["raw"]["error"]["code"] == "DATABASE_UNAVAILABLE", answered

    # The deployment's true outcome, as if nothing had happened.
    assert final["state"] == "SUCCESS", final
    assert all(step["status"] != "FAILED" for step in final["steps"]), final

    # Every line exactly once, in order, as stored; the outage's lines among them.
    assert [line["sequence"] for line in lines] == list(range(1, len(lines) + 1))
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH_HEADERS, timeout=30) as http:
        raw = await http.get(f"/deployments/{number}/logs")
    assert raw.status_code == 200, raw.text
    assert [label(line) for line in lines] == raw.text.splitlines()
    ticks = [line["text"] for line in lines if line["text"].startswith("tick")]
    assert ticks == [f"tick {n}" for n in range(1, TICKS + 1)]

    # The events subscriber on the other process was not ended by the restart.
    states = [event["state"] for _, event in events]
    assert states[0] == "QUEUED" and states[-1] == "SUCCESS", states
    assert any(at > started_at for at, _ in events), events
    assert (resumed["deployment"]["id"], resumed["state"]) == (gid, "SUCCESS"), resumed
    assert resumed["cursor"] == events[-1][1]["cursor"]  # where the last event stood


EARLY_APP = "pgearly"
EARLY_STACK = """version: "3.8"
services:
  app:
    image: deploybot/busybox:latest
    command: ["sleep", "3600"]
    deploy:
      replicas: 1
"""


def wait_for_line(path: Path, text: str, timeout: float = 60) -> None:
    """Until a server's log says `text` (what the runner is waiting for)."""
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} not in {path}"
        time.sleep(0.05)


def test_postgresql_down_during_the_fetch_the_deployment_waits_and_succeeds(
    swarm: str, pg_cluster: PgCluster, git_server: GitServer, tmp_path: Path
) -> None:
    """PostgreSQL stops while the runner fetches the repository; when the fetch ends the
    runner reads the deploy policy again (for the stack) with the database still down. The
    read waits for the database like the runner's writes do: once it is back, the
    deployment goes on and ends SUCCESS (it used to end ERROR INTERNAL_ERROR)."""
    remove_stack(EARLY_APP)
    git_server.create_repo(EARLY_APP)
    sha = git_server.commit(EARLY_APP, {"docker-compose.stack.yml": EARLY_STACK}, tag="v1")
    assert git_server.port is not None
    # The runner's git remote, slowed down at will: the fetch lasts as long as it is held.
    remote = DroppingProxy(git_server.port)
    url = f"git://127.0.0.1:{remote.port}/{EARLY_APP}.git"
    env = server_env(
        tmp_path,
        DEPLOYBOT_DATABASE_URL=pg_cluster.url,
        DEPLOYBOT_DOCKER_HOST=swarm,
        DEPLOYBOT_RUNNER_POLL_INTERVAL="0.2",
    )
    api = ServerProcess(env, tmp_path, "--no-runner")
    runner: ServerProcess | None = None
    try:
        with Client(api.url) as client:
            gid = start_deploy(client, repositoryUrl=url, commitSha=sha)  # admitted, queued
            remote.hold()
            runner = ServerProcess(env, tmp_path)  # claims it; its fetch hangs on the remote
            wait_step(client, gid, "fetch")
            pg_cluster.stop()
            try:
                remote.release()  # the fetch ends while the database is down
                wait_for_line(runner.log_path, "reading the deploy policy: the database is")
            finally:
                pg_cluster.start()
            until_answering(api, gid)  # the API's first answers after a restart may be 503
            final = wait_final(client, gid)
        assert final["state"] == "SUCCESS", final
        assert final["errorCode"] is None, final
        assert all(step["status"] == "COMPLETED" for step in final["steps"]), final
    finally:
        remote.close()
        for server in (runner, api):
            if server is not None:
                server.stop()
        remove_stack(EARLY_APP)
