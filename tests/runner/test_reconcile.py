"""Taking over a deployment: what the new runner decides from the steps, and what it removes
of the old runner's leftovers on the real Swarm."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from deploybot.config import Settings
from deploybot.core import history, queue
from deploybot.core.logs import LogWriter
from deploybot.db.engine import Database
from deploybot.db.models import Deployment, DeploymentStep
from deploybot.domain import DeploymentState, StepName, StepStatus
from deploybot.errors import ErrorCode
from deploybot.events.bus import EventBus
from deploybot.runner import reconcile
from deploybot.runner.phases import held
from deploybot.runner.pipeline import execute
from deploybot.runner.preflight import mirror_cache
from deploybot.runner.run import DeploymentRun, RunnerContext
from deploybot.runner.strategies import CANARY_LABEL
from deploybot.runner.swarm import NAMESPACE_LABEL, Swarm
from tests.conftest import remove_stack

NAMESPACE = "rn-rc"
P, R, C = StepStatus.PENDING, StepStatus.RUNNING, StepStatus.COMPLETED


@pytest.mark.parametrize(
    ("statuses", "sent"),
    [
        ({StepName.FETCH: C, StepName.ROLLOUT: R, StepName.CONVERGE: P}, False),
        ({StepName.FETCH: C, StepName.ROLLOUT: C, StepName.CONVERGE: P}, True),
        ({StepName.ROLLOUT: C, StepName.CONVERGE: R}, True),
        ({StepName.CANARY: C, StepName.ROLLOUT: P}, False),
        ({StepName.ROLLOUT: C, StepName.ROLLBACK: R}, True),
        ({StepName.FETCH: R, StepName.BUILD: P}, False),
    ],
)
def test_the_rollout_is_watched_once_it_was_sent(
    statuses: dict[StepName, StepStatus], sent: bool
) -> None:
    assert reconcile.rollout_sent(statuses) is sent


def test_a_running_hook_is_not_repeated() -> None:
    assert reconcile.unsafe_step({StepName.PRE_DEPLOY: R}) is StepName.PRE_DEPLOY
    assert reconcile.unsafe_step({StepName.POST_DEPLOY: R}) is StepName.POST_DEPLOY
    assert reconcile.unsafe_step({StepName.PRE_DEPLOY: C, StepName.BUILD: R}) is None


async def _deployment(database: Database, steps: dict[StepName, StepStatus]) -> int:
    async with database.transaction() as session:
        row = Deployment(
            environment="test",
            application=NAMESPACE,
            image="deploybot/busybox:latest",
            service="app",
            version="2",
            state=DeploymentState.QUEUED,
        )
        session.add(row)
        await session.flush()
        assert row.id is not None
        for position, (name, status) in enumerate(steps.items()):
            session.add(
                DeploymentStep(
                    deployment_id=row.id, position=position, name=name.value, status=status
                )
            )
        return int(row.id)


@pytest.fixture
async def context(
    database: Database, swarm: str, swarm_client: Swarm, tmp_path: Path
) -> AsyncIterator[RunnerContext]:
    remove_stack(NAMESPACE)
    settings = Settings(environment="test", docker_host=swarm, work_dir=tmp_path)
    yield RunnerContext(
        database, EventBus(), settings, mirror_cache(settings), swarm_client, runner_id="new"
    )
    for name in (f"{NAMESPACE}_app-canary", f"{NAMESPACE}_app-canary-other"):
        found = await swarm_client.find_service(name)
        if found:
            await swarm_client.remove_service(found["ID"])
    remove_stack(NAMESPACE)


def _service(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "Name": name,
        "Labels": labels,
        "TaskTemplate": {
            "ContainerSpec": {"Image": "deploybot/busybox:latest", "Args": ["sleep", "600"]},
            "RestartPolicy": {"Condition": "none"},
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "EndpointSpec": {"Mode": "dnsrr"},
    }


async def test_leftovers_of_the_old_runner_are_removed_and_a_hold_undone(
    context: RunnerContext, swarm_client: Swarm
) -> None:
    deployment_id = await _deployment(context.db, {StepName.ROLLOUT: R})
    app = _service(f"{NAMESPACE}_app", {NAMESPACE_LABEL: NAMESPACE})
    await swarm_client.deploy_service(app)
    current = await swarm_client.find_service(app["Name"])
    assert current is not None
    await swarm_client.deploy_service(held(current["Spec"], deployment_id))  # RECREATE's hold
    mine = {CANARY_LABEL: app["Name"], "com.deploybot.deployment": str(deployment_id)}
    await swarm_client.deploy_service(_service(f"{NAMESPACE}_app-canary", mine))
    theirs = {CANARY_LABEL: app["Name"], "com.deploybot.deployment": str(deployment_id + 1)}
    await swarm_client.deploy_service(_service(f"{NAMESPACE}_app-canary-other", theirs))

    record = await history.get_deployment(context.db, deployment_id)
    assert record is not None
    async with LogWriter(context.db, context.bus, deployment_id) as log:
        await reconcile.clean_up(DeploymentRun(context, record, log))

    assert await swarm_client.find_service(f"{NAMESPACE}_app-canary") is None
    assert await swarm_client.find_service(f"{NAMESPACE}_app-canary-other") is not None
    after = await swarm_client.find_service(app["Name"])
    assert after is not None
    constraints = after["Spec"]["TaskTemplate"].get("Placement", {}).get("Constraints") or []
    assert not any("com.deploybot.recreate" in c for c in constraints)


async def test_a_deployment_stopped_in_its_pre_deploy_hook_ends_error_naming_it(
    context: RunnerContext,
) -> None:
    deployment_id = await _deployment(
        context.db,
        {StepName.FETCH: C, StepName.PRE_DEPLOY: R, StepName.ROLLOUT: P, StepName.CONVERGE: P},
    )
    assert await queue.claim_next(context.db, "test", "new") == deployment_id
    state = await execute(context, deployment_id, replaced="runner old-1-x died")
    assert state is DeploymentState.ERROR
    done = await history.get_deployment(context.db, deployment_id)
    assert done is not None
    assert done.error_code == ErrorCode.RUNNER_LOST
    assert done.error_message is not None
    assert "during the pre-deploy step" in done.error_message
    assert "runner old-1-x died" in done.error_message
