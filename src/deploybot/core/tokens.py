"""API tokens: `dbt_` + 32 random bytes (url-safe base64), shown once at creation.

Only the token's SHA-256 digest and a short prefix (to recognise it in a list) are
stored, as GitHub and Portainer do: a database dump gives nobody a usable token.
A request looks its token up by digest through `TokenCache`, so it does not pay a
database round trip per call; a revocation is seen within the cache's TTL.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from deploybot.access import Grant, GrantError, Principal, parse_grants
from deploybot.db.engine import Database
from deploybot.db.models import ApiToken, token_table
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.times import utcnow

TOKEN_PREFIX = "dbt_"
TOKEN_BYTES = 32
SHOWN_PREFIX = 12
"""Characters of a token kept to recognise it (`dbt_` and 8 random ones)."""
LAST_USED_EVERY = timedelta(minutes=1)
"""`last_used_at` is written at most this often per token (a write per request would
serialise every request on SQLite)."""


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token_text() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True)
class TokenRecord:
    """A token as listed: everything but the secret."""

    id: int
    name: str
    prefix: str
    grants: tuple[str, ...]
    expires_at: datetime | None
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def principal(self) -> Principal:
        return Principal(
            name=self.name,
            grants=parse_grants(self.grants),
            token_id=self.id,
            key=f"token:{self.id}",
        )


@dataclass(frozen=True)
class CreatedToken:
    token: str
    """The token's text: shown once, never stored."""
    record: TokenRecord


def _record(row: Any) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        grants=tuple(row.grants or ()),
        expires_at=row.expires_at,
        created_by=row.created_by,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def check_grants(scopes: Sequence[str], *, field: str = "scopes") -> tuple[Grant, ...]:
    """The grants of `scopes`, or INVALID_INPUT naming the one that does not parse."""
    if not scopes:
        raise DeploybotError(
            ErrorCode.INVALID_INPUT, "a token needs at least one scope", field=field
        )
    try:
        return parse_grants(scopes)
    except GrantError as exc:
        raise DeploybotError(ErrorCode.INVALID_INPUT, str(exc), field=field) from None


async def create_token(
    db: Database,
    name: str,
    scopes: Sequence[str],
    *,
    expires_at: datetime | None = None,
    created_by: str | None = None,
    token: str | None = None,
) -> CreatedToken:
    """A new token (`token`: a fixed text, e.g. `DEPLOYBOT_ADMIN_TOKEN`, else a random one)."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise DeploybotError(ErrorCode.INVALID_INPUT, "name must be 1-200 characters", field="name")
    grants = check_grants(scopes)
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)  # a time without an offset is UTC
    if expires_at is not None and expires_at <= utcnow():
        raise DeploybotError(
            ErrorCode.INVALID_INPUT, "expiresAt must be in the future", field="expiresAt"
        )
    text = token or new_token_text()
    if len(text) < 16:
        raise DeploybotError(ErrorCode.INVALID_INPUT, "a token must be at least 16 characters")
    row = ApiToken(
        name=name,
        prefix=text[:SHOWN_PREFIX],
        digest=digest_of(text),
        grants=[str(g) for g in grants],
        expires_at=expires_at,
        created_by=created_by,
        created_at=utcnow(),
    )
    async with db.transaction() as session:
        session.add(row)
        await session.flush()
    return CreatedToken(text, _record(row))


async def list_tokens(db: Database, *, include_revoked: bool = True) -> list[TokenRecord]:
    query = select(token_table).order_by(token_table.c.id)
    if not include_revoked:
        query = query.where(token_table.c.revoked_at.is_(None))
    async with db.connection() as conn:
        rows = (await conn.execute(query)).all()
    return [_record(r) for r in rows]


async def count_tokens(db: Database) -> int:
    async with db.connection() as conn:
        return int((await conn.execute(select(func.count()).select_from(token_table))).scalar_one())


async def revoke_token(db: Database, token_id: int) -> TokenRecord:
    """Revoke (idempotent: revoking a revoked token keeps its first revocation time)."""
    async with db.transaction() as session:
        await session.execute(
            update(token_table)
            .where(token_table.c.id == token_id, token_table.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        row = (
            await session.execute(select(token_table).where(token_table.c.id == token_id))
        ).first()
    if row is None:
        raise DeploybotError(ErrorCode.TOKEN_NOT_FOUND, f"no token {token_id}", field="id")
    return _record(row)


async def ensure_token(db: Database, name: str, scopes: Sequence[str], token: str) -> TokenRecord:
    """The token with this text, created if the database does not know it (a fixed admin
    token from the settings: stored digested like any other)."""
    found = await token_by_digest(db, digest_of(token))
    if found is not None:
        return found
    return (await create_token(db, name, scopes, token=token, created_by="settings")).record


async def token_by_digest(db: Database, digest: str) -> TokenRecord | None:
    async with db.connection() as conn:
        row = (
            await conn.execute(select(token_table).where(token_table.c.digest == digest))
        ).first()
    return _record(row) if row is not None else None


async def touch(db: Database, token_id: int, now: datetime) -> None:
    """Record a use (the caller keeps this to once a minute per token)."""
    async with db.transaction() as session:
        await session.execute(
            update(token_table).where(token_table.c.id == token_id).values(last_used_at=now)
        )


class TokenCache:
    """Token text → principal, for `ttl` seconds (hits and misses alike).

    A revoked or expired token stops working within `ttl`; the WebSocket transport
    re-checks its connection's token through the same cache.
    """

    def __init__(self, db: Database, *, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self.db = db
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, TokenRecord | None, Principal | None]] = {}
        self._touched: dict[int, datetime] = {}
        self._lookups: dict[str, asyncio.Future[TokenRecord | None]] = {}

    def clear(self) -> None:
        self._entries.clear()

    async def authenticate(self, token: str) -> Principal | None:
        """The principal of a valid token; None for unknown, revoked or expired ones."""
        if not token or len(token) > 500:
            return None
        digest = digest_of(token)
        now_mono = time.monotonic()
        cached = self._entries.get(digest)
        if cached is None or cached[0] < now_mono:
            record = await self._lookup(digest)
            cached = self._entries.get(digest)
            if cached is not None and cached[1] is record:
                principal = cached[2]
            else:
                principal = record.principal() if record is not None else None
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[digest] = (now_mono + self.ttl, record, principal)
        else:
            _, record, principal = cached
        if record is None or principal is None:
            return None
        now = utcnow()
        if not record.is_active(now):
            return None
        await self._note_use(record.id, now)
        return principal

    async def _lookup(self, digest: str) -> TokenRecord | None:
        """One database lookup per digest at a time: when an entry expires under load, the
        requests that find it expired wait for the first one's lookup instead of each
        sending its own (64 connections meant up to 64 identical queries every TTL)."""
        pending = self._lookups.get(digest)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request was cancelled, not the lookup
            except Exception:  # the first lookup failed: this one tries its own
                pass
            return await token_by_digest(self.db, digest)
        future: asyncio.Future[TokenRecord | None] = asyncio.get_running_loop().create_future()
        self._lookups[digest] = future
        try:
            record = await token_by_digest(self.db, digest)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: there may be nobody waiting
            raise
        finally:
            del self._lookups[digest]
        future.set_result(record)
        return record

    async def _note_use(self, token_id: int, now: datetime) -> None:
        last = self._touched.get(token_id)
        if last is not None and now - last < LAST_USED_EVERY:
            return
        self._touched[token_id] = now
        await touch(self.db, token_id, now)
