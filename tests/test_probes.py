"""`/readyz`, `/metrics` access and JSON logs with request ids, on real server processes
(SQLite files and a throwaway PostgreSQL database)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from deploybot.db import migrate
from deploybot.db.engine import Database
from tests.conftest import POSTGRES_ADMIN_URL, _create_pg_database, server_env
from tests.servers import ServerProcess, auth_headers, free_port


def readiness(server: ServerProcess) -> tuple[int, dict[str, object]]:
    response = httpx.get(f"{server.url}/readyz", timeout=30)
    return response.status_code, response.json()


def test_docker_is_checked_where_a_runner_runs(tmp_path: Path) -> None:
    env = server_env(tmp_path, DEPLOYBOT_DOCKER_HOST="unix:///nonexistent.sock")
    with_runner = ServerProcess(env, tmp_path)
    try:
        status, body = readiness(with_runner)
        assert status == 503 and body["failing"] == ["docker"], body
        assert body["checks"]["database"]["ok"] is True  # type: ignore[index]
        assert "nonexistent.sock" in body["checks"]["docker"]["message"]  # type: ignore[index]
    finally:
        with_runner.stop()


def healthz_status(server: ServerProcess) -> int:
    return httpx.get(f"{server.url}/healthz", timeout=30).status_code


async def test_not_ready_below_the_head_migration(tmp_path: Path) -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    head = script.get_revision(migrate.heads()[0])
    assert head is not None and isinstance(head.down_revision, str)
    first = head.down_revision  # one migration behind (the tokens' tables exist already)
    url = f"sqlite+aiosqlite:///{tmp_path}/old.db"
    db = Database(url)
    await migrate.upgrade(db, first)
    await db.dispose()
    server = ServerProcess(server_env(tmp_path, DEPLOYBOT_DATABASE_URL=url), tmp_path,
                           "--no-runner", "--no-migrate")  # fmt: skip
    try:
        status, body = readiness(server)
    finally:
        server.stop()
    assert status == 503 and body["failing"] == ["database"]
    message = body["checks"]["database"]["message"]  # type: ignore[index]
    assert f"at migration {first}, not at the head {migrate.heads()[0]}" == message


async def test_not_ready_when_the_postgresql_database_is_gone(tmp_path: Path) -> None:
    url = await _create_pg_database()  # a throwaway database of this test's own
    server = ServerProcess(server_env(tmp_path, DEPLOYBOT_DATABASE_URL=url), tmp_path,
                           "--no-runner")  # fmt: skip
    try:
        assert readiness(server)[0] == 200
        admin = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                name = url.rsplit("/", 1)[1]
                await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        finally:
            await admin.dispose()
        status, body = readiness(server)
        assert status == 503 and body["failing"] == ["database"], body
        assert body["checks"]["database"]["message"].startswith("unreachable")  # type: ignore[index]
        assert healthz_status(server) == 200  # the process still answers
    finally:
        server.stop()


@pytest.fixture
def json_server(tmp_path: Path) -> ServerProcess:
    env = server_env(tmp_path, DEPLOYBOT_LOG_FORMAT="json", DEPLOYBOT_METRICS_ACCESS="token")
    return ServerProcess(env, tmp_path, "--no-runner")


def test_json_logs_carry_the_request_id_sent_back(json_server: ServerProcess) -> None:
    try:
        status, body = readiness(json_server)  # no runner: Docker is not its business
        assert status == 200 and body["status"] == "ready" and body["failing"] == []
        assert list(body["checks"]) == ["database"]  # type: ignore[arg-type]
        mine = httpx.post(
            f"{json_server.url}/graphql",
            json={"query": "query Count { deployments(first: 1) { totalCount } }"},
            headers={"X-Request-Id": "ci-job-42.step-3", **auth_headers()},
        )
        assert mine.headers["x-request-id"] == "ci-job-42.step-3"
        fresh = httpx.get(f"{json_server.url}/healthz")
        assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])
        unusable = httpx.get(f"{json_server.url}/healthz", headers={"X-Request-Id": "a b\tc"})
        assert re.fullmatch(r"[0-9a-f]{32}", unusable.headers["x-request-id"])
        refused = httpx.get(f"{json_server.url}/metrics")  # metrics_access=token, no token
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "UNAUTHENTICATED"
        scraped = httpx.get(f"{json_server.url}/metrics", headers=auth_headers())
        assert scraped.status_code == 200 and "deploybot_queue_depth" in scraped.text
    finally:
        json_server.stop()
    entries = [json.loads(line) for line in json_server.log().splitlines() if line.strip()]
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    by_id = {e.get("request_id"): e["message"] for e in access}
    assert "POST /graphql" in by_id["ci-job-42.step-3"]
    assert "GET /healthz" in by_id[fresh.headers["x-request-id"]]
    assert "GET /metrics" in by_id[refused.headers["x-request-id"]]


def test_a_separate_runner_serves_its_own_metrics(tmp_path: Path) -> None:
    port = free_port()
    runner = subprocess.Popen(
        [sys.executable, "-m", "deploybot", "runner", "--metrics-port", str(port)],
        env={**os.environ, **server_env(tmp_path)},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                break
            except httpx.HTTPError:
                assert runner.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
        assert "deploybot_log_lines_written_total 0.0" in scraped
        assert "# TYPE deploybot_step_duration_seconds histogram" in scraped
    finally:
        runner.send_signal(signal.SIGINT)
        runner.wait(30)
