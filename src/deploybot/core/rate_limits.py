"""Rate limits per caller (seed 002): deploy and rollback per application, status reads,
list reads; each a fixed window of the `limits` library, counted against `Principal.key`.

The backend checks them below the transports, so GraphQL over HTTP and WebSocket, the
raw-log route and the webhook and REST surfaces share one count. On SQLite (one API
process) the counters live in memory; on PostgreSQL they live in the database's
`rate_limit_counter` table, one upsert per check, so several API processes sharing the
database share the limit too.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from sqlalchemy import Float, Integer, String, bindparam, text
from sqlalchemy.exc import SQLAlchemyError

from deploybot.config import Settings, parse_rate_limit
from deploybot.db.engine import Database
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.events.postgres import asyncpg_dsn
from deploybot.metrics import RATE_LIMITED

PURGE_EVERY = 1000
"""Counter writes between two purges of long-expired counters (callers come and go)."""


class RateLimitKind(enum.StrEnum):
    DEPLOY = "deploy"
    """deploy and rollback, per application."""
    STATUS = "status"
    """One object's status: application(name), deployment(id), node(id), raw logs."""
    LIST = "list"
    """deployments, releases, applications."""


_UPSERT = text(
    """
    INSERT INTO rate_limit_counter AS c (key, count, expires_at)
    VALUES (:key, :amount, :expires)
    ON CONFLICT (key) DO UPDATE SET
      count = CASE WHEN c.expires_at <= :now THEN excluded.count
                   ELSE c.count + excluded.count END,
      expires_at = CASE WHEN c.expires_at <= :now THEN excluded.expires_at
                        ELSE c.expires_at END
    RETURNING count
    """
).bindparams(
    bindparam("key", type_=String),
    bindparam("amount", type_=Integer),
    bindparam("now", type_=Float),
    bindparam("expires", type_=Float),
)


_UPSERT_PG = """
INSERT INTO rate_limit_counter AS c (key, count, expires_at) VALUES ($1, $2, $4)
ON CONFLICT (key) DO UPDATE SET
  count = CASE WHEN c.expires_at <= $3 THEN excluded.count ELSE c.count + excluded.count END,
  expires_at = CASE WHEN c.expires_at <= $3 THEN excluded.expires_at ELSE c.expires_at END
RETURNING count
"""
"""The same upsert for asyncpg itself: SQLAlchemy's execution layer and pool would cost
more CPU than the statement (as for the history page, `core.pg_history`)."""

_PURGE = text("DELETE FROM rate_limit_counter WHERE expires_at < :before").bindparams(
    bindparam("before", type_=Float)
)
_DELETE_KEY = text("DELETE FROM rate_limit_counter WHERE key = :key")


class _CounterConnection:
    """One asyncpg connection of this process for the counters' upserts, opened on first
    use and again after a failure. Borrowing a pooled connection costs three times the
    upsert's own CPU (the pool's checkout and reset); one connection does ~5,000 upserts
    a second, more than one API process serves requests."""

    def __init__(self, database_url: str) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self.dsn)
            try:
                return await self._conn.fetchval(sql, *args)
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
                self._conn.terminate()
                self._conn = None
                raise

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None


class DatabaseCounterStorage(Storage):
    """A `limits` storage whose fixed-window counters are rows of the deploybot database.

    `incr` is one atomic upsert (the row lock serialises concurrent hits of one key, in
    every process); times are this host's epoch seconds, as `limits` computes them.
    """

    STORAGE_SCHEME = ["deploybot+database"]

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self._writes = 0
        self._upserts = None if db.is_sqlite else _CounterConnection(db.url)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return (SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

    async def close(self) -> None:
        if self._upserts is not None:
            await self._upserts.close()

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        if self._upserts is not None:
            count = int(await self._upserts.fetchval(_UPSERT_PG, key, amount, now, now + expiry))
        else:
            async with self.db.connection() as conn:
                result = await conn.execute(
                    _UPSERT, {"key": key, "amount": amount, "now": now, "expires": now + expiry}
                )
                count = int(result.scalar_one())
        self._writes += 1
        if self._writes % PURGE_EVERY == 0:
            async with self.db.connection() as conn:
                await conn.execute(_PURGE, {"before": now - 3600})
        return count

    async def _row(self, key: str) -> tuple[int, float] | None:
        async with self.db.connection() as conn:
            result = await conn.execute(
                text(
                    "SELECT count, expires_at FROM rate_limit_counter"
                    " WHERE key = :key AND expires_at > :now"
                ),
                {"key": key, "now": time.time()},
            )
            row = result.first()
        return None if row is None else (int(row[0]), float(row[1]))

    async def get(self, key: str) -> int:
        row = await self._row(key)
        return 0 if row is None else row[0]

    async def get_expiry(self, key: str) -> float:
        row = await self._row(key)
        return time.time() if row is None else row[1]

    async def check(self) -> bool:
        try:
            async with self.db.connection() as conn:
                await conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    async def reset(self) -> int | None:
        async with self.db.connection() as conn:
            result = await conn.execute(text("DELETE FROM rate_limit_counter"))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def clear(self, key: str) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                text("DELETE FROM rate_limit_counter WHERE key = :key"), {"key": key}
            )


@dataclass(frozen=True)
class RateLimits:
    """The limits of one process; `hit` raises RATE_LIMITED with the seconds to wait."""

    limiter: FixedWindowRateLimiter | None
    items: dict[RateLimitKind, RateLimitItem]

    @classmethod
    def off(cls) -> RateLimits:
        return cls(None, {})

    @classmethod
    def from_settings(cls, settings: Settings, db: Database) -> RateLimits:
        if not settings.rate_limit_enabled:
            return cls.off()
        configured = {
            RateLimitKind.DEPLOY: parse_rate_limit(settings.rate_limit_deploy),
            RateLimitKind.STATUS: parse_rate_limit(settings.rate_limit_status),
            RateLimitKind.LIST: parse_rate_limit(settings.rate_limit_list),
        }
        items = {kind: item for kind, item in configured.items() if item is not None}
        if not items:
            return cls.off()
        shared = settings.rate_limit_storage == "database" or (
            settings.rate_limit_storage == "auto" and not db.is_sqlite
        )
        storage: Storage = DatabaseCounterStorage(db) if shared else MemoryStorage()
        return cls(FixedWindowRateLimiter(storage), items)

    @property
    def enabled(self) -> bool:
        return self.limiter is not None

    async def close(self) -> None:
        """Close the counters' own database connection (PostgreSQL)."""
        storage = self.limiter.storage if self.limiter is not None else None
        if isinstance(storage, DatabaseCounterStorage):
            await storage.close()

    async def hit(self, kind: RateLimitKind, caller: str, *scope: str) -> None:
        """Count one call of `caller` (a principal's key) against `kind`'s limit."""
        item = self.items.get(kind)
        if item is None or self.limiter is None:
            return
        if await self.limiter.hit(item, kind.value, caller, *scope):
            return
        stats = await self.limiter.get_window_stats(item, kind.value, caller, *scope)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        target = f" of {scope[0]}" if kind is RateLimitKind.DEPLOY and scope else ""
        RATE_LIMITED.labels(kind.value).inc()
        raise DeploybotError(
            ErrorCode.RATE_LIMITED,
            f"rate limit reached: {kind.value}{target} at most {item}; retry in {wait} s",
            retry_after=wait,
        )
