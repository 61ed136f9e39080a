"""Events across processes through PostgreSQL LISTEN/NOTIFY.

Every event a process originates is sent as a NOTIFY on one channel; every
process LISTENs and publishes the others' events on its own bus. A
notification carries identifiers and sequence numbers only (well under
PostgreSQL's 8000-byte payload limit): readers fetch the lines themselves
from the database, where they were committed before the notification left.

One dedicated connection listens and another sends, outside the pool; sends
are queued and flushed in one round trip, so a chatty runner costs one
statement per flush, not one per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from typing import Any

import asyncpg
import orjson

from deploybot.events.bus import DeploymentEvent, EventBus

logger = logging.getLogger(__name__)

CHANNEL = "deploybot_events"

PROBE_EVERY = 10.0
PROBE_TIMEOUT = 5.0
"""Seconds between checks that a quiet listening connection is alive, and their limit."""


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL (`postgresql+asyncpg://...`) as a libpq DSN for asyncpg."""
    scheme, _, rest = database_url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgresql") else database_url


def encode(event: DeploymentEvent, origin: str) -> str:
    data: dict[str, Any] = {"o": origin, "d": event.deployment_id, "k": event.kind}
    if event.state is not None:
        data["s"] = event.state
    if event.sequence is not None:
        data["q"] = event.sequence
    if event.first_sequence is not None:
        data["f"] = event.first_sequence
    if event.step is not None:
        data["st"] = [event.step, event.step_status, (event.message or "")[:2000] or None]
    return orjson.dumps(data).decode()


def decode(payload: str) -> DeploymentEvent:
    data = orjson.loads(payload)
    step, step_status, message = data.get("st") or (None, None, None)
    return DeploymentEvent(
        deployment_id=int(data["d"]),
        state=data.get("s"),
        kind=str(data.get("k", "changed")),
        sequence=data.get("q"),
        first_sequence=data.get("f"),
        origin=str(data["o"]),
        step=step,
        step_status=step_status,
        message=message,
    )


class PostgresRelay:
    """Joins this process's bus to every other process on the same database."""

    def __init__(self, database_url: str, bus: EventBus, *, reconnect_delay: float = 1.0) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.bus = bus
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.reconnect_delay = reconnect_delay
        self._outbox: list[str] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        bus.forward_local(self._queue)

    def _queue(self, event: DeploymentEvent) -> None:
        self._outbox.append(encode(event, self.origin))
        self._wake.set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="pg-listen"),
            asyncio.create_task(self._send(), name="pg-notify"),
        ]
        # Events published before LISTEN is in place would be missed by this process.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 10)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _received(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = decode(payload)
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed event notification: %.200s", payload)
            return
        if event.origin != self.origin:
            self.bus.publish(event)

    async def _listen(self) -> None:
        """Keep one connection LISTENing, reconnecting for as long as it takes. Once LISTEN
        is in place again after a loss, a `resync` event tells the local readers to re-read
        what they missed from the database: announced any earlier, a reader could re-read
        before the last lines of the outage were stored and never hear of them."""
        missed = False
        while True:
            try:
                conn = await asyncpg.connect(self.dsn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("event relay cannot connect (%s); retrying", exc)
                await asyncio.sleep(self.reconnect_delay)
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            try:
                await conn.add_listener(CHANNEL, self._received)
                self._listening.set()
                if missed:
                    logger.warning("event relay listens again; readers re-read what they missed")
                    self.bus.publish(DeploymentEvent(0, None, "resync", origin="relay"))
                    missed = False
                await self._watch(conn, lost)
                logger.warning("event relay lost its listening connection; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("event relay's listening connection failed (%s); reconnecting", exc)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
            missed = True
            await asyncio.sleep(self.reconnect_delay)

    async def _watch(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Return when the connection is lost: closed by the server (a restart), or silent
        (a dead peer never says goodbye: a query every `PROBE_EVERY` seconds finds it)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PROBE_EVERY)
                return
            await asyncio.wait_for(conn.fetchval("SELECT 1"), PROBE_TIMEOUT)

    async def _send(self) -> None:
        conn: asyncpg.Connection | None = None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                batch, self._outbox = self._outbox, []
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self.dsn)
                    await conn.execute(
                        "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload",
                        CHANNEL,
                        batch,
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a restart, or any other failure: keep the events
                    logger.warning("event relay could not notify (%s); retrying", exc)
                    self._outbox[:0] = batch
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            conn.terminate()
                    conn = None
                    await asyncio.sleep(self.reconnect_delay)
