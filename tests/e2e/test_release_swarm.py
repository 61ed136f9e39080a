"""End to end: deployments onto the real Swarm publish their own releases (seed 003's
automation): component from the repository, train from the branch, version from the tag
or the short sha, release time from the commit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import remove_stack, server_env
from tests.gitserver import GitServer
from tests.servers import Client, ServerProcess

APP = "rl-site"

#: httpd in the background so that the shell, PID 1, exits on SIGTERM at once.
DOCKERFILE = """FROM deploybot/busybox:latest
COPY www /www
CMD ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
"""

FIELDS = """
  id number state version ref commitSha errorCode errorMessage
  steps { name status error }
  release { id number component train version releasedAt data deployment { number } }
"""
DEPLOY = """
mutation($input: DeployInput!) {
  deploy(input: $input) { userErrors { field message code } deployment { id } }
}
"""
GET = "query($id: ID!) { deployment(id: $id) { %s } }" % FIELDS


@pytest.fixture(scope="module")
def server(swarm: str, registry: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """`deploybot serve` with its runner, a registry, and `develop` on the beta train."""
    tmp: Path = tmp_path_factory.mktemp("rl-server")
    process = ServerProcess(
        server_env(
            tmp,
            DEPLOYBOT_DOCKER_HOST=swarm,
            DEPLOYBOT_REGISTRY=registry,
            DEPLOYBOT_RELEASE_TRAINS="main=stable,develop=beta",
            DEPLOYBOT_CONVERGE_TIMEOUT="150",
        ),
        tmp,
    )
    client = Client(process.url)
    yield client
    client.close()
    process.stop()


@pytest.fixture(scope="module")
def site(git_server: GitServer) -> Iterator[dict[str, Any]]:
    remove_stack(APP)
    git_server.create_repo(APP)
    tagged = git_server.commit(
        APP,
        {"Dockerfile": DOCKERFILE, "www/index.html": "one\n"},
        message="first release",
        tag="v1.0.0",
        when=datetime(2026, 3, 3, 12, 0, 5, tzinfo=UTC),
    )
    beta = git_server.commit(
        APP,
        {"www/index.html": "two\n"},
        branch="develop",
        parent_from="main",
        message="try two",
        when=datetime(2026, 3, 4, 8, 30, tzinfo=UTC),
    )
    yield {"url": git_server.url(APP), "tagged": tagged, "beta": beta}
    remove_stack(APP)


def deploy_and_wait(client: Client, timeout: float = 240, **input: Any) -> dict[str, Any]:
    # Swarm's update monitor is 5 s unless asked: 1 s is enough for these sleeping tasks.
    input.setdefault("rollingUpdate", {"monitor": 1})
    payload = client.query(DEPLOY, {"input": input})["deploy"]
    assert payload["userErrors"] == [], payload["userErrors"]
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = client.query(GET, {"id": payload["deployment"]["id"]})["deployment"]
        if found["state"] not in ("QUEUED", "IN_PROGRESS"):
            assert found["state"] == "SUCCESS", found
            return found
        assert time.monotonic() < deadline, f"still {found['state']}: {found}"
        time.sleep(0.2)


def test_deployments_publish_their_releases(server: Client, site: dict[str, Any]) -> None:
    started = time.monotonic()
    first = deploy_and_wait(server, repositoryUrl=site["url"], ref="main")
    release = first["release"]
    assert release is not None, first
    assert (release["component"], release["train"], release["version"]) == (
        APP,
        "stable",
        "v1.0.0",
    )
    assert release["releasedAt"] == "2026-03-03T12:00:05+00:00"  # the commit's time
    assert release["deployment"] == {"number": first["number"]}
    assert release["data"]["commitSha"] == site["tagged"]
    assert release["data"]["ref"] == "main"

    # The same commit again (by sha: the default branch has it): no conflict, same release.
    again = deploy_and_wait(server, repositoryUrl=site["url"], commitSha=site["tagged"])
    assert again["ref"] is None
    assert again["release"]["id"] == release["id"]

    # A commit only on develop, asked for by sha: the branch that has it names the train.
    beta = deploy_and_wait(server, repositoryUrl=site["url"], commitSha=site["beta"])
    assert (beta["release"]["train"], beta["release"]["version"]) == ("beta", site["beta"][:7])
    assert beta["release"]["releasedAt"] == "2026-03-04T08:30:00+00:00"
    print(f"three deploys with their releases: {time.monotonic() - started:.1f}s")

    catalogue = server.query(
        """query($c: [String!]) {
          releases(filter: {components: $c}) { totalCount nodes { train version } }
          latestRelease(component: "rl-site", train: "stable") { version }
        }""",
        {"c": [APP]},
    )
    assert catalogue["releases"]["totalCount"] == 2
    assert catalogue["releases"]["nodes"] == [
        {"train": "beta", "version": site["beta"][:7]},
        {"train": "stable", "version": "v1.0.0"},
    ]
    assert catalogue["latestRelease"] == {"version": "v1.0.0"}

    current = server.query(
        '{ currentVersion(application: "rl-site") { version services { service version hosts } } }'
    )["currentVersion"]
    assert current[0]["version"] == site["beta"][:7]
    assert [s["service"] for s in current[0]["services"]] == [APP]
    assert current[0]["services"][0]["hosts"], current  # the node its task runs on
