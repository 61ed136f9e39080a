"""End to end on the real Swarm: hooks, the health URL, automatic rollback of a failed
rollout, and the `rollback` mutation to a chosen earlier version."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import DOCKER, docker, remove_stack, service_inspect
from tests.e2e.test_deploy_swarm import DOCKERFILE, http_text, outcome
from tests.gitserver import GitServer
from tests.servers import AUTH_HEADERS, Client, ServerProcess, free_port

FIELDS = """
  id number state version trigger errorCode errorMessage logsUrl rollbackOnFailure
  rolloutOptions
  rollbackOf { number version } rollbackTo { number version }
  steps { name status message error }
  services { service image digest state }
"""
DEPLOY = (
    "mutation($input: DeployInput!) { deploy(input: $input) {"
    " userErrors { field message code } deployment { %s } } }" % FIELDS
)
ROLLBACK = (
    "mutation($input: RollbackInput!) { rollback(input: $input) {"
    " userErrors { field message code } deployment { %s } } }" % FIELDS
)
GET = "query($id: ID!) { deployment(id: $id) { %s } }" % FIELDS
COUNT = "{ deployments { totalCount } }"
HOOK_LOGS = (
    "query($id: ID!) { deployment(id: $id) { logs(first: 1000) {"
    " nodes { source sourceName text } } } }"
)


def stack(port: int, health_port: int = 8080, retries: int = 3) -> str:
    # Swarm's update monitor (5 s by default) shortened for the versions that turn healthy:
    # a rollout then converges a second after its task runs, not five (the runner's own
    # stability window still applies). The unhealthy version keeps Swarm's default.
    update = "\n      update_config:\n        monitor: 1s" if retries == 3 else ""
    return f"""version: "3.8"
services:
  web:
    build: .
    stop_grace_period: 1s
    ports:
      - target: 8080
        published: {port}
        mode: host
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:{health_port}/"]
      interval: 1s
      timeout: 1s
      retries: {retries}
    deploy:
      replicas: 1{update}
      restart_policy:
        delay: 1s
"""


def wait_final(client: Client, deployment_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = client.query(GET, {"id": deployment_id})["deployment"]
        if found["state"] not in ("QUEUED", "IN_PROGRESS"):
            return dict(found)
        assert time.monotonic() < deadline, f"deployment still {found['state']}: {found}"
        time.sleep(0.2)


def deployed(client: Client, mutation: str, **input: Any) -> dict[str, Any]:
    name = "deploy" if mutation is DEPLOY else "rollback"
    payload = client.query(mutation, {"input": input})[name]
    assert payload["userErrors"] == [], payload["userErrors"]
    return wait_final(client, payload["deployment"]["id"])


def application_state(server: ServerProcess, application: str) -> str | None:
    """The Application row's live state, read from the server's own SQLite database."""
    with sqlite3.connect(server.workdir / "deploybot.db", timeout=30) as db:
        row = db.execute("SELECT state FROM application WHERE name = ?", (application,)).fetchone()
    return str(row[0]) if row else None


def steps(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in deployment["steps"]}


def rollback_errors(client: Client, **input: Any) -> list[dict[str, Any]]:
    before = client.query(COUNT)["deployments"]["totalCount"]
    payload = client.query(ROLLBACK, {"input": input})["rollback"]
    assert payload["deployment"] is None
    assert client.query(COUNT)["deployments"]["totalCount"] == before
    return list(payload["userErrors"])


@pytest.fixture(scope="module")
def web(git_server: GitServer) -> Iterator[dict[str, Any]]:
    """ro-web: A, B (good), C (turns unhealthy), D (serves, but not the health URL)."""
    port = free_port()
    remove_stack("ro-web")
    git_server.create_repo("ro-web")
    files = {"Dockerfile": DOCKERFILE, "docker-compose.stack.yml": stack(port)}
    shas = {"a": git_server.commit("ro-web", {**files, "www/index.html": "A\n"}, tag="ro-a")}
    shas["b"] = git_server.commit("ro-web", {"www/index.html": "B\n"}, tag="ro-b")
    shas["c"] = git_server.commit(
        "ro-web",
        {"www/index.html": "C\n", "docker-compose.stack.yml": stack(port, 9, retries=1)},
        tag="ro-c",
    )
    shas["d"] = git_server.commit(
        "ro-web", {"www/index.html": "D\n", "docker-compose.stack.yml": stack(port)}, tag="ro-d"
    )
    yield {"url": git_server.url("ro-web"), "port": port, **shas}
    remove_stack("ro-web")


def test_hooks_run_in_the_new_image_and_the_health_url_passes(
    client: Client, web: dict[str, Any]
) -> None:
    done = deployed(
        client,
        DEPLOY,
        repositoryUrl=web["url"],
        commitSha=web["a"],
        preDeployHooks=[{"command": "echo migrating to $(cat /www/index.html)"}],
        postDeployHooks=[{"command": "echo warm-up >&2", "service": "web"}],
        healthCheckUrl="/",
        healthCheck={"timeout": 2, "interval": 1, "retries": 10},
    )
    assert done["state"] == "SUCCESS", outcome(done)
    assert [s["name"] for s in done["steps"]] == [
        "fetch", "build", "push", "pre-deploy", "rollout", "converge", "health", "post-deploy"
    ]  # fmt: skip
    by_name = steps(done)
    assert all(s["status"] == "COMPLETED" for s in done["steps"]), done["steps"]
    assert "exit 0" in by_name["pre-deploy"]["message"]
    assert "exit 0" in by_name["post-deploy"]["message"]
    assert f"http://127.0.0.1:{web['port']}/: HTTP 200" in by_name["health"]["message"]
    assert done["rollbackOnFailure"] is True
    assert done["rolloutOptions"]["healthCheck"]["url"] == "/"
    assert http_text(web["port"]) == "A"

    lines = client.query(HOOK_LOGS, {"id": done["id"]})["deployment"]["logs"]["nodes"]
    hooks = [(line["sourceName"], line["text"]) for line in lines if line["source"] == "HOOK"]
    assert ("pre-deploy:web", "migrating to A") in hooks  # ran in the new image
    assert ("post-deploy:web", "warm-up") in hooks
    raw = httpx.get(done["logsUrl"], headers=AUTH_HEADERS).text
    assert "[pre-deploy:web] migrating to A" in raw
    # The one-off jobs are gone.
    assert docker("service", "ls", "-q", "--filter", "label=com.deploybot.hook").strip() == ""
    web["a_number"] = done["number"]


def test_failing_pre_deploy_hook_changes_nothing(client: Client, web: dict[str, Any]) -> None:
    before = service_inspect("ro-web_web")["Version"]
    done = deployed(
        client,
        DEPLOY,
        repositoryUrl=web["url"],
        commitSha=web["b"],
        preDeployHooks=[
            {"command": "echo step one"},
            {"command": "echo cannot migrate; exit 4"},
        ],
    )
    assert done["state"] == "FAILURE", outcome(done)
    assert done["errorCode"] == "HOOK_FAILED"
    by_name = steps(done)
    assert by_name["pre-deploy"]["status"] == "FAILED"
    assert "exit 0" in by_name["pre-deploy"]["error"]
    assert "exit 4" in by_name["pre-deploy"]["error"]
    assert by_name["rollout"]["status"] == "SKIPPED"
    assert "rollback" not in by_name
    assert service_inspect("ro-web_web")["Version"] == before  # the service was not touched
    assert http_text(web["port"]) == "A"
    assert (
        "[pre-deploy:web] cannot migrate" in httpx.get(done["logsUrl"], headers=AUTH_HEADERS).text
    )


def test_unhealthy_rollout_rolls_the_stack_back(
    client: Client, web: dict[str, Any], deploy_server: ServerProcess
) -> None:
    good = deployed(client, DEPLOY, repositoryUrl=web["url"], commitSha=web["b"])
    assert good["state"] == "SUCCESS", outcome(good)
    assert http_text(web["port"]) == "B"
    web["b_number"] = good["number"]

    payload = client.query(DEPLOY, {"input": {"repositoryUrl": web["url"], "commitSha": web["c"]}})
    queued = payload["deploy"]["deployment"]
    seen: list[str | None] = []
    while client.query(GET, {"id": queued["id"]})["deployment"]["state"] in (
        "QUEUED", "IN_PROGRESS"
    ):  # fmt: skip
        seen.append(application_state(deploy_server, "ro-web"))
        time.sleep(0.2)
    done = wait_final(client, queued["id"])
    assert "ROLLING_BACK" in seen, seen
    assert application_state(deploy_server, "ro-web") == "HEALTHY"
    assert done["state"] == "ROLLED_BACK", outcome(done)
    assert done["errorCode"] == "ROLLOUT_FAILED"
    assert "unhealthy container" in done["errorMessage"]
    assert "rolled back to ro-b" in done["errorMessage"]
    by_name = steps(done)
    assert by_name["converge"]["status"] == "FAILED"
    assert by_name["rollback"]["status"] == "COMPLETED"
    assert "restored" in by_name["rollback"]["message"]
    assert done["rollbackTo"] == {"number": good["number"], "version": "ro-b"}
    assert http_text(web["port"]) == "B"
    spec: Any = service_inspect("ro-web_web")["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == good["services"][0]["image"]
    raw = httpx.get(done["logsUrl"], headers=AUTH_HEADERS).text
    assert "rolling the whole stack back to" in raw and "restored service ro-web_web" in raw
    # B stays the current deployment.
    current = client.query(
        '{ deployments(filter: {applications: ["ro-web"], states: [SUCCESS]})'
        " { nodes { number } } }"
    )["deployments"]["nodes"]
    assert current == [{"number": good["number"]}]


def test_failing_health_url_rolls_back_unless_told_not_to(
    client: Client, web: dict[str, Any]
) -> None:
    check = {"timeout": 1, "interval": 0.5, "retries": 2}
    rolled = deployed(
        client,
        DEPLOY,
        repositoryUrl=web["url"],
        commitSha=web["d"],
        healthCheckUrl="/missing.html",
        healthCheck=check,
    )
    assert rolled["state"] == "ROLLED_BACK", outcome(rolled)
    assert rolled["errorCode"] == "HEALTH_CHECK_FAILED"
    assert steps(rolled)["health"]["status"] == "FAILED"
    assert steps(rolled)["rollback"]["status"] == "COMPLETED"
    assert rolled["rollbackTo"]["number"] == web["b_number"]
    assert http_text(web["port"]) == "B"

    done = deployed(
        client,
        DEPLOY,
        repositoryUrl=web["url"],
        commitSha=web["d"],
        healthCheckUrl=f"http://127.0.0.1:{web['port']}/missing.html",
        healthCheck=check,
        rollbackOnFailure=False,
    )
    assert done["state"] == "FAILURE", outcome(done)
    assert done["errorCode"] == "HEALTH_CHECK_FAILED"
    assert "HTTP 404" in done["errorMessage"]
    assert steps(done)["health"]["status"] == "FAILED"
    assert "rollback" not in steps(done)
    assert done["rollbackTo"] is None
    assert http_text(web["port"]) == "D"  # left as it is


def test_rollback_to_a_chosen_version(client: Client, web: dict[str, Any]) -> None:
    done = deployed(client, ROLLBACK, application="ro-web", version="ro-a")
    assert done["state"] == "SUCCESS", outcome(done)
    assert done["trigger"] == "ROLLBACK"
    assert done["version"] == "ro-a"
    assert done["rollbackTo"] == {"number": web["a_number"], "version": "ro-a"}
    assert done["rollbackOf"] == {"number": web["b_number"], "version": "ro-b"}
    assert [s["name"] for s in done["steps"]] == ["rollout", "converge"]
    raw = httpx.get(done["logsUrl"], headers=AUTH_HEADERS).text
    assert f"rollback to #{web['a_number']} (ro-a)" in raw
    assert "restored service ro-web_web" in raw and "==> build" not in raw
    assert http_text(web["port"]) == "A"
    assert done["services"][0]["image"].endswith(done["services"][0]["digest"])

    # No version: the previous successful deployment (B), and the rollback can be followed.
    back = deployed(client, ROLLBACK, application="ro-web")
    assert back["state"] == "SUCCESS", outcome(back)
    assert back["rollbackTo"]["number"] == web["b_number"]
    assert back["rollbackOf"]["number"] == done["number"]
    assert http_text(web["port"]) == "B"


def test_rollback_to_unknown_deployments(client: Client, web: dict[str, Any]) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"application": "ro-web", "deploymentId": "999999"}, "DEPLOYMENT_NOT_FOUND", "999999"),
        ({"application": "ro-web", "version": "no-such"}, "DEPLOYMENT_NOT_FOUND", "no-such"),
        ({"application": "ro-nothing"}, "DEPLOYMENT_NOT_FOUND", "ro-nothing"),
        (
            {"application": "ro-web", "environment": "production"},
            "WRONG_ENVIRONMENT",
            "production",
        ),
    ]
    for input, code, fragment in cases:
        errors = rollback_errors(client, **input)
        assert errors and errors[0]["code"] == code, (input, errors)
        assert fragment in errors[0]["message"], (input, errors)


@pytest.fixture
def local_images() -> Iterator[list[str]]:
    """Two images only this node has (no registry), removable to lose a backup."""
    tags = ["ro-local/web:1", "ro-local/web:2"]
    for tag in tags:
        subprocess.run(
            [DOCKER, "build", "-q", "-t", tag, "--label", f"ro={tag}", "-"],
            # Stops at SIGTERM (a bare `sleep` as PID 1 ignores it: 10 s to each update).
            input="FROM deploybot/busybox:latest\n"
            'CMD ["sh", "-c", "trap \'exit 0\' TERM; sleep 3600 & wait"]\n',
            text=True,
            check=True,
            capture_output=True,
            timeout=120,
        )
    remove_stack("ro-local")
    yield tags
    remove_stack("ro-local")
    subprocess.run([DOCKER, "rmi", "-f", *tags], capture_output=True, timeout=60)


def test_rollback_to_lost_images_is_backup_not_found(
    client: Client, local_images: list[str]
) -> None:
    for tag in local_images:
        done = deployed(client, DEPLOY, image=tag, application="ro-local", service="app")
        assert done["state"] == "SUCCESS", outcome(done)
    docker("rmi", "-f", local_images[0])
    errors = rollback_errors(client, application="ro-local", version="1")
    assert errors[0]["code"] == "BACKUP_NOT_FOUND", errors
    assert "ro-local/web:1" in errors[0]["message"]
