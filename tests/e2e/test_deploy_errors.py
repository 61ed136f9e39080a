"""Bad input gets typed userErrors and writes nothing; task failures and an unreachable
Docker end deployments with the right state and code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import docker, remove_stack, server_env
from tests.e2e.test_deploy_swarm import DEPLOY, DOCKERFILE, deploy, outcome, wait_final
from tests.gitserver import GitServer
from tests.servers import Client, ServerProcess

COUNT = "{ deployments { totalCount } }"


@pytest.fixture(scope="module")
def repos(git_server: GitServer) -> Iterator[dict[str, Any]]:
    for stack in ("crashy", "sickly", "stuck", "solo", "imgapp"):
        remove_stack(stack)
    git_server.create_repo("broken")
    good = git_server.commit(
        "broken",
        {
            "Dockerfile": DOCKERFILE,
            "www/index.html": "x\n",
            "docker-compose.stack.yml": "services:\n  web:\n    build: .\n",
            "bad-yaml.yml": "services:\n  web: [unclosed\n",
            "unknown-key.yml": "services:\n  web:\n    build: .\n    replicass: 2\n",
        },
    )
    git_server.create_repo("crashy")
    crashy = git_server.commit(
        "crashy",
        {
            "Dockerfile": DOCKERFILE,
            "www/index.html": "x\n",
            "docker-compose.stack.yml": (
                "services:\n  app:\n    build: .\n"
                '    command: ["sh", "-c", "echo starting; exit 3"]\n'
                "    deploy:\n      restart_policy:\n        delay: 1s\n"
            ),
        },
    )
    git_server.create_repo("sickly")
    sickly = git_server.commit(
        "sickly",
        {
            "Dockerfile": DOCKERFILE,
            "www/index.html": "x\n",
            "docker-compose.stack.yml": (
                "services:\n  app:\n    build: .\n"
                "    healthcheck:\n"
                '      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9/"]\n'
                "      interval: 1s\n      timeout: 1s\n      retries: 1\n"
                "    stop_grace_period: 1s\n"  # httpd as PID 1 ignores SIGTERM
                "    deploy:\n      restart_policy:\n        delay: 1s\n"
            ),
        },
    )
    git_server.create_repo("stuck")
    stuck = git_server.commit(
        "stuck",
        {
            "Dockerfile": DOCKERFILE,
            "www/index.html": "x\n",
            "docker-compose.stack.yml": (
                "services:\n  app:\n    build: .\n    deploy:\n      placement:\n"
                "        constraints: [node.labels.deploybot-test-nowhere == yes]\n"
            ),
        },
    )
    git_server.create_repo("solo")
    solo = git_server.commit("solo", {"Dockerfile": DOCKERFILE, "www/index.html": "solo\n"})
    yield {"good": good, "crashy": crashy, "sickly": sickly, "stuck": stuck, "solo": solo}
    for stack in ("crashy", "sickly", "stuck", "solo", "imgapp"):
        remove_stack(stack)


def deployed(
    client: Client, git_server: GitServer, repos: dict[str, Any], name: str
) -> dict[str, Any]:
    """Deploy the fixture repository `name` at its commit and wait for the outcome."""
    queued = deploy(client, repositoryUrl=git_server.url(name), commitSha=repos[name])
    return wait_final(client, queued["id"])


def errors_of(client: Client, **input: Any) -> list[dict[str, Any]]:
    before = client.query(COUNT)["deployments"]["totalCount"]
    payload = client.query(DEPLOY, {"input": input})["deploy"]
    assert payload["deployment"] is None
    assert client.query(COUNT)["deployments"]["totalCount"] == before  # nothing half-written
    return list(payload["userErrors"])


def test_bad_input_is_a_typed_user_error(
    client: Client, git_server: GitServer, repos: dict[str, Any]
) -> None:
    url = git_server.url("broken")
    cases: list[tuple[dict[str, Any], str, str | None, str]] = [
        ({"repositoryUrl": url}, "INVALID_INPUT", "commitSha", "commitSha"),
        ({}, "INVALID_INPUT", "repositoryUrl", "repositoryUrl"),
        ({"repositoryUrl": url, "commitSha": "xyz"}, "INVALID_INPUT", "commitSha", "hex"),
        (
            {"repositoryUrl": url, "ref": "main", "environment": "production"},
            "WRONG_ENVIRONMENT",
            "environment",
            "production",
        ),
        (
            {"repositoryUrl": git_server.url("nope"), "ref": "main"},
            "ARTIFACT_NOT_FOUND",
            "repositoryUrl",
            "nope",
        ),
        (
            {"repositoryUrl": "git://127.0.0.1:1/unreachable.git", "ref": "main"},
            "ARTIFACT_NOT_FOUND",
            "repositoryUrl",
            "unreachable",
        ),
        (
            {"repositoryUrl": url, "commitSha": "0123456789abcdef0123456789abcdef01234567"},
            "ARTIFACT_NOT_FOUND",
            "commitSha",
            "0123456789abcdef",
        ),
        ({"repositoryUrl": url, "ref": "no-such-branch"}, "ARTIFACT_NOT_FOUND", "ref", "no-such"),
        (
            {"repositoryUrl": url, "ref": "main", "stackFile": "missing.yml"},
            "INVALID_DEPLOYMENT_SPEC",
            "stackFile",
            "missing.yml",
        ),
        (
            {"repositoryUrl": url, "ref": "main", "stackFile": "bad-yaml.yml"},
            "INVALID_DEPLOYMENT_SPEC",
            "stackFile",
            "bad-yaml.yml",
        ),
        (
            {"repositoryUrl": url, "ref": "main", "stackFile": "unknown-key.yml"},
            "INVALID_DEPLOYMENT_SPEC",
            "stackFile",
            "services.web.replicass",
        ),
        (
            {"image": "127.0.0.1:5000/does/not-exist:1"},
            "ARTIFACT_NOT_FOUND",
            "image",
            "does/not-exist",
        ),
    ]
    for input, code, field, fragment in cases:
        errors = errors_of(client, **input)
        assert errors, input
        assert errors[0]["code"] == code, (input, errors)
        assert errors[0]["field"] == field, (input, errors)
        assert fragment in errors[0]["message"], (input, errors)


def test_malformed_graphql_is_an_error_not_a_crash(client: Client) -> None:
    body = client.execute("mutation { deploy(input: {commitSha: 5}) { userErrors { code } } }")
    assert "errors" in body and "String" in body["errors"][0]["message"]
    body = client.execute("{ deployments(first: 1000) { totalCount } }")
    assert body["errors"][0]["message"] == "first must be between 1 and 100"


def test_failing_tasks_fail_the_deployment(
    client: Client, git_server: GitServer, repos: dict[str, Any]
) -> None:
    done = deployed(client, git_server, repos, "crashy")
    assert done["state"] == "FAILURE", outcome(done)
    assert done["errorCode"] == "ROLLOUT_FAILED"
    assert "non-zero exit" in done["errorMessage"]
    converge = next(s for s in done["steps"] if s["name"] == "converge")
    assert converge["status"] == "FAILED" and "non-zero exit" in converge["error"]


def test_unhealthy_tasks_fail_the_deployment(
    client: Client, git_server: GitServer, repos: dict[str, Any]
) -> None:
    done = deployed(client, git_server, repos, "sickly")
    assert done["state"] == "FAILURE", outcome(done)
    assert done["errorCode"] == "ROLLOUT_FAILED"
    assert "unhealthy container" in done["errorMessage"]


def test_dockerfile_without_stack_file_and_image_deploy(
    client: Client, git_server: GitServer, repos: dict[str, Any], registry: str
) -> None:
    done = deployed(client, git_server, repos, "solo")
    assert done["state"] == "SUCCESS", outcome(done)
    assert done["stackFile"] == "Dockerfile"
    assert [s["swarmName"] for s in done["services"]] == ["solo_solo"]

    # The Docker Hub case: a prebuilt image deployed to one service, no git.
    image = done["services"][0]["image"]
    queued = deploy(client, image=image, application="imgapp", service="web", version="7")
    assert queued["image"] == image  # already pinned by digest
    assert queued["service"] == "web" and queued["version"] == "7"
    assert [s["name"] for s in queued["steps"]] == ["fetch", "rollout", "converge"]
    final = wait_final(client, queued["id"])
    assert final["state"] == "SUCCESS", outcome(final)
    spec = docker(
        "service", "inspect", "imgapp_web", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}"
    )
    assert spec.strip() == final["services"][0]["image"]


def test_unreachable_docker_is_an_error(
    swarm: str, git_server: GitServer, repos: dict[str, Any], tmp_path: Path
) -> None:
    server = ServerProcess(
        server_env(tmp_path, DEPLOYBOT_DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock"), tmp_path
    )
    client = Client(server.url)
    try:
        errors = client.query(DEPLOY, {"input": {"image": "127.0.0.1:5000/x/y:1"}})["deploy"][
            "userErrors"
        ]
        assert errors[0]["code"] == "DOCKER_UNAVAILABLE"
        done = deployed(client, git_server, repos, "solo")
        assert done["state"] == "ERROR"
        assert done["errorCode"] == "DOCKER_UNAVAILABLE"
    finally:
        client.close()
        server.stop()


def test_converge_timeout_says_what_the_tasks_wait_for(
    swarm: str, registry: str, git_server: GitServer, repos: dict[str, Any], tmp_path: Path
) -> None:
    server = ServerProcess(
        server_env(
            tmp_path,
            DEPLOYBOT_DOCKER_HOST=swarm,
            DEPLOYBOT_REGISTRY=registry,
            DEPLOYBOT_CONVERGE_TIMEOUT="4",
        ),
        tmp_path,
    )
    client = Client(server.url)
    try:
        done = deployed(client, git_server, repos, "stuck")
        assert done["state"] == "FAILURE", outcome(done)
        assert done["errorCode"] == "CONVERGE_TIMEOUT"
        assert "not converged after 4s" in done["errorMessage"]
        assert "no suitable node" in done["errorMessage"]
    finally:
        client.close()
        server.stop()
