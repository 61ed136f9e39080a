"""End to end: a CI job deploys git commits through GraphQL onto the real Swarm.

The repository is served by a real `git daemon`; images are built by the real
engine, pushed to the local registry and deployed by digest.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import docker, remove_stack, service_inspect
from tests.gitserver import GitServer
from tests.servers import AUTH_HEADERS, Client, ServerProcess, free_port

DEPLOYMENT_FIELDS = """
  id number state version previousVersion commitSha ref application environment
  repositoryUrl errorCode errorMessage logsUrl duration createdAt startedAt finishedAt
  originalRequest stackFile trigger references description image service
  steps { name status message error startedAt finishedAt duration }
  services { service swarmName image digest version replicasDesired replicasRunning nodes state }
"""

DEPLOY = (
    """
mutation Deploy($input: DeployInput!) {
  deploy(input: $input) {
    clientMutationId
    userErrors { field message code }
    deployment { %s }
  }
}
"""
    % DEPLOYMENT_FIELDS
)

GET = "query($id: ID!) { deployment(id: $id) { %s } }" % DEPLOYMENT_FIELDS

DOCKERFILE = """FROM deploybot/busybox:latest
COPY www /www
CMD ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
"""


def stack_file(port: int) -> str:
    return f"""version: "3.8"
services:
  web:
    build: .
    stop_grace_period: 1s  # httpd as PID 1 ignores SIGTERM
    ports:
      - target: 8080
        published: {port}
        mode: host
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
  worker:
    build:
      context: .
    command: ["sh", "-c", "while true; do echo tick $$(cat /www/index.html); sleep 1; done"]
    stop_grace_period: 1s
    deploy:
      replicas: 2
      update_config:
        parallelism: 1
        delay: 1s
        monitor: 1s
"""


def wait_final(client: Client, deployment_id: str, timeout: float = 150) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = client.query(GET, {"id": deployment_id})["deployment"]
        if found["state"] not in ("QUEUED", "IN_PROGRESS"):
            return dict(found)
        if time.monotonic() > deadline:
            raise AssertionError(f"deployment still {found['state']}: {found}")
        time.sleep(0.2)


def outcome(deployment: dict[str, Any]) -> str:
    """What to print when a deployment ended otherwise than expected."""
    steps = [(s["name"], s["status"], s["error"]) for s in deployment["steps"]]
    return f"{deployment['state']} {deployment['errorCode']}: {deployment['errorMessage']} {steps}"


def deploy(client: Client, **input: Any) -> dict[str, Any]:
    payload = client.query(DEPLOY, {"input": input})["deploy"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return dict(payload["deployment"])


def http_text(port: int) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text.strip()
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture(scope="module")
def shop(git_server: GitServer) -> Iterator[dict[str, Any]]:
    """A two-service application repository (web with a healthcheck, worker)."""
    port = free_port()
    remove_stack("shop")
    git_server.create_repo("shop")
    sha_a = git_server.commit(
        "shop",
        {
            "Dockerfile": DOCKERFILE,
            "docker-compose.stack.yml": stack_file(port),
            "www/index.html": "A\n",
        },
        message="version A",
        tag="v1.0.0",
    )
    yield {"url": git_server.url("shop"), "port": port, "a": sha_a}
    remove_stack("shop")


def test_deploy_commit_builds_pushes_and_converges(
    client: Client, shop: dict[str, Any], registry: str
) -> None:
    started = time.monotonic()
    queued = deploy(
        client,
        repositoryUrl=shop["url"],
        commitSha=shop["a"],
        description="first deploy",
        references=["OPS-1"],
        clientMutationId="ci-1",
    )
    assert queued["state"] in ("QUEUED", "IN_PROGRESS")
    assert queued["application"] == "shop"
    assert queued["environment"] == "test"
    assert queued["version"] == "v1.0.0"  # the tag at the commit
    assert queued["commitSha"] == shop["a"]
    assert queued["originalRequest"]["commitSha"] == shop["a"]
    assert [s["name"] for s in queued["steps"]] == ["fetch", "build", "push", "rollout", "converge"]

    done = wait_final(client, queued["id"])
    elapsed = time.monotonic() - started
    print(f"end-to-end deploy of 2 services: {elapsed:.1f}s (recorded {done['duration']}s)")
    assert done["state"] == "SUCCESS", outcome(done)
    assert all(s["status"] == "COMPLETED" for s in done["steps"]), done["steps"]
    assert all(s["startedAt"] and s["finishedAt"] for s in done["steps"])
    assert done["duration"] > 0

    services = {s["service"]: s for s in done["services"]}
    assert set(services) == {"web", "worker"}
    for name, svc in services.items():
        assert svc["swarmName"] == f"shop_{name}"
        assert svc["image"].startswith(f"{registry}/shop/{name}:v1.0.0@sha256:")
        assert svc["digest"].startswith("sha256:")
        assert svc["state"] == "converged"
        assert svc["nodes"], svc
    assert services["worker"]["replicasDesired"] == 2
    assert services["worker"]["replicasRunning"] == 2

    # What runs on the Swarm is A's image, by digest, with the stack's labels.
    web = service_inspect("shop_web")
    spec: Any = web["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == services["web"]["image"]
    assert spec["Labels"]["com.docker.stack.namespace"] == "shop"
    assert http_text(shop["port"]) == "A"

    # The raw log has the build output and the service's own lines.
    raw = httpx.get(done["logsUrl"], headers=AUTH_HEADERS).text
    assert "COPY www /www" in raw  # the build output
    assert "[worker] tick A" in raw  # the new tasks' own output during the rollout
    assert "[system] created service shop_web" in raw


def test_deploy_branch_rolls_out_the_new_commit(
    client: Client, shop: dict[str, Any], git_server: GitServer
) -> None:
    sha_b = git_server.commit("shop", {"www/index.html": "B\n"}, message="version B")
    shop["b"] = sha_b
    queued = deploy(client, repositoryUrl=shop["url"], ref="main")
    assert queued["commitSha"] == sha_b  # the branch is resolved and the sha recorded
    assert queued["ref"] == "main"
    assert queued["version"] == sha_b[:7]
    assert queued["previousVersion"] == "v1.0.0"

    done = wait_final(client, queued["id"])
    print(f"rolling update of 2 services (3 tasks): recorded {done['duration']}s")
    assert done["state"] == "SUCCESS", outcome(done)
    assert http_text(shop["port"]) == "B"

    worker = service_inspect("shop_worker")
    status: Any = worker["UpdateStatus"]
    assert status["State"] == "completed"  # a rolling update, not a re-create
    tasks = docker(
        "service", "ps", "shop_worker", "--format", "{{.Image}} {{.DesiredState}}", "--no-trunc"
    ).splitlines()
    running = [t for t in tasks if t.endswith("Running")]
    shut = [t for t in tasks if t.endswith("Shutdown")]
    assert len(running) == 2 and all(sha_b[:7] in t for t in running), tasks
    assert len(shut) >= 2 and all("v1.0.0" in t for t in shut), tasks

    first = client.query(
        '{ deployments(filter: {applications: ["shop"]}, orderBy: {direction: ASC}) '
        "{ nodes { state version } } }"
    )["deployments"]["nodes"]
    assert [d["state"] for d in first] == ["INACTIVE", "SUCCESS"]


def test_failed_build_keeps_the_running_version(
    client: Client, shop: dict[str, Any], git_server: GitServer
) -> None:
    sha_c = git_server.commit(
        "shop",
        {"Dockerfile": DOCKERFILE.replace("COPY www /www", "RUN echo compiling && exit 7")},
        message="broken build",
    )
    done = wait_final(client, deploy(client, repositoryUrl=shop["url"], commitSha=sha_c)["id"])
    assert done["state"] == "FAILURE"
    assert done["errorCode"] == "BUILD_FAILED"
    assert "non-zero code: 7" in done["errorMessage"]
    steps = {s["name"]: s for s in done["steps"]}
    assert steps["fetch"]["status"] == "COMPLETED"
    assert steps["build"]["status"] == "FAILED"
    assert "non-zero code: 7" in steps["build"]["error"]
    assert steps["rollout"]["status"] == "SKIPPED"
    raw = httpx.get(done["logsUrl"], headers=AUTH_HEADERS).text
    assert "compiling" in raw and "non-zero code: 7" in raw
    # B keeps running and stays the current success.
    assert http_text(shop["port"]) == "B"
    current = client.query(
        '{ deployments(filter: {applications: ["shop"], states: [SUCCESS]}) '
        "{ totalCount nodes { commitSha } } }"
    )["deployments"]
    assert current["totalCount"] == 1
    assert current["nodes"][0]["commitSha"] == shop["b"]


def test_logs_are_paginated_in_graphql(client: Client, shop: dict[str, Any]) -> None:
    first = client.query(
        '{ deployments(first: 1, filter: {applications: ["shop"], states: [SUCCESS]}) '
        "{ nodes { logs(first: 5) { totalCount edges { cursor node { sequence source text } } "
        "pageInfo { hasNextPage endCursor } } } } }"
    )["deployments"]["nodes"][0]["logs"]
    assert [e["node"]["sequence"] for e in first["edges"]] == [1, 2, 3, 4, 5]
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["totalCount"] > 5
    sources = {e["node"]["source"] for e in first["edges"]}
    assert "SYSTEM" in sources


def test_history_filters(client: Client, shop: dict[str, Any]) -> None:
    def numbers(flt: str, extra: str = "") -> list[int]:
        data = client.query(
            "{ deployments(%s filter: %s) { totalCount nodes { number } } }" % (extra, flt)
        )
        nodes = data["deployments"]["nodes"]
        return [n["number"] for n in nodes]

    everything = numbers('{applications: ["shop"]}')
    assert len(everything) == 3 and everything == sorted(everything, reverse=True)
    assert numbers('{environments: ["test"], applications: ["shop"]}') == everything
    assert numbers('{environments: ["production"]}') == []
    assert numbers('{repository: "%s"}' % shop["url"]) == everything
    assert numbers('{repository: "git://127.0.0.1:*/sh?p.git"}') == everything
    assert numbers('{repository: "git://elsewhere/*"}') == []
    assert numbers('{commitSha: "%s"}' % shop["a"][:8]) == [everything[-1]]
    assert numbers('{refs: ["main"]}') == [everything[1]]
    assert numbers("{states: [FAILURE]}") == [everything[0]]
    assert numbers('{states: [SUCCESS, INACTIVE], applications: ["shop"]}') == everything[1:]
    assert numbers('{createdAfter: "2000-01-01T00:00:00Z", applications: ["shop"]}') == everything
    assert numbers('{createdBefore: "2000-01-01T00:00:00Z"}') == []

    # Keyset pagination both ways.
    page = client.query(
        '{ deployments(first: 2, filter: {applications: ["shop"]}) '
        "{ pageInfo { hasNextPage endCursor } nodes { number } } }"
    )["deployments"]
    assert [n["number"] for n in page["nodes"]] == everything[:2]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = client.query(
        '{ deployments(first: 2, after: "%s", filter: {applications: ["shop"]}) '
        "{ pageInfo { hasNextPage hasPreviousPage startCursor } nodes { number } } }"
        % page["pageInfo"]["endCursor"]
    )["deployments"]
    assert [n["number"] for n in rest["nodes"]] == everything[2:]
    assert rest["pageInfo"]["hasNextPage"] is False
    back = client.query(
        '{ deployments(last: 2, before: "%s", filter: {applications: ["shop"]}) '
        "{ nodes { number } } }" % rest["pageInfo"]["startCursor"]
    )["deployments"]
    assert [n["number"] for n in back["nodes"]] == everything[:2]


def test_node_and_number_lookup(client: Client, shop: dict[str, Any]) -> None:
    latest = client.query(
        '{ deployments(first: 1, filter: {applications: ["shop"]}) { nodes { id number } } }'
    )["deployments"]["nodes"][0]
    by_node = client.query(
        "query($id: ID!) { node(id: $id) { id ... on Deployment { number state } } }",
        {"id": latest["id"]},
    )["node"]
    assert by_node["number"] == latest["number"]
    by_number = client.query(GET, {"id": str(latest["number"])})["deployment"]
    assert by_number["id"] == latest["id"]
    assert client.query(GET, {"id": "999999"})["deployment"] is None
    bad = client.execute(GET, {"id": "not-an-id"})
    assert bad["errors"][0]["message"].startswith("not a valid ID")


def test_raw_logs_endpoint_errors_are_json(deploy_server: ServerProcess) -> None:
    missing = httpx.get(f"{deploy_server.url}/deployments/424242/logs", headers=AUTH_HEADERS)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "DEPLOYMENT_NOT_FOUND"
    bad = httpx.get(f"{deploy_server.url}/deployments/abc/logs", headers=AUTH_HEADERS)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "INVALID_INPUT"


def test_services_dropped_from_the_stack_are_removed(
    client: Client, shop: dict[str, Any], git_server: GitServer
) -> None:
    web_only = stack_file(shop["port"]).split("  worker:")[0]
    sha = git_server.commit(
        "shop",
        {"Dockerfile": DOCKERFILE, "docker-compose.stack.yml": web_only, "www/index.html": "D\n"},
        message="fixed build, no worker",
    )
    done = wait_final(client, deploy(client, repositoryUrl=shop["url"], commitSha=sha)["id"])
    assert done["state"] == "SUCCESS", outcome(done)
    assert [s["service"] for s in done["services"]] == ["web"]
    names = docker("service", "ls", "--filter", "label=com.docker.stack.namespace=shop",
                   "--format", "{{.Name}}").split()  # fmt: skip
    assert names == ["shop_web"]
    assert http_text(shop["port"]) == "D"
    assert (
        "removed service shop_worker (not in the stack)"
        in httpx.get(done["logsUrl"], headers=AUTH_HEADERS).text
    )
