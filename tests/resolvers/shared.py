"""A server per database kind shared by a module's tests, for the modules whose tests name
their applications (components, ...) uniquely and ask about those alone; the package's
`api` fixture gives a test needing an empty database a server of its own.

A module imports `api`, `database` and `empty_database_url` from here (`both_databases`
then runs its tests once per kind, grouped)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from deploybot.db import migrate
from deploybot.db.engine import Database
from tests.conftest import _create_pg_database, server_env
from tests.servers import Client, ServerProcess


@pytest.fixture(scope="module")
async def empty_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """One database of each kind for a module whose tests record applications of their own
    and ask about those alone: one server each rather than one per test."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('shared-db')}/deploybot.db"
    else:
        yield await _create_pg_database()


@pytest.fixture(scope="module")
async def database(empty_database_url: str) -> AsyncIterator[Database]:
    db = Database(empty_database_url)
    await migrate.upgrade(db)
    yield db
    await db.dispose()


@pytest.fixture(scope="module")
def api(
    database: Database, empty_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Client]:
    """`deploybot serve` without a runner over the module's database of that kind."""
    tmp = tmp_path_factory.mktemp("shared-api")
    server = ServerProcess(
        server_env(tmp, DEPLOYBOT_DATABASE_URL=empty_database_url), tmp, "--no-runner"
    )
    client = Client(server.url)
    yield client
    client.close()
    server.stop()
