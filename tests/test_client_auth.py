"""The client's exit code 8 when the server refuses the token: none, an unknown one, or
one whose grants do not cover the request (a real server with token authentication);
rate-limited requests and refused webhooks as `/metrics` counts them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import server_env
from tests.servers import ADMIN_TOKEN, ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("client-auth")
    env = server_env(
        tmp, DEPLOYBOT_RATE_LIMIT_ENABLED="true", DEPLOYBOT_RATE_LIMIT_STATUS="1/minute"
    )
    process = ServerProcess(env, tmp, "--no-runner")
    yield process
    process.stop()


def client(
    server: ServerProcess, token: str | None, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DEPLOYBOT_TOKEN"}
    env["DEPLOYBOT_URL"] = server.url
    if token is not None:
        env["DEPLOYBOT_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "deploybot", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def read_only_token(server: ServerProcess) -> str:
    env = {**os.environ, **server_env(Path(server.workdir))}
    created = subprocess.run(
        [sys.executable, "-m", "deploybot", "token", "create", "--name", "cl-reader",
         "--scope", "read"],
        capture_output=True, text=True, env=env, cwd=server.workdir, timeout=120, check=True,
    )  # fmt: skip
    return next(w for w in created.stdout.split() if w.startswith("dbt_"))


def test_refused_tokens_exit_8(server: ServerProcess) -> None:
    without = client(server, None, "history")
    assert without.returncode == 8, without.stderr
    assert "authentication failed: 401" in without.stderr
    unknown = client(server, "dbt_not-a-token", "deploy", "--image", "x:1", "--wait")
    assert unknown.returncode == 8 and "401" in unknown.stderr
    assert "dbt_not-a-token" not in unknown.stderr + unknown.stdout
    reader = read_only_token(server)
    assert client(server, reader, "history").returncode == 0
    refused = client(server, reader, "deploy", "--image", "x:1", "--application", "cl-app")
    assert refused.returncode == 8, refused.stdout + refused.stderr
    assert "FORBIDDEN" in refused.stderr
    follow = client(server, "dbt_not-a-token", "logs", "1", "-f")
    assert follow.returncode == 8


def test_rate_limited_requests_and_refused_webhooks_are_counted(server: ServerProcess) -> None:
    first = client(server, ADMIN_TOKEN, "status", "cl-nothing")
    assert first.returncode == 10  # no such application (one status read)
    limited = client(server, ADMIN_TOKEN, "status", "cl-nothing")
    assert limited.returncode == 6 and "RATE_LIMITED" in limited.stderr
    hook = httpx.post(f"{server.url}/hooks/github/999999", content=b"{}", timeout=30)
    assert hook.status_code == 404
    scraped = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert 'deploybot_rate_limited_requests_total{limit="status"} 1.0' in scraped
    assert (
        'deploybot_webhook_deliveries_total{outcome="webhook_not_found",provider="github"} 1.0'
        in scraped
    )
