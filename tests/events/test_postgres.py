"""LISTEN/NOTIFY between two relays on a real PostgreSQL database."""

from __future__ import annotations

import asyncio

from deploybot.events.bus import DeploymentEvent, EventBus
from deploybot.events.postgres import PostgresRelay, asyncpg_dsn, decode, encode


def test_notifications_carry_identifiers_not_payloads() -> None:
    event = DeploymentEvent(
        7, None, "log", sequence=900, first_sequence=1, lines=[{"text": "x" * 10_000}]
    )
    text = encode(event, "me")
    assert len(text) < 200
    back = decode(text)
    assert (back.deployment_id, back.kind, back.sequence, back.first_sequence, back.origin) == (
        7,
        "log",
        900,
        1,
        "me",
    )
    assert back.lines is None
    step = decode(
        encode(
            DeploymentEvent(
                7, None, "step", step="build", step_status="FAILED", message="e" * 9000
            ),
            "me",
        )
    )
    assert (step.step, step.step_status, len(step.message or "")) == ("build", "FAILED", 2000)


def test_dsn_from_the_sqlalchemy_url() -> None:
    assert asyncpg_dsn("postgresql+asyncpg://u@h:5/db") == "postgresql://u@h:5/db"


async def test_events_cross_processes_once_and_never_echo(postgres_url: str) -> None:
    here, there = EventBus(), EventBus()
    relays = [PostgresRelay(postgres_url, here), PostgresRelay(postgres_url, there)]
    for relay in relays:
        await relay.start()
    try:
        async with here.subscribe() as mine, there.subscribe() as theirs:
            for n in range(1, 201):
                here.publish(DeploymentEvent(1, None, "log", sequence=n, first_sequence=n))
            here.publish(DeploymentEvent(1, "SUCCESS"))
            received: list[DeploymentEvent] = []
            while len(received) < 201:
                received.append(await asyncio.wait_for(theirs.queue.get(), 10))
            assert [e.sequence for e in received[:200]] == list(range(1, 201))
            assert received[-1].state == "SUCCESS"
            assert all(e.origin == relays[0].origin for e in received)
            await asyncio.sleep(0.3)
            assert theirs.queue.empty()
            # The publisher saw its own 201 events once, from its own bus, not back from NOTIFY.
            assert mine.queue.qsize() == 201
    finally:
        for relay in relays:
            await relay.stop()
