"""A deployment's life as its runner records it: steps, the end, what a success retires."""

from __future__ import annotations

from deploybot.core import history, lifecycle
from deploybot.db.engine import Database
from deploybot.db.models import Deployment, DeploymentStep
from deploybot.domain import DeploymentState, StepName, StepStatus
from deploybot.events.bus import EventBus
from tests.conftest import both_databases


@both_databases
async def test_success_retires_the_previous_one(database: Database) -> None:
    bus = EventBus()
    ids = []
    async with database.transaction() as session:
        for version in ("1", "2"):
            row = Deployment(environment="test", application="web", version=version)
            session.add(row)
            await session.flush()
            assert row.id is not None
            session.add(DeploymentStep(deployment_id=row.id, position=0, name="fetch"))
            session.add(DeploymentStep(deployment_id=row.id, position=1, name="rollout"))
            ids.append(row.id)
    async with bus.subscribe() as sub:
        await lifecycle.set_step(database, ids[0], StepName.FETCH, StepStatus.RUNNING)
        await lifecycle.set_step(
            database, ids[0], StepName.FETCH, StepStatus.COMPLETED, message="ok"
        )
        await lifecycle.finish_deployment(database, bus, ids[0], DeploymentState.SUCCESS)
        await lifecycle.finish_deployment(database, bus, ids[1], DeploymentState.SUCCESS)
        events = [sub.queue.get_nowait() for _ in range(2)]
    assert [e.state for e in events] == ["SUCCESS", "SUCCESS"]
    first, second = [await history.get_deployment(database, i) for i in ids]
    assert first is not None and second is not None
    assert first.state is DeploymentState.INACTIVE
    assert second.state is DeploymentState.SUCCESS and second.finished_at is not None
    steps = (await history.steps_for(database, [ids[0]]))[ids[0]]
    assert [(s.name, s.status) for s in steps] == [
        ("fetch", StepStatus.COMPLETED),
        ("rollout", StepStatus.SKIPPED),
    ]
    assert steps[0].started_at <= steps[0].finished_at
