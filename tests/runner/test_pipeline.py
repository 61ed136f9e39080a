"""The runner's half of admission: dependencies are checked again just before the rollout,
so a dependency that went down after the request was accepted stops it untouched."""

from __future__ import annotations

from pathlib import Path

from deploybot.config import Settings
from deploybot.core import history, queue
from deploybot.db.engine import Database
from deploybot.db.models import Deployment, DeploymentStep
from deploybot.domain import DeploymentState, StepName, StepStatus
from deploybot.events.bus import EventBus
from deploybot.runner.pipeline import execute
from deploybot.runner.preflight import mirror_cache
from deploybot.runner.run import RunnerContext
from deploybot.runner.swarm import Swarm
from tests.conftest import docker

DIGEST = "sha256:" + "cd" * 32


async def test_dependency_down_at_rollout_fails_before_the_swarm_changes(
    database: Database, swarm: str, swarm_client: Swarm, tmp_path: Path
) -> None:
    async with database.transaction() as session:
        row = Deployment(
            environment="test",
            application="ad-late-dependent",
            image=f"127.0.0.1:5000/ad/late:1@{DIGEST}",
            service="web",
            version="1",
            dependencies=["ad-gone"],
            state=DeploymentState.QUEUED,
        )
        session.add(row)
        await session.flush()
        assert row.id is not None
        for position, step in enumerate((StepName.FETCH, StepName.ROLLOUT, StepName.CONVERGE)):
            session.add(DeploymentStep(deployment_id=row.id, position=position, name=step.value))
        deployment_id = row.id
    assert await queue.claim_next(database, "test", "runner-t") == deployment_id

    settings = Settings(environment="test", docker_host=swarm, work_dir=tmp_path)
    ctx = RunnerContext(
        database, EventBus(), settings, mirror_cache(settings), swarm_client, runner_id="runner-t"
    )
    assert await execute(ctx, deployment_id) is DeploymentState.FAILURE

    done = await history.get_deployment(database, deployment_id)
    assert done is not None
    assert done.error_code == "DEPENDENCY_FAILED"
    assert "ad-gone is not deployed in test" in done.error_message
    steps = (await history.steps_for(database, [deployment_id]))[deployment_id]
    assert [(s.name, s.status) for s in steps] == [
        ("fetch", StepStatus.COMPLETED),
        ("rollout", StepStatus.SKIPPED),  # checked before any phase that touches the Swarm
        ("converge", StepStatus.SKIPPED),
    ]
    assert docker("service", "ls", "-q", "--filter", "name=ad-late-dependent_").strip() == ""
