"""Rollbacks in the core on real SQLite and PostgreSQL: choosing the target, the checks
before anything is written, and the application's state around a rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from deploybot.config import Settings
from deploybot.core import history as stored
from deploybot.core import lifecycle, rollbacks
from deploybot.db.engine import Database
from deploybot.db.models import Application, Deployment, ServiceRollout
from deploybot.domain import ApplicationState, DeploymentState, DeploymentTrigger, StepName
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.events.bus import EventBus
from deploybot.inputs import DeploymentRef, PageRequest, RollbackRequest
from deploybot.records import DeploymentRecord
from deploybot.runner.preflight import Preflight
from deploybot.runner.swarm import Swarm
from tests.conftest import BASE_IMAGE, both_databases

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def spec(image: str) -> dict[str, Any]:
    return {"Name": "ro-core_web", "TaskTemplate": {"ContainerSpec": {"Image": image}}}


async def history(db: Database, images: list[str]) -> list[int]:
    """One deployment per image, v1..vN, each succeeding the last; the newest is current."""
    ids: list[int] = []
    async with db.transaction() as session:
        for n, image in enumerate(images, start=1):
            row = Deployment(
                environment="test",
                application="ro-core",
                version=f"v{n}",
                commit_sha=f"{n:040x}",
                state=DeploymentState.SUCCESS if n == len(images) else DeploymentState.INACTIVE,
                created_at=T0 + timedelta(minutes=n),
                updated_at=T0 + timedelta(minutes=n),
            )
            session.add(row)
            await session.flush()
            assert row.id is not None
            ids.append(row.id)
            session.add(
                ServiceRollout(deployment_id=row.id, service="web", image=image, spec=spec(image))
            )
        session.add(
            Application(
                name="ro-core", environment="test", current_deployment_id=ids[-1],
                current_version=f"v{len(images)}", state=ApplicationState.HEALTHY,
            )
        )  # fmt: skip
    return ids


@pytest.fixture
def settings(tmp_path: Path, swarm: str) -> Settings:
    return Settings(environment="test", docker_host=swarm, work_dir=tmp_path / "work")


async def rollback(db: Database, settings: Settings, **kw: Any) -> DeploymentRecord:
    if "deployment_id" in kw:
        kw["deployment"] = DeploymentRef(None, kw.pop("deployment_id"))
    request = RollbackRequest(application=kw.pop("application", "ro-core"), **kw)
    swarm = Swarm(settings.docker_host)
    try:
        preflight = Preflight(settings, swarm)
        return await rollbacks.create_rollback(db, EventBus(), settings, preflight, request)
    finally:
        await swarm.close()


async def count(db: Database) -> int:
    page = await stored.list_deployments(db, None, PageRequest(first=100))
    return len(page.edges)


@both_databases
async def test_rollback_targets_and_links(database: Database, settings: Settings) -> None:
    first, second, current = await history(database, [BASE_IMAGE] * 3)
    previous = await rollback(database, settings)
    assert previous.rollback_to_id == second  # no version: the previous successful one
    assert previous.rollback_of_id == current
    assert previous.trigger is DeploymentTrigger.ROLLBACK
    assert previous.state is DeploymentState.QUEUED
    assert (previous.version, previous.commit_sha) == ("v2", f"{2:040x}")
    assert previous.previous_version == "v3"
    steps = (await stored.steps_for(database, [previous.id]))[previous.id]
    assert [s.name for s in steps] == ["rollout", "converge"]

    by_version = await rollback(database, settings, version="v1")
    assert by_version.rollback_to_id == first
    by_id = await rollback(database, settings, deployment_id=first)
    assert by_id.rollback_to_id == first


@both_databases
async def test_rollback_checks_write_nothing(database: Database, settings: Settings) -> None:
    first, _, current = await history(
        database, ["127.0.0.1:5000/ro-gone/web:1", BASE_IMAGE, BASE_IMAGE]
    )
    before = await count(database)
    cases: list[tuple[dict[str, Any], ErrorCode, str | None]] = [
        ({"deployment_id": 424242}, ErrorCode.DEPLOYMENT_NOT_FOUND, "deploymentId"),
        ({"version": "v9"}, ErrorCode.DEPLOYMENT_NOT_FOUND, "version"),
        ({"application": "ro-none"}, ErrorCode.DEPLOYMENT_NOT_FOUND, "application"),
        ({"deployment_id": current}, ErrorCode.INVALID_INPUT, "deploymentId"),
        ({"version": "v1"}, ErrorCode.BACKUP_NOT_FOUND, "version"),
        ({"deployment_id": first}, ErrorCode.BACKUP_NOT_FOUND, None),
    ]
    for kw, code, field in cases:
        with pytest.raises(DeploybotError) as caught:
            await rollback(database, settings, **kw)
        assert (caught.value.code, caught.value.field) == (code, field), kw
    with pytest.raises(ValidationFailed) as many:
        await rollback(database, settings, environment="prod", version="v1", deployment_id=first)
    assert [e.code for e in many.value.errors] == [
        ErrorCode.WRONG_ENVIRONMENT, ErrorCode.INVALID_INPUT
    ]  # fmt: skip
    assert await count(database) == before


@both_databases
async def test_application_state_through_a_rollback(database: Database) -> None:
    _, current = await history(database, [BASE_IMAGE, BASE_IMAGE])

    async def state() -> ApplicationState:
        async with database.session() as session:
            app = (await session.execute(select(Application))).scalar_one()
            return app.state

    await rollbacks.set_application_state(
        database, "ro-core", "test", ApplicationState.ROLLING_BACK
    )
    assert await state() is ApplicationState.ROLLING_BACK
    good = await rollbacks.last_good_deployment(database, "ro-core", "test")
    assert good is not None and good.id == current

    async with database.transaction() as session:
        failed = Deployment(environment="test", application="ro-core", version="v3",
                            state=DeploymentState.IN_PROGRESS)  # fmt: skip
        session.add(failed)
        await session.flush()
        assert failed.id is not None
        failed_id = failed.id
    await rollbacks.add_step(database, failed_id, StepName.ROLLBACK)
    await rollbacks.add_step(database, failed_id, StepName.ROLLBACK)  # once only
    await rollbacks.record_restored(database, failed_id, current)
    await lifecycle.finish_deployment(
        database, EventBus(), failed_id, DeploymentState.ROLLED_BACK, swarm_changed=True
    )
    assert await state() is ApplicationState.HEALTHY  # the last good one runs again
    row = await stored.get_deployment(database, failed_id)
    assert row is not None and row.rollback_to_id == current
    steps = (await stored.steps_for(database, [failed_id]))[failed_id]
    assert [s.name for s in steps] == ["rollback"]
    assert (await rollbacks.last_good_deployment(database, "ro-core", "test")).id == current


async def test_image_availability_asks_the_node_then_the_registry(
    settings: Settings, registry: str, swarm_client: Swarm
) -> None:
    preflight = Preflight(settings, swarm_client)
    assert await preflight.image_available(BASE_IMAGE) is True  # on the node
    assert await preflight.image_available(f"{registry}/ro-gone/web:1") is False
    assert await preflight.image_available("bad::reference") is False
