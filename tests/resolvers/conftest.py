"""A running server over each test's own database, for the API-level tests of this package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploybot.db.engine import Database
from tests.conftest import server_env
from tests.servers import Client, ServerProcess


@pytest.fixture
def api(database: Database, empty_database_url: str, tmp_path: Path) -> Iterator[Client]:
    """`deploybot serve` without a runner over the test's (migrated) database."""
    server = ServerProcess(
        server_env(tmp_path, DEPLOYBOT_DATABASE_URL=empty_database_url), tmp_path, "--no-runner"
    )
    client = Client(server.url)
    yield client
    client.close()
    server.stop()
