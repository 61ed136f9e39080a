"""The environment relay over three real instances (dev, staging, production; own SQLite
databases, `--no-runner`) and one real `deploybot relay`."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import server_env
from tests.servers import Client, ServerProcess, free_port

ENVIRONMENTS = ("dev", "staging", "production")
COUNTS = {"dev": 25, "staging": 20, "production": 45}

RECORD = """mutation($input: RecordDeploymentInput!) {
  recordDeployment(input: $input) { deployment { id } userErrors { code message } } }"""
PAGE = """query($first: Int, $after: String, $last: Int, $before: String) {
  deployments(first: $first, after: $after, last: $last, before: $before) {
    totalCount edges { cursor node { id environment application createdAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""


class RelayProcess:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "relay.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploybot", "relay", "--port", str(self.port)],
            env={**os.environ, **env},
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(self.log_path.read_text())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def _instance(tmp: Path, environment: str) -> ServerProcess:
    home = tmp / environment
    home.mkdir(exist_ok=True)
    env = server_env(home, DEPLOYBOT_ENVIRONMENT=environment)
    return ServerProcess(env, home, "--no-runner")


TOKEN = """mutation($i: CreateApiTokenInput!) { createApiToken(input: $i) { token } }"""


def _service_token(server: ServerProcess) -> str:
    admin = Client(server.url)
    data = admin.query(TOKEN, {"i": {"name": "relay", "scopes": ["read,deploy,record,relay"]}})
    admin.close()
    token: str = data["createApiToken"]["token"]
    return token


@pytest.fixture(scope="module")
def relay_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("relay")
    instances = {env: _instance(tmp, env) for env in ENVIRONMENTS}
    upstreams = {
        env: {"url": server.url, "token": _service_token(server), "timeout": 3}
        for env, server in instances.items()
    }
    home = tmp / "relay"
    home.mkdir()
    env = server_env(home, DEPLOYBOT_RELAY_ENVIRONMENTS=json.dumps(upstreams))
    relay = RelayProcess(env, home)
    yield {"relay": relay, "instances": instances}
    relay.stop()
    for server in instances.values():
        server.stop()


def _walk(client: Client, forwards: bool, rng: random.Random) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        size = rng.randint(1, 23)
        args = {"first": size, "after": cursor} if forwards else {"last": size, "before": cursor}
        page = client.query(PAGE, args)["deployments"]
        ids = [e["node"]["id"] for e in page["edges"]]
        seen.extend(ids if forwards else reversed(ids))
        info = page["pageInfo"]
        if not (info["hasNextPage"] if forwards else info["hasPreviousPage"]):
            return seen
        cursor = info["endCursor"] if forwards else info["startCursor"]


def test_merged_paging_and_partial_failure(relay_setup: dict[str, Any]) -> None:
    relay: RelayProcess = relay_setup["relay"]
    client = Client(relay.url)
    plan = [env for env, n in COUNTS.items() for _ in range(n)]
    random.Random(7).shuffle(plan)
    for index, env in enumerate(plan):
        variables = {"application": f"rl-app{index % 3}", "version": f"1.{index}"}
        data = client.query(RECORD, {"input": {**variables, "environment": env}})
        assert data["recordDeployment"]["userErrors"] == []
    missing = client.query(RECORD, {"input": {"application": "rl-x", "version": "1"}})
    assert missing["recordDeployment"]["userErrors"][0]["code"] == "INVALID_INPUT"

    everything = client.query(PAGE, {"first": 100})["deployments"]
    assert everything["totalCount"] == sum(COUNTS.values())
    keys = [
        (e["node"]["createdAt"], e["node"]["environment"], e["node"]["id"])
        for e in everything["edges"]
    ]
    ids = [k[2] for k in keys]
    assert len(set(ids)) == len(ids) == sum(COUNTS.values())
    assert [k[:2] for k in keys] == sorted((k[:2] for k in keys), reverse=True)

    rng = random.Random(13)
    for _ in range(3):
        assert _walk(client, True, rng) == ids
        assert _walk(client, False, rng) == list(reversed(ids))

    # one instance down: the others answer, an error names it; routed calls fail typed
    relay_setup["instances"]["staging"].stop()
    answer = client.execute(PAGE, {"first": 100})
    assert len(answer["data"]["deployments"]["edges"]) == COUNTS["dev"] + COUNTS["production"]
    codes = {
        (e["extensions"]["code"], e["extensions"].get("environment")) for e in answer["errors"]
    }
    assert codes == {("ENVIRONMENT_UNAVAILABLE", "staging")}
    routed = client.query(
        RECORD, {"input": {"application": "rl-y", "version": "1", "environment": "staging"}}
    )["recordDeployment"]
    assert routed["userErrors"][0]["code"] == "ENVIRONMENT_UNAVAILABLE"
