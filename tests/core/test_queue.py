"""The runner's side of the queue: exclusive claims, runners that are gone."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from datetime import UTC, datetime, timedelta

from deploybot.core import history, queue
from deploybot.db.engine import Database
from deploybot.db.models import Deployment
from deploybot.domain import DeploymentState
from tests.conftest import both_databases


@both_databases
async def test_claim_is_exclusive_and_one_per_application(database: Database) -> None:
    async with database.transaction() as session:
        for i in range(8):
            session.add(
                Deployment(
                    environment="test", application=f"app{i % 4}", state=DeploymentState.QUEUED
                )
            )

    async def claimer(name: str) -> list[int]:
        got = []
        while (claimed := await queue.claim_next(database, "test", name)) is not None:
            got.append(claimed)
        return got

    results = await asyncio.gather(*(claimer(f"r{i}") for i in range(4)))
    claimed = sorted(i for r in results for i in r)
    # Each of the 4 applications had one claimed; the second of each waits for the first.
    assert len(claimed) == 4 and len(set(claimed)) == 4
    rows = [await history.get_deployment(database, i) for i in claimed]
    assert sorted(r.application for r in rows if r) == ["app0", "app1", "app2", "app3"]
    assert all(r is not None and r.state is DeploymentState.IN_PROGRESS for r in rows)
    assert await queue.claim_next(database, "other-env", "r") is None


def dead_pid() -> int:
    """The pid of a process that has ended."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


@both_databases
async def test_deployments_of_a_dead_runner_are_found(database: Database) -> None:
    host = socket.gethostname()
    gone = dead_pid()
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with database.transaction() as session:
        rows = [
            Deployment(environment="test", application="a", runner_id=f"{host}-{gone}-x1"),
            Deployment(environment="test", application="b", runner_id=f"{host}-1-x2"),
            Deployment(environment="test", application="c", runner_id="elsewhere-5-x3"),
            Deployment(
                environment="test", application="d", runner_id="elsewhere-6-x4", updated_at=long_ago
            ),
        ]
        for row in rows:
            row.state = DeploymentState.IN_PROGRESS
            session.add(row)
        await session.flush()
        ids = [r.id for r in rows]
    lost = await queue.abandoned(database, "test", host, stale_after=300)
    # a: its process is gone; b: pid 1 lives; c: fresh heartbeat elsewhere; d: stale elsewhere.
    assert sorted(g.deployment_id for g in lost) == sorted([ids[0], ids[3]])
    reasons = {g.deployment_id: g.reason for g in lost}
    assert reasons[ids[0]] == f"runner {host}-{gone}-x1 died"
    assert reasons[ids[3]] == "runner elsewhere-6-x4 was silent for more than 300s"
    assert queue.runner_alive(f"{host}-1-x", host) is True
    assert queue.runner_alive("other-host-1-x", host) is None


@both_databases
async def test_take_over_is_exclusive_and_the_old_runner_hears_of_it(database: Database) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with database.transaction() as session:
        row = Deployment(
            environment="test",
            application="a",
            runner_id="elsewhere-6-old",
            updated_at=long_ago,
            state=DeploymentState.IN_PROGRESS,
        )
        session.add(row)
        await session.flush()
        deployment_id = int(row.id or 0)
    (lost,) = await queue.abandoned(database, "test", socket.gethostname(), stale_after=60)

    async def take(name: str) -> bool:
        return await queue.take_over(database, lost, name, stale_after=60)

    won = await asyncio.gather(*(take(f"new-{i}") for i in range(4)))
    assert sorted(won) == [False, False, False, True]
    winner = f"new-{won.index(True)}"
    assert await queue.owns(database, deployment_id, winner)
    # The old runner wakes up: its heartbeat says the deployment is no longer its own.
    assert await queue.heartbeat(database, deployment_id, "elsewhere-6-old") is False
    assert await queue.heartbeat(database, deployment_id, winner) is True
    # A runner that stops gracefully releases it: the next one takes it over at once.
    await queue.release(database, deployment_id, winner)
    (released,) = await queue.abandoned(database, "test", socket.gethostname(), stale_after=60)
    assert released.runner_id is None and released.reason == "runner stopped and handed it over"
    assert await queue.take_over(database, released, "next", stale_after=60)
    assert await queue.owns(database, deployment_id, "next")


@both_databases
async def test_a_silent_runner_that_beats_again_keeps_its_deployment(database: Database) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with database.transaction() as session:
        row = Deployment(
            environment="test",
            application="a",
            runner_id="elsewhere-7-old",
            updated_at=long_ago,
            state=DeploymentState.IN_PROGRESS,
        )
        session.add(row)
        await session.flush()
        deployment_id = int(row.id or 0)
    (lost,) = await queue.abandoned(database, "test", socket.gethostname(), stale_after=60)
    assert await queue.heartbeat(database, deployment_id, "elsewhere-7-old")
    assert await queue.take_over(database, lost, "new", stale_after=60) is False
    assert await queue.owns(database, deployment_id, "elsewhere-7-old")
