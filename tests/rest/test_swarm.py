"""End to end on the real Swarm: a Deployment Manager client deploys a monorepo's project
(`working_directory`) through /api/v1/deployments and follows it over the progress
WebSocket; GraphQL deploys the next version with `workingDirectory`; the client rolls back
to the first; a failing build answers 500 in the seed's error format."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import remove_stack, service_inspect
from tests.gitserver import GitServer
from tests.servers import AUTH_HEADERS, Client, ServerProcess

APP = "rs-dm"
FAILING = "rs-dmfail"
PROJECT = "services/api"
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?\d+(\.\d+)?m?s$")

STACK = """version: "3.8"
services:
  web:
    build: .
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 2s
      retries: 3
    deploy:
      replicas: 1
      update_config:
        parallelism: 1
        delay: 0s
        order: stop-first
        monitor: 1s  # Swarm's 5 s default: 4 s more to every update
"""
DOCKERFILE = """FROM deploybot/busybox:latest
COPY www /www
CMD ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
"""
DEPLOYMENTS = """query($app: String!) {
  deployments(first: 1, filter: {applications: [$app]}) { nodes { number state } }
}"""
DEPLOY = """mutation($input: DeployInput!) {
  deploy(input: $input) {
    userErrors { field message code }
    deployment { id number state workingDirectory stackFile version }
  }
}"""
GET = "query($id: ID!) { deployment(id: $id) { state errorMessage workingDirectory } }"


@pytest.fixture(scope="module")
def monorepo(git_server: GitServer) -> Iterator[str]:
    """A repository whose deployable project lives in services/api (nothing at the root)."""
    remove_stack(APP)
    remove_stack(FAILING)
    git_server.create_repo("rs-mono")
    git_server.commit(
        "rs-mono",
        {
            "README.md": "a monorepo\n",
            f"{PROJECT}/docker-compose.stack.yml": STACK,
            f"{PROJECT}/Dockerfile": DOCKERFILE,
            f"{PROJECT}/www/index.html": "A\n",
            "services/other/README.md": "not deployed\n",
        },
        message="api A",
    )
    yield git_server.url("rs-mono")
    remove_stack(APP)
    remove_stack(FAILING)


@pytest.fixture(scope="module")
def dm(deploy_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=deploy_server.url, timeout=300, headers=AUTH_HEADERS) as http:
        yield http


def _follow(server: ServerProcess, client: Client, app: str) -> list[dict[str, Any]]:
    """Once the application has a deployment, its progress messages until the socket closes."""
    deadline = time.monotonic() + 60
    while not client.query(DEPLOYMENTS, {"app": app})["deployments"]["nodes"]:
        assert time.monotonic() < deadline, "the deploy was never admitted"
        time.sleep(0.1)
    url = server.url.replace("http://", "ws://") + f"/api/v1/deployments/{app}/progress"
    messages = []
    with connect(url, additional_headers=AUTH_HEADERS) as socket:
        for frame in socket:
            messages.append(json.loads(frame))
    return messages


def test_deploy_a_monorepo_project_followed_over_its_progress(
    deploy_server: ServerProcess, dm: httpx.Client, client: Client, monorepo: str, registry: str
) -> None:
    answers: list[httpx.Response] = []
    spec = {
        "name": APP,
        "version": "v1",
        "environment": "test",
        "strategy": "rolling",
        "artifact_path": f"{monorepo}#main",
        "working_directory": PROJECT,
        "rollback_on_failure": True,
    }
    post = threading.Thread(
        target=lambda: answers.append(dm.post("/api/v1/deployments", json=spec))
    )
    post.start()
    messages = _follow(deploy_server, client, APP)
    post.join(300)

    answer = answers[0]
    assert answer.status_code == 201, answer.text
    result = answer.json()
    assert result["success"] is True, result
    assert result["version"] == "v1"
    assert result["previous_version"] is None
    assert GO_DURATION.match(result["duration"]), result["duration"]
    assert [s["name"] for s in result["steps"]] == ["fetch", "build", "push", "rollout", "converge"]
    assert all(
        s["status"] == "completed" and s["start_time"] and s["end_time"] for s in result["steps"]
    )

    assert messages, "no progress message"
    assert all(
        set(m) == {"step", "status", "message", "progress_pct", "timestamp"} for m in messages
    )
    assert messages[-1]["status"] == "success"
    assert messages[-1]["progress_pct"] == 100
    assert [m["progress_pct"] for m in messages] == sorted(m["progress_pct"] for m in messages)

    # The image was built from services/api (the project's context), pushed and rolled out.
    web: Any = service_inspect(f"{APP}_web")["Spec"]
    assert web["TaskTemplate"]["ContainerSpec"]["Image"].startswith(f"{registry}/{APP}/web:v1@")

    status = dm.get(f"/api/v1/deployments/{APP}").json()
    assert status["version"] == "v1"
    assert status["replicas"]["desired"] == 1
    health = dm.get(f"/api/v1/deployments/{APP}/health").json()
    assert set(health["components"]) == {"web"}
    assert health["components"]["web"]["status"] in ("healthy", "unknown")


def test_graphql_deploys_with_working_directory_then_the_client_rolls_back(
    dm: httpx.Client, client: Client, monorepo: str, git_server: GitServer
) -> None:
    git_server.commit("rs-mono", {f"{PROJECT}/www/index.html": "B\n"}, message="api B")
    payload = client.query(
        DEPLOY,
        {
            "input": {
                "repositoryUrl": monorepo,
                "ref": "main",
                "application": APP,
                "workingDirectory": PROJECT,
                "version": "v2",
            }
        },
    )["deploy"]
    assert payload["userErrors"] == []
    deployment = payload["deployment"]
    assert deployment["workingDirectory"] == PROJECT
    assert deployment["stackFile"] == "docker-compose.stack.yml"
    deadline = time.monotonic() + 150
    while (found := client.query(GET, {"id": deployment["id"]})["deployment"])["state"] in (
        "QUEUED",
        "IN_PROGRESS",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert found["state"] == "SUCCESS", found

    back = dm.post(f"/api/v1/deployments/{APP}/rollback", json={"version": "v1"})
    assert back.status_code == 200, back.text
    assert back.json()["message"] == "Rollback completed successfully"
    assert back.json()["version"] == "v1"
    assert dm.get(f"/api/v1/deployments/{APP}").json()["version"] == "v1"
    missing = dm.post(f"/api/v1/deployments/{APP}/rollback", json={"version": "v9"})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "BACKUP_NOT_FOUND"


def test_validate_a_valid_spec(dm: httpx.Client, monorepo: str) -> None:
    answer = dm.post(
        "/api/v1/deployments/validate",
        json={
            "name": APP,
            "version": "v3",
            "artifact_path": f"{monorepo}#main",
            "working_directory": PROJECT,
            "strategy": "rolling",
            "dependencies": [],
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["valid"] is True
    assert answer.json()["issues"] == []
    wrong_dir = dm.post(
        "/api/v1/deployments/validate",
        json={"name": APP, "artifact_path": f"{monorepo}#main", "working_directory": "services"},
    )
    assert wrong_dir.status_code == 400
    assert "docker-compose.stack.yml" in json.dumps(wrong_dir.json()["issues"])


def test_a_failing_build_is_500_in_the_seed_format(dm: httpx.Client, git_server: GitServer) -> None:
    git_server.create_repo(FAILING)
    git_server.commit(
        FAILING,
        {
            "docker-compose.stack.yml": "services:\n  web:\n    build: .\n",
            "Dockerfile": "FROM deploybot/busybox:latest\nRUN exit 3\n",
        },
        message="broken",
    )
    answer = dm.post(
        "/api/v1/deployments",
        json={"name": FAILING, "version": "main", "artifact_path": git_server.url(FAILING)},
    )
    assert answer.status_code == 500, answer.text
    error = answer.json()["error"]
    assert error["code"] == "BUILD_FAILED"
    assert error["details"]["deployment"] == FAILING
    assert error["details"]["operation"] == "deploy"


def test_speed_start_runs_on_deploybots_runner(dm: httpx.Client, git_server: GitServer) -> None:
    """This server runs what /start starts (DEPLOYBOT_SPEED_RUNNER's default): SPEED's
    status follows deploybot's runner, and /update is refused for it."""
    started = dm.post("/start", json={"url": git_server.url(FAILING), "branch": "main"})
    assert started.status_code == 201, started.text
    deployment_id = started.json()["id"]
    deadline = time.monotonic() + 120
    statuses = []
    while (status := dm.get(f"/info/{deployment_id}").json()["status"]) in ("Pending", "Running"):
        statuses.append(status)
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status == "Failed"  # its build fails (RUN exit 3)
    refused = dm.post("/update", json={"id": deployment_id, "new_results": "Succeeded"})
    assert refused.status_code == 409
    assert "run by deploybot" in refused.json()["error"]
    assert dm.post(f"/add_results/{deployment_id}", json={"results": "seen"}).status_code == 200

    no_stack = dm.post("/start", json={"url": git_server.url("rs-mono"), "branch": "main"})
    assert no_stack.status_code == 400  # nothing to deploy at the monorepo's root
    assert "docker-compose.stack.yml" in no_stack.json()["error"]
