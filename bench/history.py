"""History benchmark: the `deployments` query over a million-row PostgreSQL history.

Seeds 1,000,000 deployments (once; reused by later runs), starts `deploybot
serve --no-runner` on PostgreSQL and a bare Strawberry schema serving the same
50 objects from memory, drives each with `wrk` at 64 connections, and prints
requests/s, p50, p99 and deploybot's ratio to the bare schema. A script that
prints figures, not a test.

With `--baseline-src <checkout>[@db]` (repeatable) it also serves other code (on its
own database, `--baseline-db` by default, migrated by that code) and interleaves rounds
(bare, deploybot, baselines, bare, ...), printing medians over `--rounds` and each
server's CPU time per request (from /proc/<pid>/stat). `--scoped` adds deploybot asked
with a token limited to some environments and applications, whose scope is compiled into
every list query (the benchmark's own token is an admin's).

With `--instructions N` it counts instead of timing: every server runs under Callgrind and
answers N requests per page, and the figure is instructions per request (ratio = the bare
schema's count over the server's), with PostgreSQL's work per request beside it
(`bench/instructions.py` says why: wrk's figures on a 2-core machine vary by ±25 %).

    .venv/bin/python bench/history.py [--duration 15] [--connections 64] [--rounds 5]
        [--baseline-src /work/wt-9fbfc1a [--baseline-db deploybot_bench_9]]
        [--baseline-src /work/main@deploybot_bench] [--bare-caches] [--scoped]
    .venv/bin/python bench/history.py --instructions 100 --scoped --baseline-src /work/wt-9fbfc1a
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import instructions  # noqa: E402

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
SCOPES = ["read:production,staging/app-1*", "read:qa/*"]
"""`--scoped`'s token: two environments limited to an application glob, and a third whole."""
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
        out: list[tuple[object, ...]] = []
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


def launch(
    cmd: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT, counted: bool = False
) -> subprocess.Popen[bytes]:
    """`cmd` started (under Callgrind, writing beside `log`, when `counted`)."""
    if counted:
        cmd = instructions.under_callgrind(cmd, log.parent)
    return subprocess.Popen(
        cmd, env={**os.environ, **env}, cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, patience: float) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.post(
                f"http://127.0.0.1:{port}/graphql", json={"query": "{__typename}"}, timeout=5
            )
            return
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{proc.args!r} did not start: {log.read_text()[-3000:]}")


def start(
    cmd: list[str], port: int, env: dict[str, str], log: Path, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    """A server, once it answers (also used by `bench/relay.py`)."""
    proc = launch(cmd, env, log, cwd)
    wait_ready(proc, port, log, 60)
    return proc


def wrk(
    port: int,
    body: dict[str, object],
    duration: int,
    connections: int,
    headers: dict[str, str] = AUTH,
) -> dict[str, float]:
    """`body` (a query answering 50 deployments) under wrk: requests/s, p50, p99, non-2xx.
    Also used by `bench/relay.py`."""
    payload = json.dumps(body)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        for name, value in headers.items():
            script.write(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n")
        script.write(f"wrk.body = {json.dumps(payload)}\n")
    # Check the answer once before loading it.
    answer = httpx.post(f"http://127.0.0.1:{port}/graphql", content=payload,
                        headers={"Content-Type": "application/json", **headers}).json()  # fmt: skip
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
    requests = re.search(r"(\d+) requests in", out)
    assert requests, out
    return {
        "requests": float(requests.group(1)),
        "rps": rps,
        "p50": ms("50"),
        "p99": ms("99"),
        "non2xx": float(errors.group(1)) if errors else 0,
    }


async def deep_cursor(db_name: str = DB_NAME) -> str:
    conn = await asyncpg.connect(f"{PG}/{db_name}")
    deep = await conn.fetchval("SELECT min(id) + 50000 FROM deployment")
    await conn.close()
    from deploybot.ids import encode_cursor

    return encode_cursor(int(deep))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """One server under test, started once and driven in every round."""

    label: str
    proc: subprocess.Popen[bytes]
    port: int
    bodies: dict[str, dict[str, object]]
    """What it is asked, by page ("first", "deep")."""
    log: Path
    db_name: str | None = None
    headers: dict[str, str] = field(default_factory=lambda: dict(AUTH))


def launch_deploybot(
    label: str, src: Path, db_name: str, port: int, logs: Path, counted: bool
) -> Server:
    """`deploybot serve --no-runner` of the source tree `src` on the database `db_name`
    (under Callgrind when `counted`); `ready` waits for it."""
    url = f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{db_name}"
    cursor = asyncio.run(deep_cursor(db_name))
    log = logs / f"{label}.log"
    proc = launch(
        [sys.executable, "-m", "deploybot", "serve", "--port", str(port), "--no-runner",
         "--no-migrate", "--log-level", "warning"],
        # A throughput benchmark: per-caller rate limits would refuse it (bench/rate_limits.py
        # and bench/access.py measure what a check costs). Code without access control
        # ignores the token.
        {"DEPLOYBOT_DATABASE_URL": url, "DEPLOYBOT_ENVIRONMENT": "production",
         "DEPLOYBOT_ADMIN_TOKEN": TOKEN, "DEPLOYBOT_RATE_LIMIT_ENABLED": "false",
         "PYTHONPATH": str(src / "src")},
        log,
        cwd=src,
        counted=counted,
    )  # fmt: skip
    bodies: dict[str, dict[str, object]] = {
        "first": {"query": QUERY},
        "deep": {"query": QUERY, "variables": {"after": cursor}},
    }
    return Server(label, proc, port, bodies, log, db_name)


def launch_bare(caches: bool, port: int, logs: Path, counted: bool) -> Server:
    label = "bare (caches)" if caches else "bare"
    cmd = [sys.executable, "-m", "uvicorn", "bench.bare_schema:app", "--port", str(port),
           "--log-level", "warning", "--no-access-log"]  # fmt: skip
    log = logs / f"bare{int(caches)}.log"
    proc = launch(cmd, {"BARE_CACHES": "1" if caches else "0"}, log, counted=counted)
    body: dict[str, object] = {"query": BARE_QUERY}
    return Server(label, proc, port, {"first": body, "deep": body}, log)


def ready(server: Server, counted: bool) -> None:
    patience = instructions.START_PATIENCE if counted else 60
    wait_ready(server.proc, server.port, server.log, patience)


def scoped(server: Server) -> Server:
    """The same server asked with `SCOPES`' token (created through `createApiToken`)."""
    mutation = (
        'mutation($scopes: [String!]!) { createApiToken(input: {name: "bench-scoped", '
        "scopes: $scopes}) { token userErrors { code message } } }"
    )
    answer = httpx.post(
        f"http://127.0.0.1:{server.port}/graphql",
        json={"query": mutation, "variables": {"scopes": SCOPES}},
        headers=AUTH,
        timeout=600,
    ).json()
    token = answer["data"]["createApiToken"]["token"]
    assert token, answer
    headers = {"Authorization": f"Bearer {token}"}
    return Server(f"{server.label} (scoped)", server.proc, server.port, server.bodies,
                  server.log, server.db_name, headers)  # fmt: skip


def measure(server: Server, page: str, duration: int, connections: int) -> dict[str, float]:
    """wrk's figures, and the server's CPU milliseconds per request meanwhile."""
    before = cpu_seconds(server.proc.pid)
    result = wrk(server.port, server.bodies[page], duration, connections, server.headers)
    result["cpu_ms"] = (cpu_seconds(server.proc.pid) - before) / (result["requests"] + 1) * 1e3
    return result


async def pg_work(db_name: str) -> tuple[int, int, int]:
    """PostgreSQL's counters for a database: transactions, rows returned, blocks touched."""
    conn = await asyncpg.connect(f"{PG}/postgres")
    row = await conn.fetchrow(
        "SELECT xact_commit + xact_rollback, tup_returned, blks_hit + blks_read"
        " FROM pg_stat_database WHERE datname = $1",
        db_name,
    )
    await conn.close()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def count(server: Server, page: str, requests: int) -> dict[str, float]:
    """Instructions per request under Callgrind, and PostgreSQL's work per request."""
    url = f"http://127.0.0.1:{server.port}/graphql"
    before = asyncio.run(pg_work(server.db_name)) if server.db_name else (0, 0, 0)
    ir = instructions.per_request(
        server.proc.pid, url, server.bodies[page], server.headers, requests
    )
    result = {"ir": ir}
    if server.db_name:
        time.sleep(1.5)  # backends report their statistics at most once a second
        after = asyncio.run(pg_work(server.db_name))
        total = requests + instructions.WARMUP
        for key, b, a in zip(("xacts", "rows", "blocks"), before, after, strict=True):
            result[key] = (a - b) / total
    return result


def report_counts(
    counts: dict[tuple[str, str], dict[str, float]],
    servers: list[Server],
    pages: list[str],
    args: argparse.Namespace,
) -> None:
    print(f"\ninstructions per request under Callgrind ({args.instructions} requests per page,"
          f" {instructions.CONCURRENCY} in flight); ratio = bare's count over the server's;"
          " PostgreSQL per request")  # fmt: skip
    bare, main_label = servers[0].label, next(s.label for s in servers if s.db_name)
    for page in pages:
        print(f"\n{page} page")
        print(f"{'':24} {'M instr':>8} {'ratio':>6} {'vs ' + main_label:>13}"
              f" {'xacts':>6} {'rows':>7} {'blocks':>7}")  # fmt: skip
        for server in servers:
            figures = counts[(server.label, page)]
            ratio = counts[(bare, page)]["ir"] / figures["ir"]
            versus = figures["ir"] / counts[(main_label, page)]["ir"] - 1
            pg = (f" {figures['xacts']:6.2f} {figures['rows']:7.1f} {figures['blocks']:7.1f}"
                  if server.db_name else "")  # fmt: skip
            print(f"{server.label:24} {figures['ir'] / 1e6:8.2f} {ratio:6.3f} {versus:+13.1%}{pg}")


def report(
    rounds: list[dict[tuple[str, str], dict[str, float]]],
    servers: list[Server],
    pages: list[str],
    args: argparse.Namespace,
) -> None:
    print(f"\n{ROWS:,} deployments in PostgreSQL, {args.connections} connections,", end=" ")
    print(f"{args.duration}s each, {len(rounds)} interleaved round(s); ratio = req/s over bare")
    bare = servers[0].label
    for page in pages:
        print(f"\n{page} page")
        print(f"{'':24} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/req':>10} {'ratio':>6}"
              "   ratios per round")  # fmt: skip
        for server in servers:
            figures = [r[(server.label, page)] for r in rounds]
            ratios = [r[(server.label, page)]["rps"] / r[(bare, page)]["rps"] for r in rounds]

            def med(key: str, figures: list[dict[str, float]] = figures) -> float:
                return statistics.median(f[key] for f in figures)

            errors = sum(f["non2xx"] for f in figures)
            print(f"{server.label:24} {med('rps'):8.0f} {med('p50'):7.1f} {med('p99'):7.1f}"
                  f" {med('cpu_ms'):10.2f} {statistics.median(ratios):6.2f}   "
                  + " ".join(f"{x:.2f}" for x in ratios)
                  + (f"  non-2xx: {errors:.0f}" if errors else ""))  # fmt: skip
    if args.json:
        print(json.dumps([{f"{k[0]}/{k[1]}": v for k, v in r.items()} for r in rounds]))


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--baseline-src",
        action="append",
        default=[],
        metavar="PATH[@DB]",
        help="a checkout of other code to compare (repeatable), on database DB",
    )
    parser.add_argument(
        "--baseline-db", default="deploybot_bench_9", help="the baselines' own migrated database"
    )
    parser.add_argument(
        "--bare-caches", action="store_true", help="also the bare schema with Strawberry's caches"
    )
    parser.add_argument(
        "--scoped", action="store_true", help="also deploybot asked with a scoped token"
    )
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="N",
        help="count instructions over N requests per page under Callgrind instead of timing",
    )
    parser.add_argument("--pages", default="first,deep")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def launch_all(args: argparse.Namespace, logs: Path) -> list[Server]:
    """Every server, started together (under Callgrind each takes minutes to start)."""
    counted = args.instructions > 0
    servers = [launch_bare(False, 18100, logs, counted)]
    if args.bare_caches:
        servers.append(launch_bare(True, 18101, logs, counted))
    servers.append(launch_deploybot("deploybot", ROOT, DB_NAME, 18110, logs, counted))
    for number, baseline in enumerate(args.baseline_src):
        path, _, db_name = baseline.partition("@")
        src = Path(path).resolve()
        servers.append(
            launch_deploybot(
                src.name, src, db_name or args.baseline_db, 18111 + number, logs, counted
            )
        )
    return servers


def main() -> None:
    args = arguments()
    asyncio.run(seed())
    logs = Path(tempfile.mkdtemp(prefix="deploybot-bench-"))
    pages = args.pages.split(",")
    servers: list[Server] = []
    try:
        servers = launch_all(args, logs)
        for server in servers:
            ready(server, args.instructions > 0)
        if args.scoped:
            main_server = next(server for server in servers if server.db_name)
            servers.insert(servers.index(main_server) + 1, scoped(main_server))
        if args.instructions:
            counts = {
                (server.label, page): count(server, page, args.instructions)
                for page in pages
                for server in servers
            }
            report_counts(counts, servers, pages, args)
            return
        rounds: list[dict[tuple[str, str], dict[str, float]]] = []
        for number in range(args.rounds):
            figures: dict[tuple[str, str], dict[str, float]] = {}
            for page in pages:
                for server in servers:
                    figures[(server.label, page)] = measure(
                        server, page, args.duration, args.connections
                    )
            rounds.append(figures)
            summary = ", ".join(
                f"{label}/{page} {f['rps']:.0f}" for (label, page), f in figures.items()
            )
            print(f"round {number + 1}: {summary}", flush=True)
        report(rounds, servers, pages, args)
    finally:
        for server in servers:
            server.proc.terminate()
        for server in servers:
            server.proc.wait()


if __name__ == "__main__":
    main()
