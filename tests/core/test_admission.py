"""Admission on real SQLite and PostgreSQL: concurrent requests, queueing and supersession,
idempotency keys, cancellation, dependencies.

Image deploys pinned by digest need no Docker to be admitted, so these tests drive the real
`create_deployment` with the real preflight; two `Database` objects stand for two processes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from deploybot.config import Settings
from deploybot.core import admission, history, lifecycle, queue
from deploybot.db.engine import Database
from deploybot.domain import DeploymentState, StepStatus
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.events.bus import EventBus
from deploybot.inputs import DeployRequest
from deploybot.namespaces import StackNamespaces
from deploybot.records import DeploymentRecord
from deploybot.runner.preflight import Preflight
from deploybot.runner.status import SwarmStatus
from deploybot.runner.swarm import Swarm
from tests.conftest import both_databases
from tests.gitserver import GitServer

DIGEST = "sha256:" + "ab" * 32


def request(app: str, version: str, **extra: object) -> DeployRequest:
    return DeployRequest(
        image=f"127.0.0.1:5000/{app}/web:{version}@{DIGEST}",
        application=app,
        service="web",
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(environment="test", work_dir=tmp_path)


async def deploy(db: Database, settings: Settings, req: DeployRequest) -> DeploymentRecord:
    swarm = Swarm(settings.docker_host)
    try:
        return await admission.create_deployment(
            db, EventBus(), settings, Preflight(settings, swarm), req
        )
    finally:
        await swarm.close()


@both_databases
async def test_concurrent_requests_admit_exactly_one(
    database: Database, empty_database_url: str, settings: Settings
) -> None:
    other = Database(empty_database_url)  # a second process's engine
    try:
        results = await asyncio.gather(
            *(
                deploy(database if i % 2 else other, settings, request("ad-race", f"{i}"))
                for i in range(8)
            ),
            return_exceptions=True,
        )
    finally:
        await other.dispose()
    accepted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(accepted) == 1, results
    assert all(
        isinstance(r, DeploybotError) and r.code is ErrorCode.DEPLOYMENT_IN_PROGRESS
        for r in refused
    ), refused
    assert await history.count_deployments(database, None) == 1


@both_databases
async def test_queued_request_waits_and_the_newest_supersedes(
    database: Database, settings: Settings
) -> None:
    first = await deploy(database, settings, request("ad-q", "1"))
    assert await queue.claim_next(database, "test", "runner-a") == first.id
    with pytest.raises(DeploybotError) as refused:
        await deploy(database, settings, request("ad-q", "2"))
    assert refused.value.code is ErrorCode.DEPLOYMENT_IN_PROGRESS
    assert f"#{first.id}" in refused.value.message

    older = await deploy(database, settings, request("ad-q", "2", queue=True))
    newer = await deploy(database, settings, request("ad-q", "3", queue=True))
    assert older.state is DeploymentState.QUEUED and newer.state is DeploymentState.QUEUED
    older_now = await history.get_deployment(database, older.id)
    assert older_now is not None and older_now.state is DeploymentState.CANCELLED
    assert f"superseded by deployment #{newer.id}" in older_now.error_message
    steps = (await history.steps_for(database, [older.id]))[older.id]
    assert {s.status for s in steps} == {StepStatus.SKIPPED}

    # Nothing else of the application runs while the first does; then the newest does.
    assert await queue.claim_next(database, "test", "runner-b") is None
    await lifecycle.finish_deployment(database, EventBus(), first.id, DeploymentState.SUCCESS)
    assert await queue.claim_next(database, "test", "runner-b") == newer.id
    started = await history.get_deployment(database, newer.id)
    assert started is not None and started.previous_version == "1"  # what ran when it started


@both_databases
async def test_idempotency_key_returns_the_same_deployment(
    database: Database, settings: Settings
) -> None:
    first = await deploy(database, settings, request("ad-idem", "1", idempotency_key="ci-77"))
    again = await deploy(database, settings, request("ad-idem", "1", idempotency_key="ci-77"))
    assert again.id == first.id
    assert first.idempotency_key == "ci-77"
    with pytest.raises(DeploybotError) as reused:
        await deploy(database, settings, request("ad-idem", "2", idempotency_key="ci-77"))
    assert reused.value.code is ErrorCode.IDEMPOTENCY_KEY_REUSED
    assert reused.value.field == "idempotencyKey"
    # Concurrent retries (a client timing out and retrying) still make one deployment.
    retries = await asyncio.gather(
        *(
            deploy(database, settings, request("ad-idem2", "1", idempotency_key="ci-78"))
            for _ in range(5)
        )
    )
    assert len({r.id for r in retries}) == 1
    # The same key for another application at the same time: the index keeps one of them.
    results = await asyncio.gather(
        deploy(database, settings, request("ad-idem3", "1", idempotency_key="ci-79")),
        deploy(database, settings, request("ad-idem4", "1", idempotency_key="ci-79")),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], DeploybotError), results
    assert errors[0].code is ErrorCode.IDEMPOTENCY_KEY_REUSED
    assert await history.count_deployments(database, None) == 3


@both_databases
async def test_cancel_queued_running_and_finished(database: Database, settings: Settings) -> None:
    bus = EventBus()
    running = await deploy(database, settings, request("ad-cancel", "1"))
    assert await queue.claim_next(database, "test", "runner-a") == running.id
    queued = await deploy(database, settings, request("ad-cancel", "2", queue=True))

    await admission.cancel_deployment(database, bus, queued.id, actor="ops")
    row = await history.get_deployment(database, queued.id)
    assert row is not None and row.state is DeploymentState.CANCELLED
    assert row.error_message == "cancelled by ops while queued"
    assert row.finished_at is not None

    assert not await queue.cancel_requested(database, running.id)
    await admission.cancel_deployment(database, bus, running.id)
    assert await queue.cancel_requested(database, running.id)
    row = await history.get_deployment(database, running.id)
    assert row is not None and row.state is DeploymentState.IN_PROGRESS  # its runner stops it

    await lifecycle.finish_deployment(database, bus, running.id, DeploymentState.CANCELLED)
    steps = (await history.steps_for(database, [running.id]))[running.id]
    assert {s.status for s in steps} == {StepStatus.SKIPPED}
    for finished in (running.id, queued.id):
        with pytest.raises(DeploybotError) as late:
            await admission.cancel_deployment(database, bus, finished)
        assert late.value.code is ErrorCode.DEPLOYMENT_FINISHED
    with pytest.raises(DeploybotError) as missing:
        await admission.cancel_deployment(database, bus, 424242)
    assert missing.value.code is ErrorCode.DEPLOYMENT_NOT_FOUND


@both_databases
async def test_dependency_not_running_refuses_before_writing(
    database: Database, settings: Settings, swarm_client: Swarm
) -> None:
    with pytest.raises(DeploybotError) as failed:
        await admission.create_deployment(
            database,
            EventBus(),
            settings,
            Preflight(settings, swarm_client),
            request("ad-dependent", "1", dependencies=["ad-nowhere"]),
            swarm=SwarmStatus(swarm_client, StackNamespaces()),
        )
    assert failed.value.code is ErrorCode.DEPENDENCY_FAILED
    assert "ad-nowhere is not deployed in test" in failed.value.message
    assert await history.count_deployments(database, None) == 0


def test_fingerprint_tells_retries_from_other_requests() -> None:
    base = request("ad-fp", "1", idempotency_key="k")
    assert admission.fingerprint(base) == admission.fingerprint(
        request("ad-fp", "1", idempotency_key="k", original_request={"clientMutationId": "x"})
    )
    assert admission.fingerprint(base) != admission.fingerprint(request("ad-fp", "2"))
    assert admission.fingerprint(base) != admission.fingerprint(request("ad-fp", "1", queue=True))


@pytest.fixture(scope="module")
def source_repo(git_server: GitServer) -> dict[str, str]:
    git_server.create_repo("core-app")
    sha = git_server.commit(
        "core-app",
        {
            "Dockerfile": "FROM deploybot/busybox:latest\n",
            "docker-compose.stack.yml": "services:\n  web:\n    build: .\n",
        },
        tag="v3.1.0",
    )
    return {"url": git_server.url("core-app"), "sha": sha}


@both_databases
async def test_create_checks_first_and_queues(
    database: Database, source_repo: dict[str, str], swarm_client: Swarm, tmp_path: Path
) -> None:
    settings = Settings(environment="test", work_dir=tmp_path, registry="127.0.0.1:5000")
    preflight = Preflight(settings, swarm_client)
    bus = EventBus()

    with pytest.raises(ValidationFailed) as failed:
        await admission.create_deployment(
            database,
            bus,
            settings,
            preflight,
            DeployRequest(
                repository_url=source_repo["url"], environment="prod", application="Bad Name"
            ),
        )
    fields = {e.field: e.code for e in failed.value.errors}
    assert fields == {
        "environment": ErrorCode.WRONG_ENVIRONMENT,
        "commitSha": ErrorCode.INVALID_INPUT,
        "application": ErrorCode.INVALID_INPUT,
    }
    assert await history.count_deployments(database, None) == 0

    record = await admission.create_deployment(
        database,
        bus,
        settings,
        preflight,
        DeployRequest(repository_url=source_repo["url"], commit_sha=source_repo["sha"][:10]),
    )
    assert record.application == "core-app"
    assert record.commit_sha == source_repo["sha"]  # an abbreviated sha is recorded in full
    assert record.version == "v3.1.0"
    assert record.state is DeploymentState.QUEUED
    steps = (await history.steps_for(database, [record.id]))[record.id]
    assert [s.name for s in steps] == ["fetch", "build", "push", "rollout", "converge"]


async def at_once(
    db: Database, settings: Settings, req: DeployRequest, along: admission.WriteAlong
) -> DeploymentRecord:
    swarm = Swarm(settings.docker_host)
    try:
        return await admission.admit_at_once(
            db, EventBus(), settings, Preflight(settings, swarm), req, along
        )
    finally:
        await swarm.close()


@both_databases
async def test_admit_at_once_is_one_transaction_with_what_goes_along(
    database: Database, empty_database_url: str, settings: Settings
) -> None:
    """A webhook's path: the same rules as `create_deployment`, and the rows written along
    commit with the deployment or not at all."""
    along: list[int] = []

    async def record(session: object, deployment_id: int) -> None:
        along.append(deployment_id)

    async def broken(session: object, deployment_id: int) -> None:
        raise RuntimeError("the delivery could not be written")

    with pytest.raises(RuntimeError):
        await at_once(database, settings, request("ao-a", "1"), broken)
    assert await history.count_deployments(database, None) == 0  # rolled back with it

    other = Database(empty_database_url)  # a second process's engine
    try:
        results = await asyncio.gather(
            *(
                at_once(database if i % 2 else other, settings, request("ao-b", f"{i}"), record)
                for i in range(6)
            ),
            return_exceptions=True,
        )
    finally:
        await other.dispose()
    accepted = [r for r in results if isinstance(r, DeploymentRecord)]
    assert len(accepted) == 1, results
    assert all(
        isinstance(r, DeploybotError) and r.code is ErrorCode.DEPLOYMENT_IN_PROGRESS
        for r in results
        if r is not accepted[0]
    ), results
    assert along == [accepted[0].id] and accepted[0].state is DeploymentState.QUEUED
    steps = (await history.steps_for(database, [accepted[0].id]))[accepted[0].id]
    assert steps and {s.status for s in steps} == {StepStatus.PENDING}

    older = await at_once(database, settings, request("ao-b", "7", queue=True), record)
    newer = await at_once(
        database, settings, request("ao-b", "8", queue=True, idempotency_key="k"), record
    )
    again = await at_once(
        database, settings, request("ao-b", "8", queue=True, idempotency_key="k"), record
    )
    assert again.id == newer.id and along[-2:] == [newer.id, newer.id]  # a replay, along too
    older_now = await history.get_deployment(database, older.id)
    assert older_now is not None and older_now.state is DeploymentState.CANCELLED
    assert f"superseded by deployment #{newer.id}" in (older_now.error_message or "")
