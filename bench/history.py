"""History benchmark: the `deployments` query over a million-row PostgreSQL history.

Seeds 1,000,000 deployments (once; reused by later runs), starts `deploybot
serve --no-runner` on PostgreSQL and a bare Strawberry schema serving the same
50 objects from memory, drives each with `wrk` at 64 connections, and prints
requests/s, p50, p99 and deploybot's ratio to the bare schema. A script that
prints figures, not a test.

    .venv/bin/python bench/history.py [--duration 15] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("DEPLOYBOT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:55432")
DB_NAME = os.environ.get("DEPLOYBOT_BENCH_DB", "deploybot_bench")
ROWS = 1_000_000
ENVIRONMENTS = ["production", "staging", "qa", "dev"]
STATES = [
    "SUCCESS",
    "FAILURE",
    "ERROR",
    "INACTIVE",
    "SUCCESS",
    "INACTIVE",
    "ROLLED_BACK",
    "CANCELLED",
]
FIELDS = (
    "id number environment application repositoryUrl ref commitSha version state createdAt"
    " finishedAt"
)
QUERY = (
    "query($after: String) { deployments(first: 50, after: $after, "
    'filter: {environments: ["production", "staging"], states: [SUCCESS, FAILURE]}) '
    f"{{ nodes {{ {FIELDS} }} }} }}"
)
TOKEN = "dbt_bench-admin-token-0123456789abcdefghijklmnopqrstu"
"""The server's fixed admin token: the benchmark measures with authentication on."""
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BARE_QUERY = f"{{ deployments(first: 50) {{ nodes {{ {FIELDS} }} }} }}"


async def seed() -> None:
    admin = await asyncpg.connect(f"{PG}/postgres")
    exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DB_NAME)
    if not exists:
        await admin.execute(f'CREATE DATABASE "{DB_NAME}"')
    await admin.close()
    url = f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{DB_NAME}"
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "deploybot", "migrate", "--database-url", url],
        check=True,
        capture_output=True,
    )
    conn = await asyncpg.connect(f"{PG}/{DB_NAME}")
    have = await conn.fetchval("SELECT count(*) FROM deployment")
    if have >= ROWS:
        await conn.close()
        return
    print(f"seeding {ROWS:,} deployments ...", flush=True)
    started = time.monotonic()
    await conn.execute("TRUNCATE deployment CASCADE")
    rng = random.Random(7)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    columns = [
        "environment", "application", "repository_url", "ref", "commit_sha", "version",
        "strategy", "state", "trigger", "references", "created_at", "updated_at",
        "started_at", "finished_at",
    ]  # fmt: skip

    def rows(start: int, count: int) -> list[tuple[object, ...]]:
        out = []
        for i in range(start, start + count):
            app = f"app-{rng.randrange(200)}"
            created = t0 + timedelta(seconds=60 * i)
            out.append(
                (
                    ENVIRONMENTS[rng.randrange(4)],
                    app,
                    f"git://git.example/team/{app}.git",
                    "main" if rng.random() < 0.8 else "release",
                    f"{rng.getrandbits(160):040x}",
                    f"1.{i // 1000}.{i % 1000}",
                    "ROLLING",
                    STATES[rng.randrange(8)],
                    "API",
                    "[]",
                    created,
                    created + timedelta(seconds=40),
                    created + timedelta(seconds=1),
                    created + timedelta(seconds=40),
                )
            )
        return out

    chunk = 50_000
    for start in range(0, ROWS, chunk):
        await conn.copy_records_to_table("deployment", records=rows(start, chunk), columns=columns)
    await conn.execute("ANALYZE deployment")
    await conn.close()
    print(f"seeded in {time.monotonic() - started:.0f}s", flush=True)


def start(cmd: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.post(
                f"http://127.0.0.1:{port}/graphql", json={"query": "{__typename}"}, timeout=1
            )
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{cmd} did not start: {log.read_text()}")


def wrk(port: int, body: dict[str, object], duration: int, connections: int) -> dict[str, float]:
    """`body` (a query answering 50 deployments) under wrk: requests/s, p50, p99, non-2xx.
    Also used by `bench/relay.py`."""
    payload = json.dumps(body)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {TOKEN}"\n'
            f"wrk.body = {json.dumps(payload)}\n"
        )
    # Check the answer once before loading it.
    answer = httpx.post(f"http://127.0.0.1:{port}/graphql", content=payload,
                        headers={"Content-Type": "application/json", **AUTH}).json()  # fmt: skip
    assert "errors" not in answer and len(answer["data"]["deployments"]["nodes"]) == 50, answer
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "--latency",
         "-s", script.name, f"http://127.0.0.1:{port}/graphql"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script.name)

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    assert not timeouts or timeouts.group(1) == "0", out
    return {
        "rps": rps,
        "p50": ms("50"),
        "p99": ms("99"),
        "non2xx": float(errors.group(1)) if errors else 0,
    }


async def deep_cursor() -> str:
    conn = await asyncpg.connect(f"{PG}/{DB_NAME}")
    deep = await conn.fetchval("SELECT min(id) + 50000 FROM deployment")
    await conn.close()
    from deploybot.ids import encode_cursor

    return encode_cursor(int(deep))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(seed())
    cursor = asyncio.run(deep_cursor())
    logs = Path(tempfile.mkdtemp(prefix="deploybot-bench-"))
    python = sys.executable
    results: dict[str, dict[str, float]] = {}

    for label, caches in (("bare strawberry (defaults)", "0"), ("bare strawberry (caches)", "1")):
        port = 18100 + int(caches)
        proc = start(
            [python, "-m", "uvicorn", "bench.bare_schema:app", "--port", str(port),
             "--log-level", "warning", "--no-access-log"],
            port, {"BARE_CACHES": caches}, logs / f"bare{caches}.log",
        )  # fmt: skip
        try:
            results[label] = wrk(port, {"query": BARE_QUERY}, args.duration, args.connections)
        finally:
            proc.terminate()
            proc.wait()

    port = 18110
    url = f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{DB_NAME}"
    proc = start(
        [python, "-m", "deploybot", "serve", "--port", str(port), "--no-runner", "--no-migrate",
         "--log-level", "warning"],
        port,
        # A throughput benchmark: per-caller rate limits would refuse it (bench/rate_limits.py
        # measures what a check costs).
        {"DEPLOYBOT_DATABASE_URL": url, "DEPLOYBOT_ENVIRONMENT": "production",
         "DEPLOYBOT_ADMIN_TOKEN": TOKEN, "DEPLOYBOT_RATE_LIMIT_ENABLED": "false"},
        logs / "deploybot.log",
    )  # fmt: skip
    try:
        results["deploybot first page"] = wrk(
            port, {"query": QUERY}, args.duration, args.connections
        )
        results["deploybot deep page"] = wrk(
            port, {"query": QUERY, "variables": {"after": cursor}}, args.duration, args.connections
        )
    finally:
        proc.terminate()
        proc.wait()

    base = results["bare strawberry (defaults)"]["rps"]
    print(f"\n{ROWS:,} deployments in PostgreSQL,", end=" ")
    print(f"{args.connections} connections, {args.duration}s each")
    print(f"{'':32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>7}")
    for label, r in results.items():
        print(f"{label:32} {r['rps']:9.0f} {r['p50']:8.1f} {r['p99']:8.1f} {r['rps'] / base:7.2f}"
              + (f"  non-2xx: {r['non2xx']:.0f}" if r["non2xx"] else ""))  # fmt: skip
    if "--json" in sys.argv:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
