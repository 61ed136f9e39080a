"""A running `deploybot serve` (no runner) on SQLite and on PostgreSQL, shared by the REST
tests of the package; each test names its applications uniquely (`unique`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import _create_pg_database, server_env
from tests.servers import AUTH_HEADERS, ServerProcess


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def rest_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """SPEED's /start records deployments for an external runner here (no runner runs)."""
    tmp = tmp_path_factory.mktemp(f"rest-{request.param}")
    env = server_env(tmp, DEPLOYBOT_SPEED_RUNNER="external")
    if request.param == "postgresql":
        env["DEPLOYBOT_DATABASE_URL"] = asyncio.run(_create_pg_database())
    server = ServerProcess(env, tmp, "--no-runner")
    yield server
    server.stop()


@pytest.fixture
def http(rest_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=rest_server.url, timeout=30, headers=AUTH_HEADERS) as client:
        yield client


@pytest.fixture
def unique() -> str:
    """A name prefix of this test's own (`rs-` plus random hex)."""
    return f"rs-{uuid.uuid4().hex[:8]}"
