"""The runner holds deployments to the deploy policy in force when they run, not only the one
they were admitted under: an admin tightens the policy (through GraphQL, stored in the
database) after two deployments were queued, and a runner in another process fails both
before it builds or changes anything on the real Swarm."""

from __future__ import annotations

from pathlib import Path

from deploybot.config import Settings
from deploybot.core import history, logs, queue
from deploybot.db.engine import Database
from deploybot.domain import DeploymentState, StepStatus
from deploybot.events.bus import EventBus
from deploybot.runner.pipeline import execute
from deploybot.runner.preflight import mirror_cache
from deploybot.runner.run import RunnerContext
from deploybot.runner.swarm import Swarm
from tests.conftest import BASE_IMAGE, docker, remove_stack, server_env
from tests.gitserver import GitServer
from tests.resolvers.test_policy import DEPLOY, UPDATE
from tests.servers import Client, ServerProcess

STACK = f"""
services:
  web:
    image: {BASE_IMAGE}
    command: ["sleep", "3600"]
    deploy: {{endpoint_mode: dnsrr}}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
"""
APPS = ("po-runner-git", "po-runner-image")


async def test_a_policy_tightened_after_admission_stops_the_runner(
    database: Database,
    empty_database_url: str,
    swarm: str,
    registry: str,
    swarm_client: Swarm,
    git_server: GitServer,
    tmp_path: Path,
) -> None:
    # Admitted under the settings' policy, which allows bind mounts from /var/run.
    permissive = {
        "DEPLOYBOT_DATABASE_URL": empty_database_url,
        "DEPLOYBOT_DOCKER_HOST": swarm,
        "DEPLOYBOT_REGISTRY": registry,
        "DEPLOYBOT_POLICY_BIND_MOUNT_PREFIXES": "/var/run",
    }
    server = ServerProcess(server_env(tmp_path, **permissive), tmp_path, "--no-runner")
    api = Client(server.url)
    try:
        sha = git_server.commit("po-runner", {"docker-compose.stack.yml": STACK})
        numbers = []
        for input in (
            {
                "repositoryUrl": git_server.url("po-runner"),
                "commitSha": sha,
                "application": APPS[0],
            },
            {"image": BASE_IMAGE, "application": APPS[1], "service": "web"},
        ):
            payload = api.query(DEPLOY, {"input": input})["deploy"]
            assert payload["userErrors"] == [], payload
            numbers.append(payload["deployment"]["number"])
        tightened = api.query(
            UPDATE, {"input": {"bindMountPrefixes": [], "registries": [registry]}}
        )["updateDeployPolicy"]
        assert tightened["userErrors"] == []
    finally:
        api.close()
        server.stop()

    # A runner whose own settings still allow it: the stored edit holds.
    settings = Settings(
        environment="test",
        docker_host=swarm,
        registry=registry,
        work_dir=tmp_path / "runner",
        policy_bind_mount_prefixes="/var/run",
    )
    ctx = RunnerContext(
        database, EventBus(), settings, mirror_cache(settings), swarm_client, runner_id="runner-po"
    )
    try:
        for number in numbers:
            assert await queue.claim_next(database, "test", "runner-po") == number
            assert await execute(ctx, number) is DeploymentState.FAILURE
    finally:
        for app in APPS:
            remove_stack(app)

    git_run = await history.get_deployment(database, numbers[0])
    assert git_run is not None and git_run.error_code == "POLICY_VIOLATION"
    refused_image = (
        f"image {BASE_IMAGE} comes from registry docker.io, which is not among the allowed"
        f" registries ({registry})"
    )
    assert git_run.error_message == (
        f"docker-compose.stack.yml: services.web.image: {refused_image};"
        " docker-compose.stack.yml: services.web.volumes[0]: bind mount of host path"
        " /var/run/docker.sock is not allowed (allowed prefixes: none)"
    )
    image_run = await history.get_deployment(database, numbers[1])
    assert image_run is not None and image_run.error_code == "POLICY_VIOLATION"
    assert image_run.error_message == refused_image
    for number in numbers:
        steps = (await history.steps_for(database, [number]))[number]
        assert steps[0].name == "fetch" and steps[0].status is StepStatus.FAILED
        assert {s.status for s in steps[1:]} == {StepStatus.SKIPPED}, steps
        lines = await logs.list_lines(database, number, after_seq=0, limit=100)
        assert any("refused by the deploy policy" in line.text for line in lines)
    for app in APPS:
        assert docker("service", "ls", "-q", "--filter", f"name={app}_").strip() == ""
