"""Each strategy as Swarm's own task timeline shows it (`GET /tasks` timestamps).

One repository (a web service with a healthcheck, 2 replicas, no published
port so that blue and green can run side by side on one node) is deployed as
a different application per strategy: version A first, then B with the
strategy under test while a TaskTimeline records the tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import docker, remove_stack, service_inspect
from tests.e2e.task_timeline import TaskTimeline
from tests.e2e.test_deploy_swarm import DOCKERFILE, outcome
from tests.e2e.test_rollback import DEPLOY, deployed, steps
from tests.gitserver import GitServer
from tests.servers import Client

APPS = ("ro-rolling", "ro-recreate", "ro-bg", "ro-canary")
REPLICAS = 2


def stack(health_port: int = 8080) -> str:
    return f"""version: "3.8"
services:
  web:
    build: .
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:{health_port}/"]
      interval: 1s
      timeout: 1s
      retries: 1
    deploy:
      replicas: {REPLICAS}
      restart_policy:
        delay: 1s
"""


@pytest.fixture(scope="module")
def repo(git_server: GitServer) -> Iterator[dict[str, Any]]:
    for app in APPS:
        remove_stack(app)
    git_server.create_repo("ro-strategies")
    files = {"Dockerfile": DOCKERFILE, "docker-compose.stack.yml": stack()}
    a = git_server.commit("ro-strategies", {**files, "www/index.html": "A\n"}, tag="ro-v1")
    b = git_server.commit("ro-strategies", {"www/index.html": "B\n"}, tag="ro-v2")
    sick = git_server.commit(
        "ro-strategies",
        {"www/index.html": "C\n", "docker-compose.stack.yml": stack(health_port=9)},
        tag="ro-v3",
    )
    yield {"url": git_server.url("ro-strategies"), "a": a, "b": b, "sick": sick}
    for app in APPS:
        remove_stack(app)


def first_then(
    client: Client, repo: dict[str, Any], app: str, services: list[str], **second: Any
) -> tuple[dict[str, Any], TaskTimeline]:
    """Deploy A (rolling), then B with `second` while recording the services' tasks."""
    source = {"repositoryUrl": repo["url"], "application": app}
    first = deployed(client, DEPLOY, commitSha=repo["a"], **source)
    assert first["state"] == "SUCCESS", outcome(first)
    with TaskTimeline(services) as timeline:
        done = deployed(client, DEPLOY, commitSha=repo["b"], **source, **second)
    return done, timeline


def test_rolling_follows_the_requested_update_config(client: Client, repo: dict[str, Any]) -> None:
    done, timeline = first_then(
        client,
        repo,
        "ro-rolling",
        ["ro-rolling_web"],
        rollingUpdate={
            "parallelism": 1,
            "delay": 2,
            "order": "STOP_FIRST",
            "failureAction": "ROLLBACK",
            "monitor": 1,  # Swarm's default is 5 s: 4 s more to the test
        },
    )
    assert done["state"] == "SUCCESS", outcome(done)
    old = timeline.of("ro-rolling_web", ":ro-v1@")
    new = timeline.of("ro-rolling_web", ":ro-v2@")
    assert len(old) == REPLICAS and len(new) == REPLICAS, timeline.tasks
    # One slot at a time, stop-first: a slot's old task ends before its new one starts,
    # the other slot keeps running meanwhile, and the next batch waits out the delay.
    for task in old:
        twin = next(t for t in new if t.slot == task.slot)
        assert task.ended_at is not None and twin.running_at is not None
        assert task.ended_at <= twin.running_at
    first, second = sorted(new, key=lambda t: t.running_at or 0)
    assert (second.created or 0) - (first.running_at or 0) >= 1.95
    moments = sorted(m for t in old + new for m in (t.running_at, t.ended_at) if m is not None)
    assert min(timeline.running_at(m, old + new) for m in moments) >= REPLICAS - 1
    update: Any = service_inspect("ro-rolling_web")["Spec"]["UpdateConfig"]
    assert update["Parallelism"] == 1 and update["Delay"] == 2 * 10**9
    assert (update["Order"], update["FailureAction"]) == ("stop-first", "rollback")
    assert update["Monitor"] == 10**9


def test_recreate_stops_every_old_task_before_any_new_one_starts(
    client: Client, repo: dict[str, Any]
) -> None:
    done, timeline = first_then(
        client, repo, "ro-recreate", ["ro-recreate_web"], strategy="RECREATE"
    )
    assert done["state"] == "SUCCESS", outcome(done)
    old = timeline.of("ro-recreate_web", ":ro-v1@")
    new = timeline.of("ro-recreate_web", ":ro-v2@")
    assert len(old) == REPLICAS and len(new) == REPLICAS, timeline.tasks
    assert all(t.ended_at is not None for t in old), old
    last_old_end = max(t.ended_at or 0 for t in old)
    first_new_start = min(t.running_at or 0 for t in new)
    print(f"recreate: last old task ended {first_new_start - last_old_end:.2f}s before a new one")
    assert last_old_end <= first_new_start


def test_blue_green_runs_the_whole_new_version_before_anything_old_stops(
    client: Client, repo: dict[str, Any]
) -> None:
    services = ["ro-bg_web", "ro-bg_web-green"]
    done, timeline = first_then(client, repo, "ro-bg", services, strategy="BLUE_GREEN")
    assert done["state"] == "SUCCESS", outcome(done)
    assert [s["name"] for s in done["steps"]][-3:] == ["green", "rollout", "converge"]
    blue = timeline.of("ro-bg_web", ":ro-v1@")
    green = timeline.of("ro-bg_web-green", ":ro-v2@")
    new = timeline.of("ro-bg_web", ":ro-v2@")
    assert len(blue) == REPLICAS and len(green) == REPLICAS, timeline.tasks
    assert len(new) == REPLICAS, timeline.tasks
    # The whole green version ran (healthy: it passed the stability window) beside
    # every blue task before the first blue task stopped.
    first_blue_end = min(t.ended_at or 0 for t in blue)
    assert all(t.ended_at is not None for t in blue)
    assert max(t.running_at or 0 for t in green) <= first_blue_end
    assert timeline.running_at(first_blue_end - 0.001, green) == REPLICAS
    # Never fewer than the desired count running, at any state change of the update.
    everything = blue + green + new
    moments = sorted(m for t in everything for m in (t.running_at, t.ended_at) if m is not None)
    window = [m for m in moments if min(t.created for t in green) <= m <= max(moments)]
    counts = [timeline.running_at(m, everything) for m in window]
    print(f"blue-green: running tasks at each change: {counts}")
    assert min(counts) >= REPLICAS
    update: Any = service_inspect("ro-bg_web")["Spec"]["UpdateConfig"]
    assert update["Order"] == "start-first" and update["Parallelism"] == 0
    assert docker("service", "ls", "-q", "--filter", "name=ro-bg_web-green").strip() == ""


def test_canary_runs_one_new_task_beside_the_old_then_the_rest(
    client: Client, repo: dict[str, Any]
) -> None:
    period = 4.0
    done, timeline = first_then(
        client,
        repo,
        "ro-canary",
        ["ro-canary_web", "ro-canary_web-canary"],
        strategy="CANARY",
        canaryPeriod=period,
        rollingUpdate={"parallelism": 1, "delay": 1, "order": "START_FIRST", "monitor": 1},
    )
    assert done["state"] == "SUCCESS", outcome(done)
    assert steps(done)["canary"]["status"] == "COMPLETED"
    canary = timeline.of("ro-canary_web-canary", ":ro-v2@")
    new = timeline.of("ro-canary_web", ":ro-v2@")
    old = timeline.of("ro-canary_web", ":ro-v1@")
    assert len(canary) == 1 and len(new) == REPLICAS and len(old) == REPLICAS, timeline.tasks
    start = canary[0].running_at
    assert start is not None
    # For the canary period: the old tasks all run, and exactly one new task beside them.
    for step in range(int(period * 4)):
        moment = start + step * 0.25
        assert timeline.running_at(moment, old) == REPLICAS, moment - start
        assert timeline.running_at(moment, canary + new) == 1, moment - start
    # Then the rest, one at a time (parallelism 1, delay 1s, start-first from the input).
    starts = sorted(t.running_at or 0 for t in new)
    assert starts[0] >= start + period - 0.5
    assert starts[1] - starts[0] >= 1.0
    update: Any = service_inspect("ro-canary_web")["Spec"]["UpdateConfig"]
    assert (update["Parallelism"], update["Order"], update["Delay"]) == (1, "start-first", 10**9)
    assert docker("service", "ls", "-q", "--filter", "name=ro-canary_web-canary").strip() == ""


def test_failing_canary_leaves_the_old_version(client: Client, repo: dict[str, Any]) -> None:
    before: Any = service_inspect("ro-canary_web")
    done = deployed(
        client,
        DEPLOY,
        repositoryUrl=repo["url"],
        commitSha=repo["sick"],
        application="ro-canary",
        strategy="CANARY",
        canaryPeriod=3,
    )
    assert done["state"] == "FAILURE", outcome(done)
    assert done["errorCode"] == "HEALTH_CHECK_FAILED"
    assert "canary failed" in done["errorMessage"]
    by_name = steps(done)
    assert by_name["canary"]["status"] == "FAILED"
    assert by_name["rollout"]["status"] == "SKIPPED"
    after: Any = service_inspect("ro-canary_web")
    assert after["Version"] == before["Version"]
    image = before["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    running = docker(
        "service", "ps", "ro-canary_web", "--filter", "desired-state=running",
        "--format", "{{.Image}} {{.CurrentState}}", "--no-trunc",
    ).splitlines()  # fmt: skip
    assert len(running) == REPLICAS and all(line.startswith(image) for line in running), running
    assert docker("service", "ls", "-q", "--filter", "name=ro-canary_web-canary").strip() == ""
