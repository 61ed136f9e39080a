"""End to end on the real Swarm: a deployment outlives its runner.

`kill -9` of `deploybot serve` during converge, SIGTERM with a grace period, `kill -9`
during a build, and the Docker endpoint going away mid-rollout: each time the deployment
ends with what really happened on the Swarm (or a clear ERROR), its log goes on where it
stopped, and the next deploy works. The Docker fault is a proxy to the Docker socket that
the test stops, so the shared daemon is not restarted here (test_dockerd_restart.py
restarts the real dockerd once).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DOCKER, docker, remove_stack, server_env
from tests.dockerproxy import DockerProxy
from tests.gitserver import GitServer
from tests.servers import Client, ServerProcess

FIELDS = """
  id state errorCode errorMessage
  steps { name status message error }
  services { service image state }
"""
DEPLOY = (
    "mutation($input: DeployInput!) { deploy(input: $input) {"
    " userErrors { field message code } deployment { id } } }"
)
GET = "query($id: ID!) { deployment(id: $id) { %s } }" % FIELDS
LOGS = "query($id: ID!) { deployment(id: $id) { logs(first: 100) { nodes { sequence text } } } }"
PREFIX = "rn-tk"


@pytest.fixture(scope="module")
def images(swarm: str) -> Iterator[dict[str, str]]:
    """Local images: two that run, one whose tasks fail at once."""
    commands = {
        "v1": '["sleep", "3600"]',
        "v2": '["sh", "-c", "sleep 3600"]',
        "bad": '["sh", "-c", "sleep 0.3; exit 3"]',
    }
    yield from local_images(PREFIX, commands)


def local_images(prefix: str, commands: dict[str, str]) -> Iterator[dict[str, str]]:
    """Builds `<prefix>/app:<name>` from the base image for each command; removes them after."""
    tags = {}
    for name, command in commands.items():
        tag = f"{prefix}/app:{name}"
        subprocess.run(
            [DOCKER, "build", "-q", "-t", tag, "-"],
            input=f"FROM deploybot/busybox:latest\nCMD {command}\n",
            text=True,
            check=True,
            capture_output=True,
            timeout=120,
        )
        tags[name] = tag
    yield tags
    subprocess.run([DOCKER, "rmi", "-f", *tags.values()], capture_output=True, timeout=60)


def make_service(namespace: str, image: str) -> None:
    """A 2-replica service whose update takes a few seconds (one task at a time)."""
    remove_stack(namespace)
    docker(
        "service", "create", "--detach", "--quiet",
        "--name", f"{namespace}_app",
        "--label", f"com.docker.stack.namespace={namespace}",
        "--replicas", "2",
        "--update-parallelism", "1", "--update-delay", "0s", "--update-monitor", "1s",
        "--update-failure-action", "pause",
        "--stop-grace-period", "1s", "--restart-delay", "1s",
        "--endpoint-mode", "dnsrr",
        image,
    )  # fmt: skip


def current_image(namespace: str) -> str:
    return docker(
        "service", "inspect", f"{namespace}_app",
        "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
    ).strip()  # fmt: skip


def env(tmp: Path, **extra: str) -> dict[str, str]:
    return server_env(
        tmp,
        DEPLOYBOT_RUNNER_POLL_INTERVAL="0.2",
        DEPLOYBOT_CONVERGE_TIMEOUT="60",
        **extra,
    )


def start_deploy(client: Client, **input: Any) -> str:
    payload = client.query(DEPLOY, {"input": input})["deploy"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return str(payload["deployment"]["id"])


def wait_step(client: Client, deployment_id: str, step: str, timeout: float = 60) -> None:
    """Until the step runs (the moment to strike)."""
    deadline = time.monotonic() + timeout
    while True:
        found = client.query(GET, {"id": deployment_id})["deployment"]
        statuses = {s["name"]: s["status"] for s in found["steps"]}
        if statuses.get(step) == "RUNNING":
            return
        assert found["state"] in ("QUEUED", "IN_PROGRESS"), f"ended before {step}: {found}"
        assert time.monotonic() < deadline, f"{step} never ran: {found}"
        time.sleep(0.05)


def wait_final(client: Client, deployment_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = client.query(GET, {"id": deployment_id})["deployment"]
        if found["state"] not in ("QUEUED", "IN_PROGRESS"):
            return dict(found)
        assert time.monotonic() < deadline, f"still {found['state']}: {found}"
        time.sleep(0.2)


def log_texts(client: Client, deployment_id: str) -> list[str]:
    lines = client.query(LOGS, {"id": deployment_id})["deployment"]["logs"]["nodes"]
    # The log goes on where it stopped: one sequence, no gap, no repeat.
    assert [line["sequence"] for line in lines] == list(range(1, len(lines) + 1))
    return [str(line["text"]) for line in lines]


def kill9(server: ServerProcess) -> None:
    server.proc.kill()
    server.proc.wait()


def test_kill_during_converge_then_the_next_runner_ends_it_truthfully(
    images: dict[str, str], tmp_path: Path
) -> None:
    namespace = f"{PREFIX}1"
    make_service(namespace, images["v1"])
    first = ServerProcess(env(tmp_path), tmp_path)
    client = Client(first.url)
    second: ServerProcess | None = None
    try:
        deployment_id = start_deploy(
            client, image=images["v2"], application=namespace, service="app", version="2"
        )
        wait_step(client, deployment_id, "converge")
        kill9(first)
        second = ServerProcess(env(tmp_path), tmp_path)
        client = Client(second.url)
        done = wait_final(client, deployment_id)
        assert done["state"] == "SUCCESS", done
        converge = next(s for s in done["steps"] if s["name"] == "converge")
        assert "watched by a new runner" in converge["message"]
        assert "died" in converge["message"]
        texts = log_texts(client, deployment_id)
        assert any("takes this deployment over" in t for t in texts)
        assert current_image(namespace) == images["v2"]

        # A version whose tasks fail: the new runner sees the failure and rolls back.
        bad_id = start_deploy(
            client, image=images["bad"], application=namespace, service="app", version="3"
        )
        wait_step(client, bad_id, "converge")
        kill9(second)
        second = ServerProcess(env(tmp_path), tmp_path)
        client = Client(second.url)
        bad = wait_final(client, bad_id)
        assert bad["state"] == "ROLLED_BACK", bad
        assert bad["errorCode"] == "ROLLOUT_FAILED"
        assert "the runner was replaced" in bad["errorMessage"]
        assert current_image(namespace) == images["v2"]
    finally:
        client.close()
        for server in (first, second):
            if server is not None:
                server.stop()
        remove_stack(namespace)


def test_sigterm_hands_the_deployment_over_to_another_runner(
    images: dict[str, str], tmp_path: Path
) -> None:
    namespace = f"{PREFIX}2"
    make_service(namespace, images["v1"])
    first = ServerProcess(env(tmp_path, DEPLOYBOT_RUNNER_STOP_GRACE="1.5"), tmp_path)
    client = Client(first.url)
    second: ServerProcess | None = None
    try:
        deployment_id = start_deploy(
            client, image=images["v2"], application=namespace, service="app", version="2"
        )
        wait_step(client, deployment_id, "converge")
        first.proc.send_signal(signal.SIGTERM)
        # The API answers during the grace period.
        assert httpx.get(f"{first.url}/healthz", timeout=2).status_code == 200
        found = client.query(GET, {"id": deployment_id})["deployment"]
        assert found["state"] == "IN_PROGRESS"
        first.proc.wait(20)
        second = ServerProcess(env(tmp_path), tmp_path, "--log-level", "info")
        client.close()
        client = Client(second.url)
        done = wait_final(client, deployment_id)
        assert done["state"] == "SUCCESS", done
        texts = log_texts(client, deployment_id)
        assert any("left to the next runner" in t for t in texts), texts
        assert any("the previous runner stopped and handed it over" in t for t in texts), texts
        assert current_image(namespace) == images["v2"]
    finally:
        client.close()
        for server in (first, second):
            if server is not None:
                server.stop()
        remove_stack(namespace)


def test_a_silent_runner_is_replaced_and_lets_go_when_it_wakes(
    images: dict[str, str], tmp_path: Path
) -> None:
    """SIGSTOP: the runner is alive but silent past its heartbeat. Another takes the
    deployment over and ends it; the first, woken up, finds the claim gone and lets go."""
    namespace = f"{PREFIX}5"
    make_service(namespace, images["v1"])
    settings = env(tmp_path, DEPLOYBOT_RUNNER_STALE_AFTER="3")
    first = ServerProcess(settings, tmp_path)
    client = Client(first.url)
    second: ServerProcess | None = None
    try:
        deployment_id = start_deploy(
            client, image=images["v2"], application=namespace, service="app", version="2"
        )
        wait_step(client, deployment_id, "converge")
        first.proc.send_signal(signal.SIGSTOP)
        client.close()
        second = ServerProcess(settings, tmp_path)
        client = Client(second.url)
        done = wait_final(client, deployment_id)
        first.proc.send_signal(signal.SIGCONT)
        assert done["state"] == "SUCCESS", done
        converge = next(s for s in done["steps"] if s["name"] == "converge")
        assert "was silent for more than 3s" in converge["message"]
        time.sleep(2)  # the first runner wakes up, beats, and finds the claim gone
        assert first.proc.poll() is None
        assert wait_final(client, deployment_id) == done
        log_texts(client, deployment_id)  # one sequence, no gap, no repeat
        assert "was taken over by another runner" in first.log()
    finally:
        client.close()
        for server in (first, second):
            if server is not None:
                server.proc.send_signal(signal.SIGCONT)
                server.stop()
        remove_stack(namespace)


SLOW_BUILD = """FROM deploybot/busybox:latest
RUN sleep 3
CMD ["sleep", "3600"]
"""
STACK = """version: "3.8"
services:
  app:
    build: .
    stop_grace_period: 1s
    deploy:
      replicas: 1
"""


def test_kill_during_build_starts_again_from_the_build(
    registry: str, git_server: GitServer, tmp_path: Path
) -> None:
    namespace = f"{PREFIX}3"
    remove_stack(namespace)
    git_server.create_repo(namespace)
    marker = str(time.time_ns())  # a layer no cache has: the build takes its 3 s
    sha = git_server.commit(
        namespace,
        {"Dockerfile": SLOW_BUILD.replace("sleep 3", f"sleep 3 # {marker}"),
         "docker-compose.stack.yml": STACK},
        message="slow build",
    )  # fmt: skip
    settings = env(tmp_path, DEPLOYBOT_REGISTRY=registry)
    first = ServerProcess(settings, tmp_path)
    client = Client(first.url)
    second: ServerProcess | None = None
    try:
        deployment_id = start_deploy(
            client,
            repositoryUrl=git_server.url(namespace),
            commitSha=sha,
            application=namespace,
            version="1.0.0",
        )
        wait_step(client, deployment_id, "build")
        kill9(first)
        second = ServerProcess(settings, tmp_path)
        client = Client(second.url)
        done = wait_final(client, deployment_id)
        assert done["state"] == "SUCCESS", done
        assert [s["status"] for s in done["steps"]] == ["COMPLETED"] * len(done["steps"])
        texts = log_texts(client, deployment_id)
        assert any("starting again from the build step" in t for t in texts), texts
        assert any("fetch (completed by the replaced runner" in t for t in texts), texts
    finally:
        client.close()
        for server in (first, second):
            if server is not None:
                server.stop()
        remove_stack(namespace)


def test_docker_endpoint_away_mid_rollout(images: dict[str, str], tmp_path: Path) -> None:
    """Docker vanishes for this deploybot only (its endpoint, a proxy, is killed): back
    within the patience, the rollout ends with its true outcome; gone for longer, ERROR
    DOCKER_UNAVAILABLE. The API answers throughout and the next deploy works."""
    namespace = f"{PREFIX}4"
    make_service(namespace, images["v1"])
    proxy = DockerProxy(tmp_path / "docker.sock")
    proxy.start()
    server = ServerProcess(
        env(tmp_path, DEPLOYBOT_DOCKER_HOST=proxy.url, DEPLOYBOT_DOCKER_PATIENCE="4"), tmp_path
    )
    client = Client(server.url)
    try:
        brief = start_deploy(
            client, image=images["v2"], application=namespace, service="app", version="2"
        )
        wait_step(client, brief, "converge")
        proxy.stop()
        time.sleep(1.5)
        assert client.query(GET, {"id": brief})["deployment"]["state"] == "IN_PROGRESS"
        proxy.start()
        done = wait_final(client, brief)
        assert done["state"] == "SUCCESS", done
        texts = log_texts(client, brief)
        assert any("Docker is unreachable" in t for t in texts), texts
        assert any("Docker is back" in t for t in texts), texts

        long = start_deploy(
            client, image=images["v1"], application=namespace, service="app", version="3"
        )
        wait_step(client, long, "converge")
        proxy.stop()
        done = wait_final(client, long)
        assert done["state"] == "ERROR", done
        assert done["errorCode"] == "DOCKER_UNAVAILABLE"
        assert "unreachable for" in done["errorMessage"]
        assert httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200

        proxy.start()
        after = wait_final(
            client,
            start_deploy(
                client, image=images["v2"], application=namespace, service="app", version="4"
            ),
        )
        assert after["state"] == "SUCCESS", after
    finally:
        client.close()
        server.stop()
        proxy.stop()
        remove_stack(namespace)
