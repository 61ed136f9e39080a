"""What a rate-limit check costs per request: µs per check in this process, with the
memory storage (SQLite, one API process) and the PostgreSQL counter table (several API
processes), one caller after another and many at once; then the same small query through
a running `deploybot serve` with the limits off and on. A script that prints figures.

    PYTHONPATH=src .venv/bin/python bench/rate_limits.py [--checks 5000] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import ServerProcess  # noqa: E402

from deploybot.config import Settings  # noqa: E402
from deploybot.core.rate_limits import RateLimitKind, RateLimits  # noqa: E402
from deploybot.db import migrate  # noqa: E402
from deploybot.db.engine import Database  # noqa: E402

PG = os.environ.get("DEPLOYBOT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:55432")
HIGH = "1000000000/minute"
QUERY = '{ deployment(id: "1") { id } }'


async def _checks(
    limits: RateLimits, checks: int, callers: int, concurrency: int
) -> tuple[float, float]:
    """µs per check (wall time / checks, and this process's CPU time / checks) with
    `concurrency` checks in flight."""
    keys = [f"token:{n}" for n in range(callers)]
    queue = iter(range(checks))

    async def worker() -> None:
        for n in queue:
            await limits.hit(RateLimitKind.STATUS, keys[n % callers])

    await limits.hit(RateLimitKind.STATUS, "warm-up")
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = (time.perf_counter() - started) / checks * 1e6
    return wall, (time.process_time() - cpu) / checks * 1e6


async def in_process(checks: int, pg_url: str, sqlite_url: str) -> None:
    for label, url in (("memory (SQLite)", sqlite_url), ("PostgreSQL table", pg_url)):
        db = Database(url)
        await migrate.upgrade(db)
        limits = RateLimits.from_settings(Settings(database_url=url, rate_limit_status=HIGH), db)
        try:
            for concurrency in (1, 16):
                wall, cpu = await _checks(limits, checks, callers=50, concurrency=concurrency)
                print(
                    f"  {label:<18} {concurrency:>2} in flight: {wall:8.1f} µs per check"
                    f" (CPU of this process {cpu:6.1f} µs)"
                )
        finally:
            await db.dispose()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _requests(server: ServerProcess, requests: int) -> tuple[float, float]:
    """Median wall µs per request, and the server's CPU µs per request."""
    out = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for _ in range(50):
            http.post("/graphql", json={"query": QUERY})
        cpu = _cpu_seconds(server.proc.pid)
        for _ in range(requests):
            started = time.perf_counter()
            response = http.post("/graphql", json={"query": QUERY})
            out.append((time.perf_counter() - started) * 1e6)
            assert response.status_code == 200 and "errors" not in response.json(), response.text
        cpu = _cpu_seconds(server.proc.pid) - cpu
    return statistics.median(out), cpu / requests * 1e6


def through_http(requests: int, pg_url: str, sqlite_url: str) -> None:
    for label, url in (("SQLite", sqlite_url), ("PostgreSQL", pg_url)):
        figures = {}
        for enabled in ("false", "true"):
            tmp = Path(tempfile.mkdtemp(prefix="bench-rl-"))
            env = {
                "DEPLOYBOT_DATABASE_URL": url,
                "DEPLOYBOT_ENVIRONMENT": "bench",
                "DEPLOYBOT_WORK_DIR": str(tmp / "work"),
                "DEPLOYBOT_RATE_LIMIT_ENABLED": enabled,
                "DEPLOYBOT_RATE_LIMIT_STATUS": HIGH,
                "PYTHONPATH": str(ROOT / "src"),
            }
            server = ServerProcess(env, tmp, "--no-runner", "--log-level", "warning")
            try:
                figures[enabled] = _requests(server, requests)
            finally:
                server.stop()
        (off, off_cpu), (on, on_cpu) = figures["false"], figures["true"]
        print(
            f"  {label:<10} server CPU per request: limits off {off_cpu:6.0f} µs,"
            f" on {on_cpu:6.0f} µs ({on_cpu - off_cpu:+5.0f} µs);"
            f" median wall {off:6.0f} / {on:6.0f} µs"
        )


async def _pg_database() -> tuple[str, str]:
    name = f"deploybot_bench_rl_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(f"{PG}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return name, f"postgresql+asyncpg://{PG.split('://', 1)[1]}/{name}"


async def _drop(name: str) -> None:
    admin = await asyncpg.connect(f"{PG}/postgres")
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    name, pg_url = asyncio.run(_pg_database())
    sqlite_url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-rl-')}/deploybot.db"
    try:
        print("one rate-limit check, in process:")
        asyncio.run(in_process(args.checks, pg_url, sqlite_url))
        print(f"one GraphQL request ({QUERY}), one client, {args.requests} requests:")
        through_http(args.requests, pg_url, sqlite_url)
    finally:
        asyncio.run(_drop(name))


if __name__ == "__main__":
    main()
