"""Relay benchmark: `deployments(first: 50)` through the relay over three environments
against the same query sent straight to one environment.

Starts three `deploybot serve --no-runner` instances (dev, staging, production; SQLite,
each seeded with `--rows` deployments written straight into its database) and one
`deploybot relay` in front, drives each with `wrk` at 64 connections, and prints
requests/s, p50, p99 and the relay's p50 over the direct one (the target is at most 1.5).
A script that prints figures, not a test. All processes share this machine's CPUs, so the
relay's figure includes the three instances answering it.

    .venv/bin/python bench/relay.py [--duration 15] [--connections 64] [--rows 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.history import wrk  # noqa: E402

ENVIRONMENTS = ("dev", "staging", "production")
TOKEN = "dbt_bench-admin-token-0123456789abcdefghijklmnopqrstu"
"""Every server's fixed admin token: the benchmark measures with authentication on."""
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIELDS = "id number environment application commitSha version state createdAt finishedAt"
QUERY = f"{{ deployments(first: 50) {{ nodes {{ {FIELDS} }} }} }}"
BASE_PORT = 18300


def seed(path: Path, environment: str, rows: int) -> None:
    """A migrated SQLite database holding `rows` finished deployments of `environment`."""
    url = f"sqlite+aiosqlite:///{path}"
    subprocess.run(
        [sys.executable, "-m", "deploybot", "migrate", "--database-url", url],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    t0 = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=ENVIRONMENTS.index(environment))
    db = sqlite3.connect(path)
    db.executemany(
        "insert into deployment (environment, application, version, commit_sha, strategy,"
        ' state, trigger, "references", created_at, updated_at, finished_at)'
        " values (?, ?, ?, ?, 'ROLLING', 'SUCCESS', 'API', '[]', ?, ?, ?)",
        [
            (
                environment,
                f"app-{i % 40}",
                f"1.{i}",
                f"{i:040x}",
                (t0 + timedelta(seconds=60 * i)).strftime("%Y-%m-%d %H:%M:%S.%f"),
                (t0 + timedelta(seconds=60 * i + 30)).strftime("%Y-%m-%d %H:%M:%S.%f"),
                (t0 + timedelta(seconds=60 * i + 30)).strftime("%Y-%m-%d %H:%M:%S.%f"),
            )
            for i in range(rows)
        ],
    )
    db.commit()
    db.close()


def start(cmd: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{cmd} did not start: {log.read_text()}")


def relay_token(port: int) -> str:
    """A service token with the relay grant on the instance at `port`."""
    answer = httpx.post(
        f"http://127.0.0.1:{port}/graphql",
        json={
            "query": "mutation($i: CreateApiTokenInput!) { createApiToken(input: $i) { token } }",
            "variables": {"i": {"name": "relay", "scopes": ["read,relay"]}},
        },
        headers=AUTH,
    ).json()
    token: str = answer["data"]["createApiToken"]["token"]
    return token


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rows", type=int, default=5000, help="deployments per environment")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="deploybot-bench-relay-"))
    python = sys.executable
    common = {"DEPLOYBOT_ADMIN_TOKEN": TOKEN, "DEPLOYBOT_RATE_LIMIT_ENABLED": "false"}
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, dict[str, float]] = {}
    cpu: dict[str, dict[str, float]] = {}
    try:
        upstreams = {}
        for index, env in enumerate(ENVIRONMENTS):
            port = BASE_PORT + index
            (work / env).mkdir()
            database = work / env / "deploybot.db"
            seed(database, env, args.rows)
            procs.append(
                start(
                    [
                        python,
                        "-m",
                        "deploybot",
                        "serve",
                        "--port",
                        str(port),
                        "--no-runner",
                        "--log-level",
                        "warning",
                    ],
                    port,
                    {
                        **common,
                        "DEPLOYBOT_ENVIRONMENT": env,
                        "DEPLOYBOT_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
                        "DEPLOYBOT_WORK_DIR": str(work / env / "work"),
                    },
                    work / f"{env}.log",
                )
            )
            upstreams[env] = {"url": f"http://127.0.0.1:{port}", "token": relay_token(port)}
        relay_port = BASE_PORT + 10
        procs.append(
            start(
                [
                    python,
                    "-m",
                    "deploybot",
                    "relay",
                    "--port",
                    str(relay_port),
                    "--log-level",
                    "warning",
                ],
                relay_port,
                {
                    **common,
                    "DEPLOYBOT_RELAY_ENVIRONMENTS": json.dumps(upstreams),
                    "DEPLOYBOT_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'relay.db'}",
                },
                work / "relay.log",
            )
        )
        direct_port = BASE_PORT + ENVIRONMENTS.index("production")
        names = [*ENVIRONMENTS, "relay"]
        for label, port in (("direct (production)", direct_port), ("relay (3 envs)", relay_port)):
            results[f"{label}, 1 conn"] = wrk(port, {"query": QUERY}, args.duration, 1)
            before = [cpu_seconds(p.pid) for p in procs]
            results[label] = wrk(port, {"query": QUERY}, args.duration, args.connections)
            used = [cpu_seconds(p.pid) - b for p, b in zip(procs, before, strict=True)]
            requests = results[label]["rps"] * args.duration
            cpu[label] = {n: 1000 * u / requests for n, u in zip(names, used, strict=True) if u}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)

    direct, relay = results["direct (production)"], results["relay (3 envs)"]
    print(f"\n{args.rows:,} deployments per environment (SQLite), {os.cpu_count()} CPUs,", end=" ")
    print(f"{args.connections} connections, {args.duration}s each")
    print(f"{'':30} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for label, r in results.items():
        print(f"{label:30} {r['rps']:9.0f} {r['p50']:8.1f} {r['p99']:8.1f}"
              + (f"  non-2xx: {r['non2xx']:.0f}" if r["non2xx"] else ""))  # fmt: skip
    for label, shares in cpu.items():
        spent = ", ".join(f"{n} {ms:.1f}" for n, ms in shares.items())
        print(f"CPU ms per request, {label}: {spent} (total {sum(shares.values()):.1f})")
    print(f"relay p50 / direct p50: {relay['p50'] / direct['p50']:.2f} (target ≤ 1.5)")
    print(f"relay req/s / direct req/s: {relay['rps'] / direct['rps']:.2f}")


if __name__ == "__main__":
    main()
