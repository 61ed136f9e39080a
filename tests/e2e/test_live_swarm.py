"""Following real deployments live, across processes, with real clients.

One `deploybot runner` and two `deploybot serve --no-runner` processes share a
PostgreSQL database, started as a user starts them. Clients subscribe on
either API process — Python `gql` over both subprotocols, and the npm
`graphql-ws` client run by Node.js — and each must see the deployment go from
QUEUED to SUCCESS and receive every one of its log lines exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from gql import Client as GqlClient
from gql import GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from tests.conftest import remove_stack, server_env, ws_url
from tests.e2e.test_deploy_swarm import deploy, wait_final
from tests.gitserver import GitServer
from tests.servers import ADMIN_TOKEN, AUTH_HEADERS, WS_INIT_PAYLOAD, Client, ServerProcess

JS = Path(__file__).resolve().parents[1] / "js"
APP = "live"

TALKER = """FROM deploybot/busybox:latest
CMD ["sh", "-c", "i=0; while [ $i -lt 300 ]; do echo talk $i; i=$((i+1)); done; sleep 100000"]
"""
STACK = """version: "3.8"
services:
  talker:
    build: .
    stop_grace_period: 1s
    deploy:
      replicas: 1
"""

EVENTS = """subscription($apps: [String!]) {
  deploymentEvents(filter: {applications: $apps}) { kind state deployment { id number } }
}"""
LOGS = "subscription($id: ID!) { deploymentLogs(id: $id) { lines { sequence } } }"
PROGRESS = "subscription($id: ID!) { deploymentProgress(id: $id) { state status percentage } }"
TOTAL = "query($id: ID!) { deployment(id: $id) { logs(first: 1) { totalCount } } }"


class Cluster:
    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.apis = [ServerProcess(env, tmp, "--no-runner") for _ in range(2)]
        self.runner_log = (tmp / "runner.log").open("wb")
        self.runner = subprocess.Popen(
            [sys.executable, "-m", "deploybot", "runner"],
            env={**os.environ, **env},
            cwd=tmp,
            stdout=self.runner_log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        self.runner.send_signal(signal.SIGINT)
        try:
            self.runner.wait(30)
        except subprocess.TimeoutExpired:
            self.runner.kill()
        self.runner_log.close()
        for api in self.apis:
            api.stop()


@pytest.fixture(scope="module")
def cluster(
    swarm: str, registry: str, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    env = server_env(
        tmp,
        DEPLOYBOT_DATABASE_URL=postgres_url,
        DEPLOYBOT_DOCKER_HOST=swarm,
        DEPLOYBOT_REGISTRY=registry,
    )
    cluster = Cluster(env, tmp)
    yield cluster
    cluster.stop()
    remove_stack(APP)


@pytest.fixture(scope="module")
def repository(git_server: GitServer) -> Iterator[str]:
    remove_stack(APP)
    git_server.create_repo(APP)
    git_server.commit(APP, {"Dockerfile": TALKER, "docker-compose.stack.yml": STACK})
    yield git_server.url(APP)


async def follow(server: ServerProcess, protocol: str) -> dict[str, Any]:
    """The application's next deployment: its states, log sequences and progress."""
    transport = WebsocketsTransport(
        url=ws_url(server), subprotocols=[protocol], init_payload=WS_INIT_PAYLOAD
    )
    states: list[str] = []
    sequences: list[int] = []
    progress: list[dict[str, Any]] = []
    async with GqlClient(transport=transport) as session:

        async def collect(query: str, deployment_id: str, into: Any) -> None:
            request = GraphQLRequest(query, variable_values={"id": deployment_id})
            async for result in session.subscribe(request):
                into(result)

        followers: list[asyncio.Task[None]] = []
        events = GraphQLRequest(EVENTS, variable_values={"apps": [APP]})
        async for result in session.subscribe(events):
            event = result["deploymentEvents"]
            states.append(event["state"])
            if not followers:
                gid = event["deployment"]["id"]
                followers = [
                    asyncio.create_task(
                        collect(
                            LOGS,
                            gid,
                            lambda r: sequences.extend(
                                line["sequence"] for line in r["deploymentLogs"]["lines"]
                            ),
                        )
                    ),
                    asyncio.create_task(
                        collect(PROGRESS, gid, lambda r: progress.append(r["deploymentProgress"]))
                    ),
                ]
            if event["state"] not in ("QUEUED", "IN_PROGRESS"):
                break
        await asyncio.wait_for(asyncio.gather(*followers), 60)
    return {"states": states, "sequences": sequences, "progress": progress}


@pytest.fixture
async def node_follower(cluster: Cluster) -> AsyncIterator[asyncio.subprocess.Process]:
    if not (JS / "node_modules" / "graphql-ws").is_dir():
        pytest.fail("the npm clients are missing; run `bash scripts/prepare-machine.sh python`")
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(JS / "follow.mjs"),
        ws_url(cluster.apis[1]),
        APP,
        env={**os.environ, "DEPLOYBOT_TOKEN": ADMIN_TOKEN},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"ready", line
    yield proc
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def test_every_client_on_every_api_process_sees_the_whole_deployment(
    cluster: Cluster, repository: str, node_follower: asyncio.subprocess.Process
) -> None:
    api1, api2 = cluster.apis
    followers = [
        asyncio.create_task(follow(api1, WebsocketsTransport.APOLLO_SUBPROTOCOL)),
        asyncio.create_task(follow(api2, WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL)),
    ]
    await asyncio.sleep(1.0)  # every subscription in place before the deploy
    client = Client(api1.url)
    try:
        created = await asyncio.to_thread(deploy, client, repositoryUrl=repository, ref="main")
        final = await asyncio.to_thread(wait_final, client, created["id"])
        assert final["state"] == "SUCCESS", final
        total = (await asyncio.to_thread(client.query, TOTAL, {"id": created["id"]}))["deployment"][
            "logs"
        ]["totalCount"]
    finally:
        client.close()
    assert total > 300  # the system lines and the service's 300 lines

    results = await asyncio.wait_for(asyncio.gather(*followers), 120)
    node_out, node_err = await asyncio.wait_for(node_follower.communicate(), 120)
    assert node_follower.returncode == 0, node_err.decode()
    results.append(json.loads(node_out.decode().strip().splitlines()[-1]))

    for result in results:
        assert result["states"] == ["QUEUED", "IN_PROGRESS", "SUCCESS"], result["states"]
        assert result["sequences"] == list(range(1, total + 1))
        last = result["progress"][-1]
        assert (last["state"], last["status"], last["percentage"]) == ("SUCCESS", "SUCCESS", 100)
    assert sum("talk 299" in line for line in _raw_log(cluster, created["number"])) == 1


def _raw_log(cluster: Cluster, number: int) -> list[str]:
    import httpx

    text = httpx.get(
        f"{cluster.apis[1].url}/deployments/{number}/logs", headers=AUTH_HEADERS, timeout=30
    ).text
    return text.splitlines()
