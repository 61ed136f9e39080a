"""A cancel request stops a deployment's work: before its next step, at once while it waits,
and never in the middle of a step that must not be cut (the rollout)."""

from __future__ import annotations

import asyncio

import pytest

from deploybot.core import admission
from deploybot.db.engine import Database
from deploybot.db.models import Deployment
from deploybot.domain import DeploymentState
from deploybot.events.bus import EventBus
from deploybot.runner.cancellation import CancelWatch, DeploymentCancelled
from tests.conftest import both_databases


async def running(db: Database) -> int:
    async with db.transaction() as session:
        row = Deployment(
            environment="test", application="ad-watch", state=DeploymentState.IN_PROGRESS
        )
        session.add(row)
        await session.flush()
        assert row.id is not None
        return row.id


@both_databases
async def test_cancel_interrupts_a_wait(database: Database) -> None:
    deployment_id = await running(database)
    watch = CancelWatch(database, deployment_id, every=0.05)

    async def work() -> None:
        watch.before("converge")
        await asyncio.sleep(30)  # a convergence that would take long

    async def cancel_soon() -> None:
        await asyncio.sleep(0.2)
        await admission.cancel_deployment(database, EventBus(), deployment_id)

    canceller = asyncio.create_task(cancel_soon())
    with pytest.raises(DeploymentCancelled) as stopped:
        await asyncio.wait_for(watch.run(work()), timeout=10)
    await canceller
    assert stopped.value.message == "cancelled during converge"


@both_databases
async def test_cancel_waits_for_an_uninterruptible_step_then_stops_before_the_next(
    database: Database,
) -> None:
    deployment_id = await running(database)
    watch = CancelWatch(database, deployment_id, every=0.05)
    done: list[str] = []

    async def work() -> None:
        watch.before("rollout", interruptible=False)
        await admission.cancel_deployment(database, EventBus(), deployment_id)
        await asyncio.sleep(0.5)  # the watch sees the request meanwhile, and waits
        done.append("rollout")
        watch.after()
        watch.before("converge")
        done.append("converge")

    with pytest.raises(DeploymentCancelled) as stopped:
        await asyncio.wait_for(watch.run(work()), timeout=10)
    assert done == ["rollout"]
    assert stopped.value.message == "cancelled before converge"


@both_databases
async def test_work_without_a_cancel_runs_to_its_end(database: Database) -> None:
    deployment_id = await running(database)
    watch = CancelWatch(database, deployment_id, every=0.05)
    done: list[str] = []

    async def work() -> None:
        watch.before("fetch")
        await asyncio.sleep(0.2)
        done.append("fetch")

    await watch.run(work())
    assert done == ["fetch"] and not watch.requested
