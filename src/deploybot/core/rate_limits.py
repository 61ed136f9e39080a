"""Rate limits per caller (seed 002): deploy and rollback per application, status reads,
list reads; each a fixed window of the `limits` library, counted against `Principal.key`.

The backend checks them below the transports, so GraphQL over HTTP and WebSocket, the
raw-log route and the webhook and REST surfaces share one count. On SQLite (one API
process) the counters live in memory; on PostgreSQL they live in the database's
`rate_limit_counter` table, one upsert per check, so several API processes sharing the
database share the limit too.
"""

from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from sqlalchemy import Float, Integer, String, bindparam, text
from sqlalchemy.exc import SQLAlchemyError

from deploybot.config import Settings, parse_rate_limit
from deploybot.db.engine import Database
from deploybot.errors import DeploybotError, ErrorCode

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


_DELETE_KEY = text("DELETE FROM rate_limit_counter WHERE key = :key")


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

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        async with self.db.connection() as conn:
            result = await conn.execute(
                _UPSERT, {"key": key, "amount": amount, "now": now, "expires": now + expiry}
            )
            count = int(result.scalar_one())
            self._writes += 1
            if self._writes % PURGE_EVERY == 0:
                await conn.execute(
                    text("DELETE FROM rate_limit_counter WHERE expires_at < :before"),
                    {"before": now - 3600},
                )
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
        raise DeploybotError(
            ErrorCode.RATE_LIMITED,
            f"rate limit reached: {kind.value}{target} at most {item}; retry in {wait} s",
            retry_after=wait,
        )
