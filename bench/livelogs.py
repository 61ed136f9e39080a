"""Live deployment logs for the benchmarks (bench/subscriptions.py, bench/relay.py).

`live_instance`: one `deploybot serve --no-runner` on a fresh PostgreSQL database, with
this process playing its runner (`tests.logproducer.LogProducer`: the real LogWriter and
the real NOTIFY relay), writing lines that carry their send time (`line n t`, see
`sent_at`). `follow_ws`: a graphql-transport-ws follower of one deployment's log;
`report_followers`: how a client process running followers reports to the benchmark.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import websockets
from tests.logproducer import LogProducer
from tests.servers import ADMIN_TOKEN, ServerProcess
from websockets.typing import Subprotocol

PG = os.environ.get("DEPLOYBOT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:55432")
LOGS = "subscription($id: ID!) { deploymentLogs(id: $id) { lastSequence lines { sequence text } } }"
Lines = list[dict[str, Any]]


def sent_at(text: str) -> float:
    """The send time (Unix seconds) `LogProducer.write` put at the end of a line."""
    return float(text.rsplit(" ", 1)[1])


async def create_database() -> str:
    name = f"deploybot_bench_live_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(f"{PG}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return name


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(f"{PG}/postgres")
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def database_url(name: str) -> str:
    return f"postgresql+asyncpg://{PG.split('://', 1)[1]}/{name}"


@asynccontextmanager
async def live_instance(
    admin_token: str = ADMIN_TOKEN, environment: str = "test"
) -> AsyncIterator[tuple[ServerProcess, LogProducer]]:
    """A started server on its own database and the producer writing into it; both gone
    (the database dropped) on leaving."""
    name = await create_database()
    url = database_url(name)
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    env = {
        "DEPLOYBOT_DATABASE_URL": url,
        "DEPLOYBOT_ENVIRONMENT": environment,
        "DEPLOYBOT_ADMIN_TOKEN": admin_token,
        "DEPLOYBOT_WORK_DIR": str(tmp / "work"),
        "DEPLOYBOT_RATE_LIMIT_ENABLED": "false",
    }
    server: ServerProcess | None = None
    try:
        server = ServerProcess(env, tmp, "--no-runner", "--log-level", "warning")
        async with LogProducer(url, environment=environment) as producer:
            yield server, producer
    finally:
        if server is not None:
            server.stop()
        await drop_database(name)


async def follow_ws(
    url: str,
    deployment: str,
    token: str,
    on_lines: Callable[[float, Lines], None],
    ready: Callable[[], None] = lambda: None,
) -> None:
    """Follow `deployment`'s log at `url` (…/graphql, graphql-transport-ws) until the
    subscription completes: `ready()` once subscribed, `on_lines(receive time, lines)` for
    every message of lines."""
    async with websockets.connect(
        url, subprotocols=[Subprotocol("graphql-transport-ws")], max_size=None, ping_interval=None
    ) as ws:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        await ws.send(orjson.dumps(init).decode())
        await ws.recv()
        payload = {"query": LOGS, "variables": {"id": deployment}}
        await ws.send(orjson.dumps({"type": "subscribe", "id": "1", "payload": payload}).decode())
        ready()
        async for raw in ws:
            now = time.time()
            message = orjson.loads(raw)
            kind = message["type"]
            if kind == "complete":
                return
            if kind == "ping":  # the server's keep-alive
                await ws.send(orjson.dumps({"type": "pong"}).decode())
            elif kind == "error" or (kind == "next" and message["payload"].get("errors")):
                raise RuntimeError(f"{url}: {message['payload']}")
            elif kind == "next":
                on_lines(now, message["payload"]["data"]["deploymentLogs"]["lines"])
    raise RuntimeError(f"{url}: the connection closed before the subscription completed")


async def report_followers(
    tasks: list[asyncio.Task[None]], ready: Callable[[], int], out: object
) -> None:
    """A client process's followers: print "ready" once `ready()` counts them all (a failed
    one fails the run instead of hanging it), and `out` as JSON once they have all ended."""
    while ready() < len(tasks):
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise SystemExit(f"follower failed: {failed[0].exception()!r}")
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
