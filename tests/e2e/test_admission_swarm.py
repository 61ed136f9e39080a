"""End to end on the real Swarm, through GraphQL over HTTP: one deployment at a time per
application (refused, queued, superseded), cancel, idempotency keys, dependencies,
validateDeployment, and the live application status and health report.

Test applications start with `ad-`; their services stop in 1s (busybox ignores SIGTERM).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import docker, remove_stack, service_inspect
from tests.e2e.test_deploy_swarm import DEPLOY, DOCKERFILE, GET, outcome, wait_final
from tests.gitserver import GitServer
from tests.servers import Client, free_port

STACKS = ("ad-queue", "ad-cancel", "ad-sick", "ad-front", "ad-valid", "ad-other")
COUNT = "{ deployments { totalCount } }"

CANCEL = """
mutation Cancel($input: CancelDeploymentInput!) {
  cancelDeployment(input: $input) {
    clientMutationId
    userErrors { field message code }
    deployment { id number state cancelRequestedAt errorMessage }
  }
}
"""

VALIDATE = """
query Validate($input: DeployInput!) {
  validateDeployment(input: $input) {
    valid
    issues { field message severity code }
    warnings { field message severity }
  }
}
"""

APPLICATION = """
query App($name: String!) {
  application(name: $name) {
    name environment state health currentVersion stackFile repositoryUrl configuration
    lastUpdated
    replicas { desired running ready updated }
    currentDeployment { number state }
    events { timestamp type message source }
    healthReport {
      overall message lastCheck
      components {
        name swarmName status message image updateState
        replicas { desired running ready updated }
        checks { name status message duration lastRun }
      }
    }
  }
}
"""


def slow_stack(port: int, delay: int) -> str:
    """A web service that becomes healthy `delay` seconds after it starts."""
    return f"""version: "3.8"
services:
  web:
    build: .
    stop_grace_period: 1s
    command: ["sh", "-c", "sleep {delay}; touch /tmp/ready; exec httpd -f -p 8080 -h /www"]
    ports:
      - target: 8080
        published: {port}
        mode: host
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 1s
      retries: 3
      start_period: 120s
    deploy:
      replicas: 1
      update_config:
        monitor: 1s  # Swarm's 5 s default: 4 s more per update
"""


SICK_STACK = """version: "3.8"
services:
  web:
    build: .
    stop_grace_period: 1s
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
  sick:
    build: .
    stop_grace_period: 1s
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9/"]
      interval: 1s
      timeout: 1s
      retries: 1
    deploy:
      restart_policy:
        delay: 1s
"""


def send(client: Client, **input: Any) -> dict[str, Any]:
    payload: dict[str, Any] = client.query(DEPLOY, {"input": input})["deploy"]
    return payload


def accepted(client: Client, **input: Any) -> dict[str, Any]:
    payload = send(client, **input)
    assert payload["userErrors"] == [], payload["userErrors"]
    return dict(payload["deployment"])


def refused(client: Client, **input: Any) -> list[dict[str, Any]]:
    """userErrors of a request that must write nothing."""
    before = client.query(COUNT)["deployments"]["totalCount"]
    payload = send(client, **input)
    assert payload["deployment"] is None, payload
    assert client.query(COUNT)["deployments"]["totalCount"] == before
    return list(payload["userErrors"])


def wait_for(client: Client, deployment_id: str, step: str, timeout: float = 120) -> None:
    """Until the deployment's `step` runs."""
    deadline = time.monotonic() + timeout
    while True:
        found = client.query(GET, {"id": deployment_id})["deployment"]
        status = {s["name"]: s["status"] for s in found["steps"]}
        if status.get(step) == "RUNNING":
            return
        assert found["state"] in ("QUEUED", "IN_PROGRESS"), outcome(found)
        assert time.monotonic() < deadline, f"{step} never ran: {outcome(found)}"
        time.sleep(0.3)


def validate(client: Client, **input: Any) -> dict[str, Any]:
    before = client.query(COUNT)["deployments"]["totalCount"]
    result: dict[str, Any] = client.query(VALIDATE, {"input": input})["validateDeployment"]
    assert client.query(COUNT)["deployments"]["totalCount"] == before  # a dry run
    return result


@pytest.fixture(scope="module")
def repos(git_server: GitServer) -> Iterator[dict[str, Any]]:
    for stack in STACKS:
        remove_stack(stack)
    ports = {name: free_port() for name in ("queue", "cancel", "valid")}
    shas: dict[str, Any] = {"ports": ports}
    for app in ("queue", "cancel"):
        git_server.create_repo(f"ad-{app}")
        shas[f"{app}-slow"] = git_server.commit(
            f"ad-{app}",
            {
                "Dockerfile": DOCKERFILE,
                "www/index.html": f"{app} slow\n",
                "docker-compose.stack.yml": slow_stack(ports[app], 6 if app == "queue" else 300),
            },
            message="slow",
        )
        shas[f"{app}-fast"] = git_server.commit(
            f"ad-{app}",
            {
                "www/index.html": f"{app} fast\n",
                "docker-compose.stack.yml": slow_stack(ports[app], 0),
            },
            message="fast",
        )
    git_server.create_repo("ad-sick")
    shas["sick"] = git_server.commit(
        "ad-sick",
        {"Dockerfile": DOCKERFILE, "www/index.html": "x\n", "docker-compose.stack.yml": SICK_STACK},
    )
    git_server.create_repo("ad-valid")
    port = ports["valid"]
    shas["valid"] = git_server.commit(
        "ad-valid",
        {
            "Dockerfile": DOCKERFILE,
            "www/index.html": "v\n",
            "docker-compose.stack.yml": slow_stack(port, 0).replace(
                "    build: .\n", "    build: .\n    container_name: ignored\n"
            ),
            "unknown-key.yml": "services:\n  web:\n    build: .\n    replicass: 2\n",
            "ingress.yml": slow_stack(port, 0).replace("mode: host", "mode: ingress"),
            "ingress-vip.yml": slow_stack(port, 0)
            .replace("mode: host", "mode: ingress")
            .replace("replicas: 1", "replicas: 1\n      endpoint_mode: vip"),
            "taken.yml": slow_stack(ports["queue"], 0),
        },
    )
    yield shas
    for stack in STACKS:
        remove_stack(stack)


def test_one_deployment_at_a_time_and_the_newest_queued_runs_next(
    client: Client, git_server: GitServer, repos: dict[str, Any]
) -> None:
    url = git_server.url("ad-queue")
    answers: list[dict[str, Any]] = []
    start = threading.Barrier(2)

    def request() -> None:
        own = Client(client.base_url)  # two CI jobs, two connections
        try:
            start.wait()
            answers.append(send(own, repositoryUrl=url, commitSha=repos["queue-slow"]))
        finally:
            own.close()

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [a["deployment"] for a in answers if a["deployment"]]
    losers = [a["userErrors"] for a in answers if not a["deployment"]]
    assert len(winners) == 1 and len(losers) == 1, answers
    assert losers[0][0]["code"] == "DEPLOYMENT_IN_PROGRESS"
    assert f"#{winners[0]['number']}" in losers[0][0]["message"]
    first = winners[0]

    older = accepted(client, repositoryUrl=url, commitSha=repos["queue-fast"], queue=True)
    newer = accepted(
        client, repositoryUrl=url, commitSha=repos["queue-fast"], queue=True, description="newer"
    )
    assert older["state"] == newer["state"] == "QUEUED"
    superseded = client.query(GET, {"id": older["id"]})["deployment"]
    assert superseded["state"] == "CANCELLED"
    assert f"superseded by deployment #{newer['number']}" in superseded["errorMessage"]
    assert {s["status"] for s in superseded["steps"]} == {"SKIPPED"}

    done = wait_final(client, first["id"])
    assert done["state"] == "SUCCESS", outcome(done)
    last = wait_final(client, newer["id"])
    assert last["state"] == "SUCCESS", outcome(last)
    assert last["startedAt"] >= done["finishedAt"]  # it waited for the first one
    assert last["previousVersion"] == done["version"]


def test_application_status_of_a_healthy_deployment(client: Client) -> None:
    app = client.query(APPLICATION, {"name": "ad-queue"})["application"]
    latest = client.query(
        '{ deployments(first: 1, filter: {applications: ["ad-queue"], states: [SUCCESS]}) '
        "{ nodes { number version } } }"
    )["deployments"]["nodes"][0]
    assert app["state"] == "HEALTHY" and app["health"] == "HEALTHY", app
    assert app["environment"] == "test"
    assert app["replicas"] == {"desired": 1, "running": 1, "ready": 1, "updated": 1}
    assert app["currentVersion"] == latest["version"]
    assert app["currentDeployment"] == {"number": latest["number"], "state": "SUCCESS"}
    assert app["stackFile"] == "docker-compose.stack.yml"
    web_config = app["configuration"]["services"]["web"]
    assert web_config["healthcheck"] is True and web_config["replicas"] == 1
    assert web_config["deployment"] == str(latest["number"])
    sources = {e["source"] for e in app["events"]}
    assert f"deployment #{latest['number']}" in sources and "web.1" in sources
    assert any("superseded" in e["message"] and e["type"] == "WARNING" for e in app["events"])

    report = app["healthReport"]
    assert report["overall"] == "HEALTHY" and report["lastCheck"]
    (web,) = report["components"]
    assert web["name"] == "web" and web["swarmName"] == "ad-queue_web"
    assert web["status"] == "HEALTHY"
    (check,) = web["checks"]
    assert check["name"] == "web.1" and check["status"] == "HEALTHY"
    assert check["message"].startswith("exit 0")
    assert check["duration"] is not None and check["lastRun"]

    assert client.query(APPLICATION, {"name": "ad-never-deployed"})["application"] is None
    names = [a["name"] for a in client.query("{ applications { name state } }")["applications"]]
    assert "ad-queue" in names


def test_cancel_queued_and_running_then_deploy_again(
    client: Client, git_server: GitServer, repos: dict[str, Any]
) -> None:
    url = git_server.url("ad-cancel")
    running = accepted(client, repositoryUrl=url, commitSha=repos["cancel-slow"])
    wait_for(client, running["id"], "converge")  # its task never gets healthy
    queued = accepted(client, repositoryUrl=url, commitSha=repos["cancel-fast"], queue=True)

    payload = client.query(CANCEL, {"input": {"id": queued["id"], "clientMutationId": "c1"}})
    answer = payload["cancelDeployment"]
    assert answer["userErrors"] == [] and answer["clientMutationId"] == "c1"
    assert answer["deployment"]["state"] == "CANCELLED"  # at once

    answer = client.query(CANCEL, {"input": {"id": str(running["number"])}})["cancelDeployment"]
    assert answer["userErrors"] == []
    assert answer["deployment"]["cancelRequestedAt"]
    stopped = wait_final(client, running["id"], timeout=60)
    assert stopped["state"] == "CANCELLED", outcome(stopped)
    assert stopped["errorMessage"] == "cancelled during converge"
    steps = {s["name"]: s["status"] for s in stopped["steps"]}
    assert steps == {
        "fetch": "COMPLETED",
        "build": "COMPLETED",
        "push": "COMPLETED",
        "rollout": "COMPLETED",
        "converge": "CANCELLED",
    }

    late = client.query(CANCEL, {"input": {"id": running["id"]}})["cancelDeployment"]
    assert late["deployment"] is None
    assert late["userErrors"][0]["code"] == "DEPLOYMENT_FINISHED"
    missing = client.query(CANCEL, {"input": {"id": "999999"}})["cancelDeployment"]
    assert missing["userErrors"][0]["code"] == "DEPLOYMENT_NOT_FOUND"

    # The next deploy takes over the service the cancelled one left mid-update; a retry
    # with the same idempotency key gets the same deployment back.
    before = client.query(COUNT)["deployments"]["totalCount"]
    key = {"idempotencyKey": f"ad-cancel-{repos['cancel-fast']}"}
    again = accepted(client, repositoryUrl=url, commitSha=repos["cancel-fast"], **key)
    retry = accepted(client, repositoryUrl=url, commitSha=repos["cancel-fast"], **key)
    assert retry["id"] == again["id"]
    assert client.query(COUNT)["deployments"]["totalCount"] == before + 1
    other = refused(client, repositoryUrl=url, commitSha=repos["cancel-slow"], **key)
    assert other[0]["code"] == "IDEMPOTENCY_KEY_REUSED" and other[0]["field"] == "idempotencyKey"
    done = wait_final(client, again["id"])
    assert done["state"] == "SUCCESS", outcome(done)
    spec: Any = service_inspect("ad-cancel_web")["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == done["services"][0]["image"]


def test_unhealthy_service_degrades_the_application_and_fails_its_dependents(
    client: Client, git_server: GitServer, repos: dict[str, Any]
) -> None:
    sick = accepted(client, repositoryUrl=git_server.url("ad-sick"), commitSha=repos["sick"])
    done = wait_final(client, sick["id"])
    assert done["state"] == "FAILURE", outcome(done)

    app = client.query(APPLICATION, {"name": "ad-sick"})["application"]
    assert app["state"] == "FAILED" and app["health"] == "DEGRADED", app
    components = {c["name"]: c for c in app["healthReport"]["components"]}
    assert app["healthReport"]["overall"] == "DEGRADED"
    assert components["web"]["status"] == "HEALTHY"
    assert components["sick"]["status"] == "UNHEALTHY"
    assert components["sick"]["replicas"]["ready"] == 0
    assert "sick" in app["healthReport"]["message"]
    assert any(e["type"] == "ERROR" for e in app["events"])

    # A dependent application is refused while its dependency is not HEALTHY...
    image = next(s["image"] for s in done["services"] if s["service"] == "web")
    front = {"image": image, "application": "ad-front", "service": "web"}
    errors = refused(client, dependencies=["ad-sick"], **front)
    assert errors[0]["code"] == "DEPENDENCY_FAILED" and errors[0]["field"] == "dependencies"
    assert "ad-sick is FAILED" in errors[0]["message"]
    errors = refused(client, dependencies=["ad-nowhere"], **front)
    assert "ad-nowhere is not deployed in test" in errors[0]["message"]
    assert docker("service", "ls", "-q", "--filter", "name=ad-front_").strip() == ""
    # ... and accepted once it is; the runner checks again before its rollout.
    ok = accepted(client, dependencies=["ad-queue"], **front)
    shown = client.query("query($id: ID!) { deployment(id: $id) { dependencies } }", ok)
    assert shown["deployment"]["dependencies"] == ["ad-queue"]
    final = wait_final(client, ok["id"])
    assert final["state"] == "SUCCESS", outcome(final)
    assert "dependencies healthy: ad-queue" in client.http.get(final["logsUrl"]).text


def test_validate_deployment_is_a_dry_run(
    client: Client, git_server: GitServer, repos: dict[str, Any]
) -> None:
    url = git_server.url("ad-valid")
    sha = repos["valid"]
    good = validate(client, repositoryUrl=url, commitSha=sha)
    assert good["valid"] is True, good
    assert [w["message"] for w in good["warnings"]] == [
        "services.web.container_name: ignored by docker stack deploy"
    ]
    assert all(i["severity"] == "WARNING" for i in good["issues"])

    def errors(stack_file: str) -> list[dict[str, Any]]:
        result = validate(client, repositoryUrl=url, commitSha=sha, stackFile=stack_file)
        assert result["valid"] is False, result
        return [i for i in result["issues"] if i["severity"] == "ERROR"]

    (unknown,) = errors("unknown-key.yml")
    assert unknown["code"] == "INVALID_DEPLOYMENT_SPEC" and unknown["field"] == "stackFile"
    assert "services.web.replicass" in unknown["message"]
    (ingress,) = errors("ingress.yml")
    assert "ingress mode" in ingress["message"]
    (vip,) = errors("ingress-vip.yml")
    assert "no routing mesh" in vip["message"]
    (taken,) = errors("taken.yml")
    port = repos["ports"]["queue"]
    assert f"port {port}/tcp is already published by service ad-queue_web" in taken["message"]
    (missing,) = errors("missing.yml")
    assert "missing.yml" in missing["message"] and missing["code"] == "INVALID_DEPLOYMENT_SPEC"

    # deploy refuses what validation refuses, with the same error.
    deploy_errors = refused(client, repositoryUrl=url, commitSha=sha, stackFile="taken.yml")
    assert deploy_errors[0]["message"] == taken["message"]
    fields = validate(client, repositoryUrl=url, application="Bad Name", dependencies=["x y"])
    assert {i["field"] for i in fields["issues"] if i["severity"] == "ERROR"} == {
        "commitSha",
        "application",
        "dependencies",
    }
    busy = validate(client, repositoryUrl=git_server.url("ad-queue"), ref="main")
    assert busy["valid"] is True  # nothing under way for ad-queue now
    sick = validate(client, repositoryUrl=url, commitSha=sha, dependencies=["ad-sick"])
    assert [i["code"] for i in sick["issues"] if i["severity"] == "ERROR"] == ["DEPENDENCY_FAILED"]
    key = f"ad-cancel-{repos['cancel-fast']}"  # used by the cancel test for another request
    reused = validate(client, repositoryUrl=url, commitSha=sha, idempotencyKey=key)
    assert [i["code"] for i in reused["issues"] if i["severity"] == "ERROR"] == [
        "IDEMPOTENCY_KEY_REUSED"
    ]
