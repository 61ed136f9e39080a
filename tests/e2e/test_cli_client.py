"""End to end: the `deploybot` client commands as a CI job runs them (a subprocess, no
terminal) against a running server deploying onto the real Swarm; and what `/metrics`
says afterwards."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import remove_stack
from tests.gitserver import GitServer
from tests.servers import ADMIN_TOKEN, Client, ServerProcess
from tests.tcpproxy import DroppingProxy

APP = "cl-cli"
DOCKERFILE = "FROM deploybot/busybox:latest\nCOPY www /www\n"
GOOD_STACK = """services:
  app:
    build: .
    command: ["sh", "-c", "echo up $$(cat /www/v); while true; do sleep 1; done"]
    stop_grace_period: 1s
    deploy:
      update_config:
        monitor: 1s  # Swarm's 5 s default: 4 s more per update
"""
CRASHING_STACK = """services:
  app:
    build: .
    command: ["sh", "-c", "echo crashing; exit 3"]
    stop_grace_period: 1s
    deploy:
      restart_policy:
        delay: 1s
"""


def deploybot(
    server: ServerProcess | str, *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """`deploybot ARGS` as a CI job runs it: no terminal, the server in DEPLOYBOT_URL."""
    url = server if isinstance(server, str) else server.url
    return subprocess.run(
        [sys.executable, "-m", "deploybot", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "DEPLOYBOT_URL": url, "DEPLOYBOT_TOKEN": ADMIN_TOKEN, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        check=False,
    )


def no_control_characters(text: str) -> bool:
    return not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text)


@pytest.fixture(scope="module")
def repo(git_server: GitServer) -> Iterator[dict[str, str]]:
    remove_stack(APP)
    git_server.create_repo(APP)
    good = git_server.commit(
        APP,
        {"Dockerfile": DOCKERFILE, "docker-compose.stack.yml": GOOD_STACK, "www/v": "one\n"},
        message="good",
    )
    crashing = git_server.commit(
        APP, {"docker-compose.stack.yml": CRASHING_STACK}, message="crashing"
    )
    yield {"url": git_server.url(APP), "good": good, "crashing": crashing}
    remove_stack(APP)


def test_deploy_wait_exits_0_on_success_with_plain_progress_and_logs(
    deploy_server: ServerProcess, repo: dict[str, str]
) -> None:
    done = deploybot(
        deploy_server, "deploy", "--repo", repo["url"], "--sha", repo["good"], "--wait", "--logs"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert no_control_characters(out), repr(out)
    assert re.search(r"^deployment #\d+ QUEUED: http://", out, re.M)
    assert re.search(r"^deployment #\d+: 100% SUCCESS", out, re.M), out
    assert re.search(r"\[build/app\] Step 1/\d : FROM deploybot/busybox", out), out
    assert f"{APP} on test version {repo['good'][:7]}: SUCCESS in" in out


def test_a_failed_rollout_never_exits_0(deploy_server: ServerProcess, repo: dict[str, str]) -> None:
    rolled = deploybot(
        deploy_server, "deploy", "--repo", repo["url"], "--sha", repo["crashing"], "--wait",
        "--output", "json",
    )  # fmt: skip
    assert rolled.returncode == 3, rolled.stdout + rolled.stderr
    final = json.loads(rolled.stdout)
    assert final["state"] == "ROLLED_BACK" and final["errorCode"] == "ROLLOUT_FAILED"
    failed = deploybot(
        deploy_server, "deploy", "--repo", repo["url"], "--sha", repo["crashing"], "--wait",
        "--no-rollback-on-failure",
    )  # fmt: skip
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert ": FAILURE in" in failed.stdout and "ROLLOUT_FAILED" in failed.stdout
    assert "step converge failed" in failed.stdout
    again = deploybot(
        deploy_server, "deploy", "--repo", repo["url"], "--sha", repo["good"], "--wait"
    )
    assert again.returncode == 0, again.stdout + again.stderr


def test_refused_requests_print_their_codes(
    deploy_server: ServerProcess, repo: dict[str, str]
) -> None:
    bad_sha = deploybot(deploy_server, "deploy", "--repo", repo["url"], "--sha", "zz", "--wait")
    assert bad_sha.returncode == 6
    assert "error: INVALID_INPUT (commitSha):" in bad_sha.stderr
    elsewhere = deploybot(
        deploy_server, "deploy", "--repo", repo["url"], "--ref", "main", "--environment", "prod",
        "-o", "json",
    )  # fmt: skip
    assert elsewhere.returncode == 6
    assert json.loads(elsewhere.stdout)["userErrors"][0]["code"] == "WRONG_ENVIRONMENT"
    missing = deploybot(deploy_server, "logs", "999999")
    assert missing.returncode == 10 and "DEPLOYMENT_NOT_FOUND" in missing.stderr
    unreachable = deploybot("http://127.0.0.1:9", "history")
    assert unreachable.returncode == 9 and "cannot reach" in unreachable.stderr
    usage = deploybot(deploy_server, "deploy", "--strategy")
    assert usage.returncode == 2


def test_status_history_logs_and_cancel(
    deploy_server: ServerProcess, client: Client, repo: dict[str, str]
) -> None:
    status = deploybot(deploy_server, "status", APP)
    assert status.returncode == 0, status.stderr
    assert re.search(r"state\s+HEALTHY", status.stdout), status.stdout
    assert re.search(rf"version\s+{repo['good'][:7]}", status.stdout)
    assert no_control_characters(status.stdout)
    as_json = json.loads(deploybot(deploy_server, "status", APP, "-o", "json").stdout)
    assert as_json["currentVersion"] == repo["good"][:7] and as_json["replicas"]["ready"] == 1

    history = deploybot(deploy_server, "history", "-a", APP, "--state", "ROLLED_BACK")
    assert history.returncode == 0
    rows = history.stdout.splitlines()
    assert rows[0].split()[:4] == ["#", "application", "environment", "state"]
    assert len(rows) == 2 and "ROLLED_BACK" in rows[1] and APP in rows[1]
    listed = json.loads(deploybot(deploy_server, "history", "-a", APP, "-o", "json").stdout)
    assert [d["state"] for d in listed][:3] == ["SUCCESS", "FAILURE", "ROLLED_BACK"]
    assert {d["trigger"] for d in listed} == {"CLI"}  # the client introduces itself

    newest = listed[0]
    logs = deploybot(deploy_server, "logs", str(newest["number"]))
    assert logs.returncode == 0 and "[build/app]" in logs.stdout
    stored = client.query(
        "query($id: ID!) { deployment(id: $id) { logs { totalCount } } }", {"id": newest["id"]}
    )["deployment"]["logs"]["totalCount"]
    assert len(logs.stdout.splitlines()) == stored
    lines = json.loads(deploybot(deploy_server, "logs", newest["id"], "-o", "json").stdout)
    assert [line["sequence"] for line in lines] == list(range(1, stored + 1))

    finished = deploybot(deploy_server, "cancel", str(newest["number"]))
    assert finished.returncode == 6 and "DEPLOYMENT_FINISHED" in finished.stderr


def test_timeout_then_logs_follow_resumes_after_a_dropped_socket(
    deploy_server: ServerProcess, client: Client, repo: dict[str, str]
) -> None:
    slow = deploybot(
        deploy_server, "deploy", "--repo", repo["url"], "--sha", repo["good"],
        "--pre-deploy", "echo hook starts; sleep 10; echo hook ends",
        "--wait", "--timeout", "4",
    )  # fmt: skip
    assert slow.returncode == 7, slow.stdout + slow.stderr
    assert "--timeout of 4s ran out" in slow.stderr
    number = re.search(r"deployment #(\d+) QUEUED", slow.stdout)
    assert number is not None, slow.stdout + slow.stderr

    proxy = DroppingProxy(deploy_server.port)
    try:
        follower = subprocess.Popen(
            [sys.executable, "-m", "deploybot", "logs", number[1], "-f", "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "DEPLOYBOT_URL": proxy.url, "DEPLOYBOT_TOKEN": ADMIN_TOKEN},
        )
        assert follower.stdout is not None
        seen: list[dict[str, Any]] = []
        for raw in follower.stdout:  # drop the socket once the hook has started
            seen.append(json.loads(raw))
            if "hook starts" in seen[-1]["text"]:
                proxy.drop_all()
                break
        seen.extend(json.loads(raw) for raw in follower.stdout)
        assert follower.wait(120) == 0, follower.stderr.read() if follower.stderr else ""
        stderr = follower.stderr.read() if follower.stderr else ""
    finally:
        proxy.close()
    assert proxy.dropped >= 2 and "connection lost" in stderr, stderr
    final = client.query(
        "query($id: ID!) { deployment(id: $id) { state logs { totalCount } } }",
        {"id": number[1]},
    )["deployment"]
    assert final["state"] == "SUCCESS"
    assert [line["sequence"] for line in seen] == list(range(1, final["logs"]["totalCount"] + 1))
    assert any("hook ends" in line["text"] for line in seen)


def test_cancelling_a_waited_deployment_exits_5(
    deploy_server: ServerProcess, repo: dict[str, str]
) -> None:
    waiting = subprocess.Popen(
        [sys.executable, "-m", "deploybot", "deploy", "--repo", repo["url"], "--sha",
         repo["good"], "--pre-deploy", "echo waiting; sleep 60", "--wait", "--logs"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DEPLOYBOT_URL": deploy_server.url, "DEPLOYBOT_TOKEN": ADMIN_TOKEN},
    )  # fmt: skip
    assert waiting.stdout is not None
    number = None
    for line in waiting.stdout:
        found = re.match(r"deployment #(\d+) QUEUED", line)
        number = number or (found[1] if found else None)
        # The hook's own output is read when its job ends; the runner's line says it began.
        if "[system]" in line and "pre-deploy hook 1: echo waiting" in line:
            break
    assert number is not None
    cancelled = deploybot(deploy_server, "cancel", number)
    assert cancelled.returncode == 0 and "asked to stop" in cancelled.stdout, cancelled.stderr
    assert waiting.wait(60) == 5
    assert "CANCELLED" in waiting.stdout.read()


def metric(text: str, sample_name: str, /, **labels: str) -> float:
    """The value of one sample of the Prometheus text `text`."""
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample.split("{")[0] != sample_name:
            continue
        if all(f'{key}="{val}"' in sample for key, val in labels.items()):
            return float(value)
    raise AssertionError(f"no sample {sample_name} {labels}")


def test_metrics_after_the_deployments(deploy_server: ServerProcess) -> None:
    deadline = time.monotonic() + 10
    while True:  # the last deployment's follower may still be finishing
        response = httpx.get(f"{deploy_server.url}/metrics", timeout=10)  # open by default
        assert response.status_code == 200
        text = response.text
        if metric(text, "deploybot_running_deployments", environment="test") == 0:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert response.headers["content-type"].startswith("text/plain")
    by = {"environment": "test", "application": APP, "trigger": "CLI"}
    assert metric(text, "deploybot_deployments", state="SUCCESS", **by) == 1
    assert metric(text, "deploybot_deployments", state="INACTIVE", **by) >= 2
    assert metric(text, "deploybot_deployments", state="ROLLED_BACK", **by) == 1
    assert metric(text, "deploybot_deployments", state="FAILURE", **by) == 1
    assert metric(text, "deploybot_queue_depth", environment="test") == 0
    assert (
        metric(
            text, "deploybot_deployment_duration_seconds_count", application=APP, state="SUCCESS"
        )
        >= 3
    )
    assert (
        metric(
            text,
            "deploybot_deployment_duration_seconds_count",
            application=APP,
            state="ROLLED_BACK",
        )
        == 1
    )
    assert metric(text, "deploybot_step_duration_seconds_count", step="build") >= 4
    assert metric(text, "deploybot_log_lines_written_total") > 20
    assert metric(text, "deploybot_graphql_operations_total", name="Deploy", type="mutation") >= 6
    assert (
        metric(text, "deploybot_graphql_operations_total", name="Progress", type="subscription")
        >= 5
    )
    assert metric(text, "deploybot_graphql_operation_duration_seconds_count", name="Deploy") >= 6
    assert metric(text, "deploybot_open_websockets") == 0
    assert metric(text, "deploybot_active_subscriptions") == 0
    for defined in ("deploybot_webhook_deliveries_total", "deploybot_rate_limited_requests_total"):
        assert f"# TYPE {defined} counter" in text


def test_rollback_wait_restores_the_previous_success(
    deploy_server: ServerProcess, repo: dict[str, str]
) -> None:
    unknown = deploybot(deploy_server, "rollback", APP, "--version", "no-such-version")
    assert unknown.returncode == 10
    assert "error: DEPLOYMENT_NOT_FOUND (version): no successful deployment" in unknown.stderr
    restored = deploybot(deploy_server, "rollback", APP, "--wait", "-o", "json")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    final = json.loads(restored.stdout)
    assert final["state"] == "SUCCESS" and final["trigger"] == "ROLLBACK"
