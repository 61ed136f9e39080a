"""Relay benchmark: `deployments(first: 50)` through the relay over three environments
against the same query sent straight to one environment.

Starts three `deploybot serve --no-runner` instances (dev, staging, production; SQLite,
each seeded with `--rows` deployments written straight into its database) and one
`deploybot relay` in front, drives each with `wrk` at 64 connections, and prints
requests/s, p50, p99 and the relay's p50 over the direct one (the target is at most 1.5).
A script that prints figures, not a test. All processes share this machine's CPUs, so the
relay's figure includes the three instances answering it.

Then the latency a log line adds when it passes the relay: a `deploybot serve --no-runner`
on PostgreSQL (production) whose runner this process plays (`bench/livelogs.py`: the real
LogWriter and NOTIFY relay, each line carrying its send time), a `deploybot relay` in front
of it, and one client process following that deployment's log four ways: graphql-transport-ws
`deploymentLogs` and the raw `GET /deployments/{id}/logs?follow=true`, each straight at the
instance and through the relay, while `--log-rate` lines a second are written for
`--duration` seconds. Prints each follower's p50/p99 latency (receive time minus send time),
what the relay adds, and the lines each received against those sent.

    .venv/bin/python bench/relay.py [--duration 15] [--connections 64] [--rows 5000]
        [--log-rate 200] [--logs-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import free_port  # noqa: E402

from bench.history import wrk  # noqa: E402
from bench.livelogs import Lines, follow_ws, live_instance, report_followers, sent_at  # noqa: E402
from deploybot.ids import encode_id  # noqa: E402

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


def throughput(args: argparse.Namespace, work: Path) -> None:
    """The `deployments(first: 50)` phases: direct to production, through the relay."""
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


# --- the latency a log line adds through the relay ----------------------------------------------


async def _follow_raw(
    url: str, on_lines: Callable[[float, Lines], None], ready: Callable[[], None]
) -> None:
    """`curl -N url`: every `[label] line n t` as the line `{sequence: n, text}`."""
    async with (
        httpx.AsyncClient(timeout=None, headers=AUTH) as http,
        http.stream("GET", url) as response,
    ):
        response.raise_for_status()
        ready()
        async for text in response.aiter_lines():
            if text:
                on_lines(time.time(), [{"sequence": int(text.split()[2]), "text": text}])


async def _followers(instance: str, relay: str, gid: str, number: str) -> None:
    """The client process: four followers of one log; prints "ready" once all follow, then
    (when the log ends) each one's `[sequence, latency]` pairs as JSON."""
    seen: dict[str, list[tuple[int, float]]] = {}
    ready: list[str] = []

    def follower(label: str) -> tuple[Callable[[float, Lines], None], Callable[[], None]]:
        got = seen.setdefault(label, [])

        def on_lines(now: float, lines: Lines) -> None:
            got.extend((line["sequence"], now - sent_at(line["text"])) for line in lines)

        return on_lines, lambda: ready.append(label)

    ws = "/graphql"
    runs: list[Coroutine[Any, Any, None]] = [
        follow_ws(instance.replace("http", "ws", 1) + ws, gid, TOKEN, *follower("ws direct")),
        follow_ws(relay.replace("http", "ws", 1) + ws, gid, TOKEN, *follower("ws relay")),
        _follow_raw(f"{instance}/deployments/{number}/logs?follow=true", *follower("raw direct")),
        _follow_raw(f"{relay}/deployments/{gid}/logs?follow=true", *follower("raw relay")),
    ]
    tasks = [asyncio.create_task(run) for run in runs]
    await report_followers(tasks, lambda: len(ready), seen)


def _upstream_log_streams(relay: str) -> float:
    """The relay's open upstream streams of deployment logs (its /metrics)."""
    wanted = 'deploybot_relay_upstream_streams{method="follow_deployment_logs"} '
    for line in httpx.get(f"{relay}/metrics", timeout=10).text.splitlines():
        if line.startswith(wanted):
            return float(line.removeprefix(wanted))
    return 0.0


async def log_latency(rate: int, duration: float, work: Path) -> dict[str, list[tuple[int, float]]]:
    """Follow one production deployment's log four ways while `rate` lines a second are
    written for `duration` seconds; each follower's `(sequence, latency)` pairs."""
    common = {"DEPLOYBOT_ADMIN_TOKEN": TOKEN, "DEPLOYBOT_RATE_LIMIT_ENABLED": "false"}
    async with live_instance(TOKEN, "production") as (server, producer):
        deployment = await producer.create("bench-relay-logs")
        gid = encode_id("Deployment", "production", deployment)
        upstreams = {"production": {"url": server.url, "token": relay_token(server.port)}}
        port = free_port()
        relay_url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "deploybot", "relay", "--port", str(port)]
        relay = start(
            [*command, "--log-level", "warning"],
            port,
            {
                **common,
                "DEPLOYBOT_RELAY_ENVIRONMENTS": json.dumps(upstreams),
                "DEPLOYBOT_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'log-relay.db'}",
            },
            work / "log-relay.log",
        )
        number, followers = str(deployment), None
        try:
            followers = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
                [sys.executable, __file__, "--followers", server.url, relay_url, gid, number],
                stdout=subprocess.PIPE,
            )
            assert followers.stdout is not None
            line = await asyncio.to_thread(followers.stdout.readline)
            assert line.strip() == b"ready", line
            deadline = time.monotonic() + 30
            while await asyncio.to_thread(_upstream_log_streams, relay_url) < 1:
                assert time.monotonic() < deadline, "the relay opened no stream upstream"
                await asyncio.sleep(0.2)
            await asyncio.sleep(1)
            await producer.write(deployment, int(rate * duration), rate=rate)
            await producer.finish(deployment)
            out, _ = await asyncio.to_thread(followers.communicate, timeout=120)
            assert followers.returncode == 0, followers.returncode
        finally:
            if followers is not None and followers.poll() is None:
                followers.kill()
            relay.terminate()
            relay.wait(30)
    seen: dict[str, list[tuple[int, float]]] = orjson.loads(out.splitlines()[-1])
    return seen


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)]


def print_log_latency(seen: dict[str, list[tuple[int, float]]], rate: int, duration: float) -> None:
    sent = int(rate * duration)
    print(f"\nlog line latency: {rate} lines/s for {duration:g}s ({sent} lines) into one")
    print("deployment on PostgreSQL, followed straight at the instance and through the relay")
    print(f"{'':12} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  lines received / sent")
    for label, pairs in seen.items():
        ms = [1000 * latency for _, latency in pairs] or [math.nan]
        sequences = [n for n, _ in pairs]
        once = "every line exactly once"
        if sorted(sequences) != list(range(1, sent + 1)):
            once = "NOT " + once
        figures = f"{_percentile(ms, 0.5):8.1f} {_percentile(ms, 0.99):8.1f} {max(ms):8.1f}"
        print(f"{label:12} {figures}  {len(sequences)} / {sent}, {once}")
    for protocol in ("ws", "raw"):
        direct = dict(seen[f"{protocol} direct"])
        relayed = dict(seen[f"{protocol} relay"])
        d = [1000 * x for x in direct.values()]
        r = [1000 * x for x in relayed.values()]
        p50 = _percentile(r, 0.5) - _percentile(d, 0.5)
        p99 = _percentile(r, 0.99) - _percentile(d, 0.99)
        added = [1000 * (relayed[n] - direct[n]) for n in direct.keys() & relayed.keys()]
        each = f"{_percentile(added, 0.5):+.1f} ms, p99 {_percentile(added, 0.99):+.1f} ms"
        print(f"the relay adds ({protocol}): p50 {p50:+.1f} ms, p99 {p99:+.1f} ms;"
              f" line by line: median {each}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rows", type=int, default=5000, help="deployments per environment")
    parser.add_argument("--log-rate", type=int, default=200, help="log lines per second")
    parser.add_argument("--logs-only", action="store_true", help="only the log line latency")
    parser.add_argument("--followers", nargs=4, help=argparse.SUPPRESS)  # the client process
    args = parser.parse_args()
    if args.followers:
        asyncio.run(_followers(*args.followers))
        return
    work = Path(tempfile.mkdtemp(prefix="deploybot-bench-relay-"))
    if not args.logs_only:
        throughput(args, work)
    seen = asyncio.run(log_latency(args.log_rate, args.duration, work))
    print_log_latency(seen, args.log_rate, args.duration)


if __name__ == "__main__":
    main()
