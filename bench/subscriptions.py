"""Subscription fan-out and log ingestion benchmarks.

fan-out: one `deploybot serve --no-runner` process on PostgreSQL; a producer in
this process plays the runner (the real LogWriter, the real NOTIFY relay) and
writes `--rate` lines per second into one deployment; N subscribers of that
deployment's logs, spread over several client processes speaking
graphql-transport-ws, measure each line's delivery latency (receive time minus
the send time written into the line) and count the lines they get. Prints
p50/p99 latency, lines delivered against sent, and the server's CPU and memory.

ingest: the LogWriter alone writes `--ingest-rate` lines per second into
PostgreSQL and SQLite; prints the lines stored per second and how long a line
waited between `write()` and its commit.

A script that prints figures, not a test:

    .venv/bin/python bench/subscriptions.py [--subscribers 100,500,1000] [--duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.logproducer import LogProducer  # noqa: E402
from tests.servers import ADMIN_TOKEN  # noqa: E402

from bench.livelogs import (  # noqa: E402
    Lines,
    create_database,
    database_url,
    drop_database,
    follow_ws,
    live_instance,
    report_followers,
    sent_at,
)
from deploybot.core.logs import LogWriter  # noqa: E402
from deploybot.db import migrate  # noqa: E402
from deploybot.db.engine import Database  # noqa: E402
from deploybot.events.bus import EventBus  # noqa: E402

# --- client processes ---------------------------------------------------------------------------


async def _subscriber(url: str, deployment: int, sample: bool, out: dict[str, Any]) -> None:
    def on_lines(now: float, lines: Lines) -> None:
        out["delivered"] += len(lines)
        if sample:
            out["latencies"].extend(now - sent_at(line["text"]) for line in lines)

    def ready() -> None:
        out["ready"] += 1

    await follow_ws(url, str(deployment), ADMIN_TOKEN, on_lines, ready)


async def _client_main(url: str, deployment: int, count: int, sample_every: int) -> None:
    out: dict[str, Any] = {"ready": 0, "delivered": 0, "latencies": []}
    tasks = [
        asyncio.create_task(_subscriber(url, deployment, n % sample_every == 0, out))
        for n in range(count)
    ]
    await report_followers(tasks, lambda: int(out["ready"]), out)


# --- the fan-out run ----------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_idle() -> float:
    """Idle CPU seconds of the whole machine (all cores) so far."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return int(fields[3]) / os.sysconf("SC_CLK_TCK")


def _memory(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) // 1024
    return values


async def fan_out(subscribers: int, processes: int, rate: int, duration: float) -> dict[str, Any]:
    clients: list[subprocess.Popen[bytes]] = []
    async with live_instance() as (server, producer):
        try:
            deployment = await producer.create("bench")
            ws = server.url.replace("http://", "ws://") + "/graphql"
            per = [
                subscribers // processes + (n < subscribers % processes) for n in range(processes)
            ]
            for count in per:
                clients.append(
                    subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
                        [sys.executable, __file__, "--client", ws, str(deployment), str(count)],
                        stdout=subprocess.PIPE,
                    )
                )
            for client in clients:
                assert client.stdout is not None
                line = await asyncio.to_thread(client.stdout.readline)
                assert line.strip() == b"ready", line
            await asyncio.sleep(1)
            cpu_before, started = _cpu_seconds(server.proc.pid), time.monotonic()
            clients_before = sum(_cpu_seconds(c.pid) for c in clients)
            idle_before = _machine_idle()
            sent = int(rate * duration)
            await producer.write(deployment, sent, rate=rate)
            await producer.finish(deployment)
            results = []
            for client in clients:
                assert client.stdout is not None
                out = await asyncio.to_thread(client.stdout.read)
                results.append(orjson.loads(out.splitlines()[-1]))
            clients_cpu = sum(_cpu_seconds(c.pid) for c in clients) - clients_before
            for client in clients:
                await asyncio.to_thread(client.wait, 30)
            elapsed = time.monotonic() - started
            cpu = _cpu_seconds(server.proc.pid) - cpu_before
            idle = _machine_idle() - idle_before
            memory = _memory(server.proc.pid)
        finally:
            for client in clients:
                if client.poll() is None:
                    client.kill()
    latencies = sorted(x for r in results for x in r["latencies"])
    delivered = sum(r["delivered"] for r in results)
    return {
        "subscribers": subscribers,
        "sent": sent,
        "delivered": delivered,
        "expected": sent * subscribers,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "max_ms": 1000 * latencies[-1],
        "server_cpu_pct": 100 * cpu / elapsed,
        "clients_cpu_pct": 100 * clients_cpu / elapsed,
        "machine_idle_pct": 100 * idle / elapsed / (os.cpu_count() or 1),
        "server_rss_mib": memory.get("VmRSS"),
        "server_peak_rss_mib": memory.get("VmHWM"),
    }


# --- ingestion ----------------------------------------------------------------------------------


async def ingest(database_url: str, rate: int, duration: float) -> dict[str, Any]:
    db = Database(database_url)
    await migrate.upgrade(db)
    bus = EventBus()
    waits: list[float] = []
    stored = 0
    producer = LogProducer(database_url)
    producer.db, producer.bus = db, bus
    deployment = await producer.create("ingest")

    async def watch() -> None:
        nonlocal stored
        async with bus.subscribe(maxsize=100_000) as sub:
            while True:
                event = await sub.queue.get()
                if event.kind == "log" and event.lines:
                    now = time.time()
                    stored += len(event.lines)
                    waits.append(now - event.lines[0]["timestamp"].timestamp())

    watcher = asyncio.create_task(watch())
    started = time.monotonic()
    behind = 0.0
    async with LogWriter(db, bus, deployment) as log:
        total = int(rate * duration)
        for n in range(1, total + 1):
            log.write(f"line {n}")
            if n % 200 == 0:
                delay = started + n / rate - time.monotonic()
                behind = max(behind, -delay)
                await asyncio.sleep(max(delay, 0))
    elapsed = time.monotonic() - started
    await asyncio.sleep(0.2)
    watcher.cancel()
    await db.dispose()
    return {
        "database": database_url.split(":", 1)[0],
        "target_lines_per_s": rate,
        "stored_lines_per_s": round(stored / elapsed),
        "stored": stored,
        "commit_wait_p50_ms": 1000 * statistics.median(waits),
        "commit_wait_max_ms": 1000 * max(waits),
        "writer_behind_max_ms": 1000 * behind,
    }


async def main(args: argparse.Namespace) -> None:
    print(f"ingestion: {args.ingest_rate} lines/s for {args.duration:.0f}s")
    name = await create_database()
    try:
        pg = database_url(name)
        for url in (pg, f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/ingest.db"):
            print(" ", orjson.dumps(await ingest(url, args.ingest_rate, args.duration)).decode())
    finally:
        await drop_database(name)
    print(
        f"fan-out: {args.rate} lines/s for {args.duration:.0f}s, {args.processes} client processes"
    )
    for count in (int(n) for n in args.subscribers.split(",")):
        result = await fan_out(count, args.processes, args.rate, args.duration)
        print(" ", orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY).decode(), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        url, deployment, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        asyncio.run(_client_main(url, deployment, count, sample_every=5))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="100,500,1000")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--ingest-rate", type=int, default=20_000)
    parser.add_argument("--duration", type=float, default=20)
    asyncio.run(main(parser.parse_args()))
