"""End to end on the real Swarm: a signed GitHub push for a repository served by `git
daemon` becomes a deployment that reaches SUCCESS, recording where it came from; a Docker
Hub push deploys the image and calls back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import remove_stack
from tests.gitserver import GitServer
from tests.servers import Client
from tests.webhooks.hooks import (
    DELIVERIES,
    DEPLOYMENT,
    body_of,
    create_hook,
    github_headers,
    github_push,
    payload,
)
from tests.webhooks.receiver import Receiver

APP = "wh-hello"
REPOSITORY = "Codertocat/Hello-World"

DOCKERFILE = """FROM deploybot/busybox:latest
COPY www /www
CMD ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
"""

STACK = """version: "3.8"
services:
  web:
    build: .
    stop_grace_period: 1s
    deploy:
      replicas: 1
      update_config:
        monitor: 1s  # Swarm's 5 s default: 4 s more per update
"""


def wait_final(client: Client, deployment_id: str, timeout: float = 150) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = client.query(DEPLOYMENT, {"id": deployment_id})["deployment"]
        if found["state"] not in ("QUEUED", "IN_PROGRESS"):
            return dict(found)
        assert time.monotonic() < deadline, f"deployment still {found['state']}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def hello(git_server: GitServer) -> Iterator[dict[str, str]]:
    remove_stack(APP)
    git_server.create_repo(APP)
    sha = git_server.commit(
        APP,
        {"Dockerfile": DOCKERFILE, "docker-compose.stack.yml": STACK, "www/index.html": "A\n"},
        message="Update README.md",
    )
    yield {"url": git_server.url(APP), "sha": sha}
    remove_stack(APP)


@pytest.fixture(scope="module")
def github_hook(client: Client, hello: dict[str, str]) -> dict[str, Any]:
    return create_hook(
        client,
        provider="GITHUB",
        repository=REPOSITORY,
        application=APP,
        repositoryUrl=hello["url"],
        branches=["main"],
    )


def test_signed_github_push_deploys_to_success(
    client: Client, hello: dict[str, str], github_hook: dict[str, Any]
) -> None:
    secret, path = github_hook["secret"], github_hook["webhook"]["path"]
    body = body_of(github_push(REPOSITORY, hello["sha"]))
    headers = github_headers(secret, body)

    started = time.monotonic()
    answer = client.http.post(path, content=body, headers=headers)
    took = time.monotonic() - started
    assert answer.status_code == 202, answer.text
    assert took < 2, f"the 202 took {took:.2f}s"
    made = answer.json()["deployment"]

    final = wait_final(client, made["id"])
    assert final["state"] == "SUCCESS", final
    assert final["trigger"] == "WEBHOOK"
    assert final["provider"] == "github"
    assert final["actor"] == "Codertocat"
    assert final["commitSha"] == hello["sha"]
    assert final["originalRequest"]["payload"]["after"] == hello["sha"]
    assert final["originalRequest"]["headers"]["x-github-event"] == "push"
    assert final["mappedRequest"]["repositoryUrl"] == hello["url"]
    assert final["mappedRequest"]["commitSha"] == hello["sha"]
    assert [s["status"] for s in final["steps"]][:3] == ["COMPLETED"] * 3  # fetch, build, push

    # Seed 000's provider-scoped views of it.
    number = made["number"]
    listed = client.http.get(f"/github/{REPOSITORY}/deployments").json()
    assert number in [d["id"] for d in listed]
    one = client.http.get(f"/github/{REPOSITORY}/deployment/{number}").json()
    assert one["state"] == "SUCCESS" and one["commit_sha"] == hello["sha"]
    assert one["original_request"]["payload"]["after"] == hello["sha"]
    assert one["original_request"]["headers"]["x-github-event"] == "push"
    assert one["original_mapped_request"]["commitSha"] == hello["sha"]
    assert one["logs_url"].endswith(f"/github/{REPOSITORY}/deployment/{number}/logs")
    raw = client.http.get(f"/github/{REPOSITORY}/deployment/{number}/logs")
    assert raw.status_code == 200 and "==> fetch" in raw.text
    followed = client.http.get(f"/github/{REPOSITORY}/deployment/{number}/logs?follow=true")
    assert followed.text == raw.text
    assert client.http.get(f"/gitlab/{REPOSITORY}/deployment/{number}").status_code == 404
    assert client.http.get(f"/github/Someone/Else/deployment/{number}").status_code == 404
    by_provider = client.query(
        """query($repo: String!) { deployments(filter: {providers: [GITHUB],
        providerRepository: $repo}) { nodes { number providerRepository } } }""",
        {"repo": REPOSITORY},
    )["deployments"]["nodes"]
    assert {"number": number, "providerRepository": REPOSITORY} in by_provider

    # Redelivered: the same deployment, nothing new.
    again = client.http.post(path, content=body, headers=headers)
    assert again.status_code == 202
    assert again.json()["deployment"]["number"] == made["number"]
    assert again.json()["duplicate"] is True

    # Forged: 401, and no delivery written.
    forged = client.http.post(path, content=body, headers=github_headers("x" * 32, body))
    assert forged.status_code == 401

    # A push to a branch the hook does not deploy: ignored, with the reason.
    other = body_of(github_push(REPOSITORY, hello["sha"], ref="refs/heads/experiment"))
    ignored = client.http.post(path, content=other, headers=github_headers(secret, other))
    assert ignored.status_code == 200
    assert "experiment" in ignored.json()["delivery"]["reason"]

    deliveries = client.query(DELIVERIES, {"id": github_hook["webhook"]["id"]})
    outcomes = [(d["outcome"], d["deployment"]) for d in deliveries["webhookDeliveries"]]
    assert outcomes == [("IGNORED", None), ("DEPLOYED", {"number": made["number"]})]


def test_push_of_a_commit_the_repository_lacks_fails_in_the_runner(
    client: Client, hello: dict[str, str], github_hook: dict[str, Any]
) -> None:
    """The 202 never waits for git: a bad sha is the deployment's FAILURE."""
    secret, path = github_hook["secret"], github_hook["webhook"]["path"]
    body = body_of(github_push(REPOSITORY, "d" * 40))
    answer = client.http.post(path, content=body, headers=github_headers(secret, body))
    assert answer.status_code == 202, answer.text
    final = wait_final(client, answer.json()["deployment"]["id"])
    assert final["state"] == "FAILURE"
    assert final["errorCode"] == "ARTIFACT_NOT_FOUND"


def test_docker_hub_push_deploys_the_image_and_calls_back(
    client: Client, hello: dict[str, str], github_hook: dict[str, Any], registry: str
) -> None:
    """Docker Hub's push of `repo_name:tag` becomes an image deploy of the configured service;
    when it ends, the payload's callback_url (a local server here) gets the final state."""
    built = client.query(
        """{ deployments(first: 1, filter: {applications: ["wh-hello"], states: [SUCCESS]})
        { nodes { version } } }"""
    )["deployments"]["nodes"]
    if not built:  # run alone: build the image first, through the GitHub hook
        body = body_of(github_push(REPOSITORY, hello["sha"]))
        answer = client.http.post(
            github_hook["webhook"]["path"],
            content=body,
            headers=github_headers(github_hook["secret"], body),
        )
        assert wait_final(client, answer.json()["deployment"]["id"])["state"] == "SUCCESS"
        built = [{"version": hello["sha"][:7]}]
    tag = built[0]["version"]
    hub = create_hook(
        client,
        provider="DOCKER_HUB",
        repository="wh/hello-web",
        application=APP,
        deploy={"service": "web", "imageRepository": f"{registry}/{APP}/web"},
    )
    callback = Receiver()
    try:
        data = payload("dockerhub-push.json")
        data["repository"]["repo_name"] = "wh/hello-web"
        data["push_data"]["tag"] = tag
        data["callback_url"] = f"{callback.url}/u/wh/hello-web/hook/2141b5bi5i5b02bec211i4eeih/"
        answer = client.http.post(hub["webhook"]["path"], content=body_of(data))
        assert answer.status_code == 202, answer.text
        final = wait_final(client, answer.json()["deployment"]["id"])
        assert final["state"] == "SUCCESS", final
        assert final["provider"] == "dockerhub" and final["actor"] == "trustedbuilder"
        assert final["mappedRequest"]["image"] == f"{registry}/{APP}/web:{tag}"
        seen = callback.wait_for(lambda got: any(r.status == 200 for r in got))
        posted = seen[-1]
        assert posted.path == "/u/wh/hello-web/hook/2141b5bi5i5b02bec211i4eeih/"
        assert posted.json["state"] == "success"
        assert posted.json["context"] == "deploybot"
        assert posted.json["target_url"].endswith(f"/deployments/{final['number']}/logs")
    finally:
        callback.close()
