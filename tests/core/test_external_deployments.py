"""Deployments recorded from other tools, on real SQLite and PostgreSQL: forgiving recording,
the state machine an outside runner drives, the runner's hands off, current versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from deploybot.config import Settings
from deploybot.core import external_deployments as external
from deploybot.core import history, queue, releases
from deploybot.core.current_versions import current_versions
from deploybot.db.engine import Database
from deploybot.db.models import Deployment, deployment_table
from deploybot.domain import DeploymentState, DeploymentTrigger
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.events.bus import EventBus
from deploybot.inputs import PageRequest, RecordedService, RecordRequest
from tests.conftest import both_databases

SETTINGS = Settings(environment="production")
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


@both_databases
async def test_the_runner_never_takes_a_recorded_deployment(database: Database) -> None:
    bus = EventBus()
    queued = await external.record_deployment(
        database, bus, SETTINGS, RecordRequest("rl-legacy", "7.1", state=DeploymentState.QUEUED)
    )
    assert queued.trigger is DeploymentTrigger.EXTERNAL
    assert queued.finished_at is None and queued.started_at is None
    assert await queue.claim_next(database, "production", "runner-1") is None

    running = await external.report_status(
        database, bus, SETTINGS, queued.id, DeploymentState.IN_PROGRESS, "copying"
    )
    assert running.state is DeploymentState.IN_PROGRESS and running.started_at is not None
    # Hours without a word from its runner: still not deploybot's to end.
    async with database.transaction() as session:
        await session.execute(
            update(deployment_table)
            .where(deployment_table.c.id == queued.id)
            .values(updated_at=T0 - timedelta(days=1))
        )
    assert await queue.abandoned(database, "production", "nohost", stale_after=60) == []

    # deploybot's own queued deployment of another application is still claimed.
    async with database.transaction() as session:
        own = Deployment(environment="production", application="rl-own", version="1")
        session.add(own)
        await session.flush()
    assert await queue.claim_next(database, "production", "runner-1") == own.id
    with pytest.raises(DeploybotError) as not_ours:
        await external.report_status(
            database, bus, SETTINGS, int(own.id or 0), DeploymentState.SUCCESS
        )
    assert not_ours.value.code is ErrorCode.NOT_EXTERNAL


@both_databases
async def test_only_legal_transitions(database: Database) -> None:
    bus = EventBus()
    record = await external.record_deployment(
        database, bus, SETTINGS, RecordRequest("rl-legacy", "7.2", state=DeploymentState.QUEUED)
    )
    await external.report_status(database, bus, SETTINGS, record.id, DeploymentState.IN_PROGRESS)
    again = await external.report_status(
        database, bus, SETTINGS, record.id, DeploymentState.IN_PROGRESS, "half way"
    )
    assert again.state is DeploymentState.IN_PROGRESS
    with pytest.raises(DeploybotError) as back:
        await external.report_status(database, bus, SETTINGS, record.id, DeploymentState.QUEUED)
    assert back.value.code is ErrorCode.INVALID_STATE_TRANSITION
    # One deployment of an application in progress at a time, whoever runs it.
    other = await external.record_deployment(
        database, bus, SETTINGS, RecordRequest("rl-legacy", "7.3", state=DeploymentState.QUEUED)
    )
    with pytest.raises(DeploybotError) as busy:
        await external.report_status(database, bus, SETTINGS, other.id, DeploymentState.IN_PROGRESS)
    assert busy.value.code is ErrorCode.DEPLOYMENT_IN_PROGRESS

    failed = await external.report_status(
        database, bus, SETTINGS, record.id, DeploymentState.FAILURE, "disk full"
    )
    assert failed.state is DeploymentState.FAILURE
    assert failed.error_message == "disk full" and failed.finished_at is not None
    for state in (DeploymentState.SUCCESS, DeploymentState.IN_PROGRESS, DeploymentState.FAILURE):
        with pytest.raises(DeploybotError) as final:
            await external.report_status(database, bus, SETTINGS, record.id, state)
        assert final.value.code is ErrorCode.INVALID_STATE_TRANSITION
    with pytest.raises(DeploybotError) as inactive:
        await external.report_status(database, bus, SETTINGS, other.id, DeploymentState.INACTIVE)
    assert inactive.value.code is ErrorCode.INVALID_STATE_TRANSITION
    with pytest.raises(DeploybotError) as missing:
        await external.report_status(database, bus, SETTINGS, 999_999, DeploymentState.SUCCESS)
    assert missing.value.code is ErrorCode.DEPLOYMENT_NOT_FOUND


@both_databases
async def test_recording_fills_in_what_it_can_and_refuses_what_it_cannot(
    database: Database,
) -> None:
    bus = EventBus()
    done = await external.record_deployment(
        database,
        bus,
        SETTINGS,
        RecordRequest(
            "rl-legacy",
            "8.0",
            finished_at="2026-04-01T10:00:00+02:00",
            duration=90,
            services=[RecordedService("api", duration=30)],
        ),
    )
    assert done.finished_at == datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
    assert done.started_at == datetime(2026, 4, 1, 7, 58, 30, tzinfo=UTC)
    rollouts = (await history.services_for(database, [done.id]))[done.id]
    assert rollouts[0].finished_at == done.finished_at  # a duration alone ends with the deployment
    assert rollouts[0].started_at == done.finished_at - timedelta(seconds=30)
    assert rollouts[0].version == "8.0"

    with pytest.raises(ValidationFailed) as failed:
        await external.record_deployment(
            database,
            bus,
            SETTINGS,
            RecordRequest(
                "RL Legacy",
                "",
                environment="staging",
                state=DeploymentState.INACTIVE,
                commit_sha="xyz",
                started_at="2026-04-01T10:00:00Z",
                finished_at="2026-04-01T09:00:00Z",
                duration=-1,
                hosts=[""],
                services=[RecordedService("web"), RecordedService("web", finished_at="soon")],
            ),
        )
    assert {(e.field, e.code.value) for e in failed.value.errors} == {
        ("application", "INVALID_INPUT"),
        ("version", "INVALID_INPUT"),
        ("environment", "WRONG_ENVIRONMENT"),
        ("state", "INVALID_INPUT"),
        ("commitSha", "INVALID_INPUT"),
        ("duration", "INVALID_INPUT"),
        ("finishedAt", "INVALID_INPUT"),
        ("hosts[0]", "INVALID_INPUT"),
        ("services[1].name", "INVALID_INPUT"),
        ("services[1].finishedAt", "INVALID_INPUT"),
    }
    with pytest.raises(DeploybotError) as empty:
        await external.add_result(database, bus, done.id, "  ")
    assert empty.value.field == "result"


@both_databases
async def test_current_version_per_environment_and_service(database: Database) -> None:
    bus = EventBus()

    async def record(version: str, hours: int, **kw: object) -> int:
        row = await external.record_deployment(
            database,
            bus,
            SETTINGS,
            RecordRequest(
                "rl-shop",
                version,
                finished_at=T0 + timedelta(hours=hours),
                **kw,  # type: ignore[arg-type]
            ),
        )
        return int(row.id)

    first = await record(
        "1.0",
        0,
        services=[
            RecordedService("web", hosts=["web-1", "web-2"]),
            RecordedService("worker", version="1.0-w", hosts=["job-1"]),
        ],
    )
    second = await record("1.1", 2, services=[RecordedService("web", hosts=["web-1"])])
    late = await record("0.9", -5)  # an older deployment, recorded late
    await record("1.2", 3, state=DeploymentState.FAILURE)

    found = await current_versions(database, "rl-shop")
    assert len(found) == 1
    current = found[0]
    assert (current.environment, current.version, current.deployment_id) == (
        "production",
        "1.1",
        second,
    )
    services = {s.service: (s.version, s.nodes, s.deployment_id) for s in current.services}
    assert services == {
        "web": ("1.1", ["web-1"], second),
        "worker": ("1.0-w", ["job-1"], first),
    }
    page = await history.list_deployments(database, None, PageRequest())
    states = {r.id: r.state for r in page.nodes}
    assert states[first] is DeploymentState.INACTIVE
    assert states[late] is DeploymentState.INACTIVE  # it never became current
    late_release = await releases.latest_release(
        database, "rl-shop", "stable", environment="staging", by_semver=False
    )
    assert late_release is not None and late_release.version == "1.1"
    assert (
        await releases.find_release(database, "rl-shop", "stable", "0.9", environment="staging")
        is not None
    )
    assert await current_versions(database, "rl-shop", "staging") == []
