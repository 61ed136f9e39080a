"""Access-control benchmark: what a token check and a rate-limit check cost per request.

Prints, on SQLite and on PostgreSQL, the time of `Instance.authenticate` for a token that
is cached (every request within the cache's TTL) and uncached (the first request after
the TTL: one indexed lookup by digest), the time of one rate-limit check
(`RateLimits.hit`: in memory with SQLite, the shared counter table on PostgreSQL), plus
the per-call cost of a grant check and of compiling a token's scope into a list filter.
A script that prints figures, not a test (`bench/rate_limits.py` has more on the limits,
`bench/history.py` the whole request with authentication on).

    PYTHONPATH=src .venv/bin/python bench/access.py [--rounds 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from deploybot.access import Action, Grant, Principal
from deploybot.backend.guard import Guard
from deploybot.config import Settings
from deploybot.core import tokens
from deploybot.core.rate_limits import RateLimitKind, RateLimits
from deploybot.db import migrate
from deploybot.filters import DeploymentFilter
from deploybot.instance import Instance

PG = os.environ.get("DEPLOYBOT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:55432")


async def _per_call(rounds: int, call: Callable[[], Awaitable[object]]) -> float:
    """Microseconds per call."""
    started = time.perf_counter()
    for _ in range(rounds):
        await call()
    return (time.perf_counter() - started) / rounds * 1e6


async def _token_checks(url: str, rounds: int) -> tuple[float, float, float]:
    """µs per token check, cached and uncached, and per rate-limit check."""
    settings = Settings(
        database_url=url,
        work_dir=Path(tempfile.mkdtemp()),
        rate_limit_enabled=True,
        rate_limit_list="1000000000/minute",
    )
    instance = Instance(settings)
    try:
        await migrate.upgrade(instance.db)
        created = await tokens.create_token(instance.db, "bench", ["read,deploy:staging/shop*"])
        token = created.token
        assert await instance.authenticate(token) is not None
        cached = await _per_call(rounds, lambda: instance.authenticate(token))

        async def uncached() -> object:
            instance.tokens.clear()
            return await instance.authenticate(token)

        limits = RateLimits.from_settings(settings, instance.db)
        principal = await instance.authenticate(token)
        assert principal is not None
        await limits.hit(RateLimitKind.LIST, principal.key)
        limited = await _per_call(rounds, lambda: limits.hit(RateLimitKind.LIST, principal.key))
        await limits.close()
        return cached, await _per_call(max(rounds // 10, 100), uncached), limited
    finally:
        await instance.db.dispose()


def _sync_per_call(rounds: int, call: Callable[[], object]) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        call()
    return (time.perf_counter() - started) / rounds * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        sqlite = await _token_checks(f"sqlite+aiosqlite:///{tmp}/bench.db", args.rounds)
    name = f"deploybot_bench_access_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{PG}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        pg_url = f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
        postgres = await _token_checks(pg_url, args.rounds)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()

    principal = Principal(
        "bench", (Grant.parse("read,deploy:staging/shop*"), Grant.parse("read:qa")), token_id=1
    )
    guard = Guard(principal, "staging")
    allows = _sync_per_call(100_000, lambda: guard.may(Action.DEPLOY, "shop-web", "git://x/y"))
    scope = _sync_per_call(
        100_000, lambda: DeploymentFilter(scope=guard.scope(Action.READ)).as_sql_filter()
    )

    print(f"{'token check':<40}{'SQLite µs':>12}{'PostgreSQL µs':>16}")
    print(f"{'cached (within the 5 s TTL)':<40}{sqlite[0]:>12.1f}{postgres[0]:>16.1f}")
    print(f"{'uncached (lookup by digest)':<40}{sqlite[1]:>12.1f}{postgres[1]:>16.1f}")
    print(f"{'rate-limit check (RateLimits.hit)':<40}{sqlite[2]:>12.1f}{postgres[2]:>16.1f}")
    print(f"{'grant check (Guard.may)':<40}{allows:>12.2f}")
    print(f"{'scope → SQL filter':<40}{scope:>12.2f}")


if __name__ == "__main__":
    asyncio.run(main())
