"""The HTTP surface outside GraphQL: health, errors as JSON, a fresh database on first start."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import server_env
from tests.servers import AUTH_HEADERS, ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("app")
    process = ServerProcess(server_env(tmp), tmp, "--no-runner")
    yield process
    process.stop()


def test_first_start_creates_and_migrates_the_database(server: ServerProcess) -> None:
    db = Path(server.workdir) / "deploybot.db"
    tables = {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master")}
    assert {"deployment", "alembic_version"} <= tables
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "environment": "test"}


def test_unknown_routes_and_methods_answer_json(server: ServerProcess) -> None:
    missing = httpx.get(f"{server.url}/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    wrong = httpx.delete(f"{server.url}/healthz")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_graphiql_is_served(server: ServerProcess) -> None:
    page = httpx.get(f"{server.url}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


def test_a_broken_request_body_is_a_4xx(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.url}/graphql",
        content=b"{not json",
        headers={"Content-Type": "application/json", **AUTH_HEADERS},
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "BAD_REQUEST",
        "message": "Unable to parse request body as JSON",
    }
    empty = httpx.post(f"{server.url}/graphql", json={"nope": 1}, headers=AUTH_HEADERS)
    assert empty.status_code == 400
    assert empty.json()["error"]["message"] == "No GraphQL query found in the request"
