"""The `deploybot` command as a user runs it: export-schema, migrate, and a runner in its
own process beside an API process that has none."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from deploybot.db import migrate
from deploybot.schema import schema
from tests.conftest import DOCKER, remove_stack, server_env
from tests.core.test_queue import dead_pid
from tests.e2e.test_deploy_swarm import DEPLOY, outcome, wait_final
from tests.servers import Client, ServerProcess

ROOT = Path(__file__).resolve().parents[1]


def deploybot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploybot", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_export_schema_prints_the_committed_sdl(tmp_path: Path) -> None:
    printed = deploybot("export-schema")
    assert printed.returncode == 0
    assert printed.stdout == schema.as_str() + "\n"
    written = deploybot("export-schema", str(tmp_path / "out.graphql"))
    assert written.returncode == 0
    assert (tmp_path / "out.graphql").read_text() == (ROOT / "schema.graphql").read_text()


def test_migrate_creates_and_reports_the_revision(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    done = deploybot("migrate", "--database-url", url)
    assert done.returncode == 0, done.stderr
    assert f"database at {migrate.heads()[0]}" in done.stdout
    tables = sqlite3.connect(tmp_path / "fresh.db").execute(
        "select name from sqlite_master where type = 'table'"
    )
    assert {"deployment", "log_line", "release"} <= {t[0] for t in tables}


def test_runner_in_its_own_process(swarm: str, registry: str, tmp_path: Path) -> None:
    image = f"{registry}/clitest/sleeper:1"
    subprocess.run(
        [DOCKER, "build", "-q", "-t", image, "-"],
        input=b'FROM deploybot/busybox:latest\nCMD ["sleep", "3600"]\n',
        check=True,
        capture_output=True,
    )
    subprocess.run([DOCKER, "push", "-q", image], check=True, capture_output=True)
    remove_stack("clitest")
    env = server_env(tmp_path, DEPLOYBOT_DOCKER_HOST=swarm)
    api = ServerProcess(env, tmp_path, "--no-runner")
    client = Client(api.url)

    # A deployment left IN_PROGRESS by a runner process that died.
    db = sqlite3.connect(tmp_path / "deploybot.db")
    db.execute(
        "insert into deployment (environment, application, strategy, state, trigger, "
        "\"references\", runner_id, created_at, updated_at) values ('test', 'old', 'ROLLING', "
        "'IN_PROGRESS', 'API', '[]', ?, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        (f"{socket.gethostname()}-{dead_pid()}-dead",),
    )
    db.commit()
    db.close()

    runner = subprocess.Popen(
        [sys.executable, "-m", "deploybot", "runner"],
        env={**os.environ, **env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        payload = client.query(
            DEPLOY, {"input": {"image": image, "application": "clitest", "service": "sleeper"}}
        )["deploy"]
        assert payload["userErrors"] == []
        done = wait_final(client, payload["deployment"]["id"])
        assert done["state"] == "SUCCESS", outcome(done)
        assert done["services"][0]["swarmName"] == "clitest_sleeper"

        old = client.query(
            '{ deployments(filter: {applications: ["old"]}) { nodes { state errorCode } } }'
        )["deployments"]["nodes"]
        assert old == [{"state": "ERROR", "errorCode": "RUNNER_LOST"}]
    finally:
        runner.send_signal(signal.SIGINT)
        output = runner.communicate(timeout=30)[0].decode()
        client.close()
        api.stop()
        remove_stack("clitest")
    assert runner.returncode == 0, output
    assert "runner" in output and "started for environment test" in output


def test_serve_flags_override_the_environment(tmp_path: Path) -> None:
    env = server_env(tmp_path)  # DEPLOYBOT_ENVIRONMENT=test, DEPLOYBOT_WORK_DIR=tmp/work
    database = tmp_path / "flag.db"
    server = ServerProcess(
        env,
        tmp_path,
        "--no-runner",
        "--environment",
        "flagged",
        "--work-dir",
        str(tmp_path / "flag-work"),
        "--database-url",
        f"sqlite+aiosqlite:///{database}",
        "--docker-host",
        f"unix://{tmp_path}/none.sock",
    )
    try:
        client = Client(server.url)
        assert client.http.get("/healthz").json()["environment"] == "flagged"
        errors = client.query(DEPLOY, {"input": {"image": "127.0.0.1:5000/a/b:1"}})["deploy"]
        assert errors["userErrors"][0]["code"] == "DOCKER_UNAVAILABLE"  # the flag's socket
        client.close()
    finally:
        server.stop()
    assert (tmp_path / "flag-work").is_dir() and database.exists()


def test_token_create_list_revoke_straight_on_the_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/tokens.db"
    created = deploybot(
        "token", "create", "--name", "ci", "--scope", "deploy,read:staging/shop*",
        "--scope", "record", "--expires", "2099-01-01T00:00:00", "--database-url", url,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().rsplit(" ", 1)[-1]
    assert token.startswith("dbt_") and created.stdout.startswith("token 1 (ci): ")
    listed = deploybot("token", "list", "--database-url", url)
    assert listed.returncode == 0, listed.stderr
    fields = listed.stdout.strip().split("\t")
    assert fields[:3] == ["1", "ci", token[:12] + "…"]
    assert fields[3] == "deploy,read:staging/shop* record:*/*" and fields[4] == "active"
    assert token not in listed.stdout
    stored = sqlite3.connect(tmp_path / "tokens.db").execute("select * from api_tokens").fetchall()
    assert token not in repr(stored)

    bad = deploybot("token", "create", "--name", "x", "--scope", "fly", "--database-url", url)
    assert bad.returncode == 1 and "unknown action" in bad.stderr
    assert deploybot("token", "revoke", "1", "--database-url", url).returncode == 0
    assert "\trevoked\t" in deploybot("token", "list", "--database-url", url).stdout
    missing = deploybot("token", "revoke", "42", "--database-url", url)
    assert missing.returncode == 1 and "no token 42" in missing.stderr
    audited = sqlite3.connect(tmp_path / "tokens.db").execute(
        "select principal, operation, target, outcome from audit_events order by id"
    )
    assert audited.fetchall() == [
        ("local", "token create", "token:ci", "ok"),
        ("local", "token create", "token:x", "INVALID_INPUT"),
        ("local", "token revoke", "token:1", "ok"),
        ("local", "token revoke", "token:42", "TOKEN_NOT_FOUND"),
    ]
