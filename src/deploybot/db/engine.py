"""The engine and session factory one process shares.

Sessions are short-lived and per unit of work (graphql-core resolves sibling
fields concurrently, so one shared AsyncSession would be a bug).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the runner writes; busy_timeout waits out the
    # single writer lock instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """Owns the async engine and hands out sessions."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 20) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {
            "echo": echo,
            "json_serializer": _json_dumps,
            "json_deserializer": orjson.loads,
        }
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
            if ":memory:" in url:
                kwargs["poolclass"] = NullPool
        else:
            # A fixed pool: overflow connections would be opened and closed under load,
            # and a new PostgreSQL connection costs far more than waiting for a free one.
            kwargs.update(pool_size=pool_size, max_overflow=0, pool_timeout=30)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Reads need no transaction: autocommit saves the BEGIN and ROLLBACK round trips.
        self.read_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        if self.is_sqlite and ":memory:" not in url:
            # On SQLite, a pool of its own whose connections stay in autocommit: switching a
            # pooled connection's isolation level cost a statement each way (at checkout
            # and checkin) and a rollback, each a trip to aiosqlite's thread and back, on
            # every read; now a read is its statement's trips alone.
            self.read_engine = create_async_engine(
                url,
                **kwargs,
                isolation_level="AUTOCOMMIT",
                pool_reset_on_return=None,
                skip_autocommit_rollback=True,
            )
            event.listen(self.read_engine.sync_engine, "connect", _sqlite_pragmas)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection for reads: no ORM session on the hot paths."""
        async with self.read_engine.connect() as connection:
            yield connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine.sync_engine.pool is not self.engine.sync_engine.pool:
            await self.read_engine.dispose()
