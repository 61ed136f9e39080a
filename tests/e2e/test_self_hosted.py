"""deploybot on Swarm, as `deploy/` ships it: the image built from the Debian base, the
stack (API, runner, PostgreSQL, secrets) deployed with `docker stack deploy`, and a
deployment run through it onto the same Swarm.

Everything here is named `dbself…`; the stack, its secrets and volume are removed after."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import DOCKER, docker, remove_stack
from tests.e2e.test_deploy_swarm import DEPLOY, GET, outcome
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "dbself"
APP = "dbself-app"
SECRETS = ("postgres_password", "database_url", "admin_token")


def _cleanup() -> None:
    subprocess.run([DOCKER, "stack", "rm", NAMESPACE], capture_output=True, timeout=60)
    remove_stack(APP)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not docker("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={NAMESPACE}"):
            break
        time.sleep(0.25)
    for name in SECRETS:
        subprocess.run([DOCKER, "secret", "rm", f"{NAMESPACE}_{name}"], capture_output=True)
    subprocess.run([DOCKER, "volume", "rm", f"{NAMESPACE}_pgdata"], capture_output=True)


def _secret(name: str, value: str) -> None:
    subprocess.run(
        [DOCKER, "secret", "create", f"{NAMESPACE}_{name}", "-"],
        input=value.encode(),
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def self_hosted(swarm: str, registry: str) -> Iterator[dict[str, str]]:
    _cleanup()
    built = subprocess.run(
        ["bash", str(ROOT / "deploy/build-image.sh"), "selftest"],
        env={
            **os.environ,
            "DEPLOYBOT_REGISTRY": registry,
            "DEPLOYBOT_PYTHON": sys.executable,
            "DEPLOYBOT_PUSH": "0",
        },
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr
    image = built.stdout.strip().splitlines()[-1]
    password = secrets.token_urlsafe(24)
    token = "dbt_" + secrets.token_urlsafe(32)
    _secret("postgres_password", password)
    _secret("database_url", f"postgresql+asyncpg://deploybot:{password}@postgres:5432/deploybot")
    _secret("admin_token", token)
    port = free_port()
    env = {
        **os.environ,
        "DEPLOYBOT_IMAGE": image,
        "DEPLOYBOT_POSTGRES_IMAGE": f"{registry}/deploybot/postgres:15",
        "DEPLOYBOT_PORT": str(port),
        "DEPLOYBOT_ENVIRONMENT": "selfhost",
        "DEPLOYBOT_REGISTRY": registry,
        "DEPLOYBOT_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DEPLOYBOT_SECRETS_PREFIX": NAMESPACE,
    }
    subprocess.run(
        [
            DOCKER,
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "-c",
            str(ROOT / "deploy/deploybot.stack.yml"),
            NAMESPACE,
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        yield {"url": url, "token": token, "registry": registry}
    finally:
        _cleanup()


def _wait_ready(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    logs = docker("service", "logs", "--tail", "50", f"{NAMESPACE}_api")
    raise AssertionError(f"deploybot on Swarm did not answer:\n{logs}")


def _app_image(registry: str) -> str:
    image = f"{registry}/{APP}/web:1"
    context = 'FROM deploybot/busybox:latest\nCMD ["sh", "-c", "echo up; exec sleep 3600"]\n'
    subprocess.run(
        [DOCKER, "build", "-q", "-t", image, "-"], input=context.encode(), check=True,
        capture_output=True,
    )  # fmt: skip
    docker("push", image)
    return image


def test_deploybot_on_swarm_runs_a_deployment(self_hosted: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {self_hosted['token']}"}
    with httpx.Client(base_url=self_hosted["url"], headers=headers, timeout=30) as http:

        def query(document: str, variables: dict[str, object]) -> dict[str, object]:
            body = http.post("/graphql", json={"query": document, "variables": variables}).json()
            assert not body.get("errors"), body
            return dict(body["data"])

        image = _app_image(self_hosted["registry"])
        payload = query(DEPLOY, {"input": {"image": image, "application": APP, "service": "web"}})
        deploy = payload["deploy"]
        assert isinstance(deploy, dict) and deploy["userErrors"] == [], deploy
        deployment_id = deploy["deployment"]["id"]
        assert deploy["deployment"]["environment"] == "selfhost"
        deadline = time.monotonic() + 120
        while True:
            found = query(GET, {"id": deployment_id})["deployment"]
            assert isinstance(found, dict)
            if found["state"] not in ("QUEUED", "IN_PROGRESS") or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert found["state"] == "SUCCESS", outcome(found)
    # The API replicas run with --no-runner: the stack's runner service ran it.
    service = docker("service", "inspect", f"{APP}_web", "--format", "{{json .Spec}}")
    assert image in service and f'"com.docker.stack.namespace":"{APP}"' in service
    replicas = docker(
        "service", "ls", "--filter", f"name={NAMESPACE}_", "--format", "{{.Name}} {{.Replicas}}"
    )
    assert f"{NAMESPACE}_runner 1/1" in replicas, replicas
