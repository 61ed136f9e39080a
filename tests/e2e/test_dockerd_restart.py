"""End to end: the machine's dockerd really restarted in the middle of a rollout.

test_takeover's proxy takes Docker away from one deploybot only; here the daemon itself
stops (SIGTERM: it stops every container of the node) and starts again, as an upgrade of
Docker or a reboot of its unit does. The restart is scripts/prepare-machine.sh's
`restart-docker`, the one place that knows how this machine runs dockerd, and it returns
only once the Swarm is active, the node Ready and the registry reachable again, so the
tests after this one find the machine as before.

What deploybot concludes: its patience (`DEPLOYBOT_DOCKER_PATIENCE`) covers the restart,
Swarm takes the update up again when its manager is back, and the deployment ends SUCCESS
with its log saying Docker was unreachable and is back; tasks that the restart cost are
reported as such, not counted against the deployment. (Past the patience the outcome is
ERROR DOCKER_UNAVAILABLE: test_takeover's proxy test shows that without a second restart.)
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import DOCKER, remove_stack, server_env
from tests.e2e.test_takeover import (
    GET,
    current_image,
    local_images,
    log_texts,
    start_deploy,
    wait_final,
    wait_step,
)
from tests.servers import Client, ServerProcess

PREPARE = Path(__file__).resolve().parents[2] / "scripts" / "prepare-machine.sh"
PREFIX = "rn-dr"


@pytest.fixture(scope="module")
def images(swarm: str) -> Iterator[dict[str, str]]:
    """Two local images that run."""
    commands = {"v1": '["sleep", "3600"]', "v2": '["sh", "-c", "sleep 3600"]'}
    yield from local_images(PREFIX, commands)


def make_slow_service(namespace: str, image: str) -> None:
    """Two replicas updated one at a time with a pause between them, so that an update is
    certainly still going when the daemon stops."""
    remove_stack(namespace)
    subprocess.run(
        [
            DOCKER, "service", "create", "--detach", "--quiet",
            "--name", f"{namespace}_app",
            "--label", f"com.docker.stack.namespace={namespace}",
            "--replicas", "2",
            "--update-parallelism", "1", "--update-delay", "4s", "--update-monitor", "1s",
            "--update-failure-action", "pause",
            "--stop-grace-period", "1s", "--restart-delay", "1s",
            "--endpoint-mode", "dnsrr",
            image,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip


def restart_dockerd() -> subprocess.CompletedProcess[str]:
    """The machine's dockerd stopped gracefully and started again, Swarm ready."""
    return subprocess.run(
        ["bash", str(PREPARE), "restart-docker"], capture_output=True, text=True, timeout=300
    )


class ApiProbe(threading.Thread):
    """Asks the server for /healthz and the deployment (GraphQL) all along the restart;
    every answer is kept, so the test can say the API never stopped answering."""

    def __init__(self, url: str, deployment_id: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.deployment_id = deployment_id
        self.stop = threading.Event()
        self.answers: list[tuple[int, str]] = []

    def run(self) -> None:
        client = Client(self.url)
        try:
            while not self.stop.is_set():
                try:
                    health = httpx.get(f"{self.url}/healthz", timeout=10).status_code
                    found = client.query(GET, {"id": self.deployment_id})["deployment"]
                    self.answers.append((health, str(found["state"])))
                except Exception as exc:  # kept: the test fails on it, naming it
                    self.answers.append((0, repr(exc)))
                self.stop.wait(0.2)
        finally:
            client.close()


def test_dockerd_restarted_mid_rollout(images: dict[str, str], tmp_path: Path) -> None:
    """dockerd restarted while an image deploy converges: the API answers throughout, the
    deployment ends with its true outcome (SUCCESS: Swarm finished the update once back,
    within the patience) and says what happened, and the next deploy works."""
    namespace = f"{PREFIX}1"
    make_slow_service(namespace, images["v1"])
    server = ServerProcess(
        server_env(
            tmp_path,
            DEPLOYBOT_RUNNER_POLL_INTERVAL="0.2",
            DEPLOYBOT_CONVERGE_TIMEOUT="240",
            DEPLOYBOT_DOCKER_PATIENCE="180",
        ),
        tmp_path,
    )
    client = Client(server.url)
    struck = False
    restarted: subprocess.CompletedProcess[str] | None = None
    try:
        brief = start_deploy(
            client, image=images["v2"], application=namespace, service="app", version="2"
        )
        wait_step(client, brief, "converge")
        probe = ApiProbe(server.url, brief)
        probe.start()
        struck = True
        restarted = restart_dockerd()
        probe.stop.set()
        probe.join(timeout=30)
        assert restarted.returncode == 0, restarted.stderr
        # The API answered all along, and the deployment waited for Docker.
        assert len(probe.answers) > 5, probe.answers
        assert all(health == 200 for health, _ in probe.answers), probe.answers
        # (Swarm may finish the update just before the script sees the node Ready.)
        assert probe.answers[0][1] == "IN_PROGRESS", probe.answers
        assert all(s in ("IN_PROGRESS", "SUCCESS") for _, s in probe.answers), probe.answers

        done = wait_final(client, brief, timeout=240)
        assert done["state"] == "SUCCESS", done
        assert done["errorCode"] is None, done
        assert {s["name"]: s["status"] for s in done["steps"]}["converge"] == "COMPLETED"
        assert current_image(namespace) == images["v2"]
        texts = log_texts(client, brief)
        assert any("Docker is unreachable" in t for t in texts), texts
        assert any("Docker is back" in t for t in texts), texts

        after = wait_final(
            client,
            start_deploy(
                client, image=images["v1"], application=namespace, service="app", version="3"
            ),
        )
        assert after["state"] == "SUCCESS", after
        assert current_image(namespace) == images["v1"]
    finally:
        client.close()
        server.stop()
        if struck and (restarted is None or restarted.returncode != 0):
            # Never leave the machine without its daemon and Swarm.
            subprocess.run(["bash", str(PREPARE), "services"], capture_output=True, timeout=600)
        remove_stack(namespace)
