"""The deployments service on real SQLite and PostgreSQL: filters, keyset pages, the claim,
the end of a deployment, and creation checks."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deploybot.config import Settings
from deploybot.core import deployments as core
from deploybot.core.filters import DeploymentFilter
from deploybot.db.engine import Database
from deploybot.db.models import Deployment, DeploymentStep
from deploybot.domain import DeploymentState, StepName, StepStatus
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.events.bus import EventBus
from deploybot.runner.preflight import Preflight
from deploybot.runner.swarm import Swarm
from tests.conftest import both_databases
from tests.gitserver import GitServer

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STATES = [DeploymentState.SUCCESS, DeploymentState.FAILURE, DeploymentState.QUEUED]


async def seed(db: Database, count: int = 30) -> list[int]:
    ids = []
    async with db.transaction() as session:
        for i in range(count):
            row = Deployment(
                environment=["staging", "production"][i % 2],
                application=["web", "api", "worker"][i % 3],
                repository_url=f"git://git.example/team/{['web', 'api', 'worker'][i % 3]}.git",
                ref="main" if i % 4 else "release",
                commit_sha=f"{i:02x}" + "ab" * 19,
                version=f"1.0.{i}",
                state=STATES[i % 3],
                created_at=T0 + timedelta(hours=i),
                updated_at=T0 + timedelta(hours=i),
            )
            session.add(row)
            await session.flush()
            assert row.id is not None
            ids.append(row.id)
    return ids


async def numbers(db: Database, flt: DeploymentFilter, **kw: object) -> list[int]:
    page = await core.list_deployments(db, flt, **kw)  # type: ignore[arg-type]
    return [r["id"] for r in page.rows]


@both_databases
async def test_filters(database: Database) -> None:
    ids = await seed(database)
    newest_first = list(reversed(ids))
    f = DeploymentFilter
    assert await numbers(database, f(), first=100) == newest_first
    assert await numbers(database, f(environments=["staging"]), first=100) == newest_first[1::2]
    assert (
        await numbers(database, f(applications=["api"]), first=100)
        == [i for n, i in enumerate(ids) if n % 3 == 1][::-1]
    )
    assert (
        len(await numbers(database, f(repository="git://git.example/team/*.git"), first=100)) == 30
    )
    assert (
        len(await numbers(database, f(repository="git://git.example/team/w??.git"), first=100))
        == 10
    )
    assert (
        await numbers(database, f(repository="git://git.example/team/web.git"), first=100)
        == [i for n, i in enumerate(ids) if n % 3 == 0][::-1]
    )
    # LIKE metacharacters in a pattern are literal.
    assert await numbers(database, f(repository="git://git.example/team/%"), first=100) == []
    assert await numbers(database, f(commit_sha="05ab"), first=100) == [ids[5]]
    assert await numbers(database, f(commit_sha="05AB"), first=100) == [ids[5]]
    assert await numbers(database, f(refs=["release"]), first=100) == newest_first[-1::-4][::-1]
    assert (
        await numbers(
            database, f(states=[DeploymentState.FAILURE, DeploymentState.QUEUED]), first=100
        )
        == [i for n, i in enumerate(ids) if n % 3][::-1]
    )
    window = f(created_after=T0 + timedelta(hours=10), created_before=T0 + timedelta(hours=13))
    assert await numbers(database, window, first=100) == [ids[12], ids[11], ids[10]]
    combined = f(environments=["production"], states=[DeploymentState.SUCCESS])
    assert (
        await numbers(database, combined, first=100)
        == [i for n, i in enumerate(ids) if n % 2 == 1 and n % 3 == 0][::-1]
    )
    assert await core.count_deployments(database, combined) == 5
    assert await core.count_deployments(database, None) == 30
    with pytest.raises(DeploybotError):
        await numbers(database, f(commit_sha="xyz"), first=10)


@both_databases
async def test_keyset_pages_both_directions(database: Database) -> None:
    ids = await seed(database, 25)
    newest_first = list(reversed(ids))
    seen: list[int] = []
    after = None
    while True:
        page = await core.list_deployments(database, None, first=10, after=after)
        seen += [r["id"] for r in page.rows]
        if not page.has_next:
            break
        after = page.rows[-1]["id"]
    assert seen == newest_first

    # Backwards from the end: last 10 before the oldest.
    page = await core.list_deployments(database, None, last=10, before=ids[0])
    assert [r["id"] for r in page.rows] == newest_first[14:24]
    assert page.has_previous is True and page.has_next is True

    ascending = await core.list_deployments(database, None, first=3, descending=False)
    assert [r["id"] for r in ascending.rows] == ids[:3]
    for bad in ({"first": 0}, {"first": 101}, {"first": 1, "last": 1}):
        with pytest.raises(DeploybotError):
            await core.list_deployments(database, None, **bad)  # type: ignore[arg-type]


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
        while (claimed := await core.claim_next(database, "test", name)) is not None:
            got.append(claimed)
        return got

    results = await asyncio.gather(*(claimer(f"r{i}") for i in range(4)))
    claimed = sorted(i for r in results for i in r)
    # Each of the 4 applications had one claimed; the second of each waits for the first.
    assert len(claimed) == 4 and len(set(claimed)) == 4
    rows = [await core.get_deployment(database, i) for i in claimed]
    assert sorted(r.application for r in rows if r) == ["app0", "app1", "app2", "app3"]
    assert all(r is not None and r.state is DeploymentState.IN_PROGRESS for r in rows)
    assert await core.claim_next(database, "other-env", "r") is None


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
        await core.set_step(database, ids[0], StepName.FETCH, StepStatus.RUNNING)
        await core.set_step(database, ids[0], StepName.FETCH, StepStatus.COMPLETED, message="ok")
        await core.finish_deployment(database, bus, ids[0], DeploymentState.SUCCESS)
        await core.finish_deployment(database, bus, ids[1], DeploymentState.SUCCESS)
        events = [sub.queue.get_nowait() for _ in range(2)]
    assert [e.state for e in events] == ["SUCCESS", "SUCCESS"]
    first, second = [await core.get_deployment(database, i) for i in ids]
    assert first is not None and second is not None
    assert first.state is DeploymentState.INACTIVE
    assert second.state is DeploymentState.SUCCESS and second.finished_at is not None
    steps = (await core.steps_for(database, [ids[0]]))[ids[0]]
    assert [(s.name, s.status) for s in steps] == [
        ("fetch", StepStatus.COMPLETED),
        ("rollout", StepStatus.SKIPPED),
    ]
    assert steps[0].started_at <= steps[0].finished_at


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
        await core.create_deployment(
            database,
            bus,
            settings,
            preflight,
            core.DeployRequest(
                repository_url=source_repo["url"], environment="prod", application="Bad Name"
            ),
        )
    fields = {e.field: e.code for e in failed.value.errors}
    assert fields == {
        "environment": ErrorCode.WRONG_ENVIRONMENT,
        "commitSha": ErrorCode.INVALID_INPUT,
        "application": ErrorCode.INVALID_INPUT,
    }
    assert await core.count_deployments(database, None) == 0

    record = await core.create_deployment(
        database,
        bus,
        settings,
        preflight,
        core.DeployRequest(repository_url=source_repo["url"], commit_sha=source_repo["sha"][:10]),
    )
    assert record.application == "core-app"
    assert record.commit_sha == source_repo["sha"]  # an abbreviated sha is recorded in full
    assert record.version == "v3.1.0"
    assert record.state is DeploymentState.QUEUED
    steps = (await core.steps_for(database, [record.id]))[record.id]
    assert [s.name for s in steps] == ["fetch", "build", "push", "rollout", "converge"]


def test_application_names_from_sources() -> None:
    assert core.application_name_from("git://host/team/Web_App.git", None) == "web_app"
    assert core.application_name_from("git@github.com:team/api.git", None) == "api"
    assert core.application_name_from(None, "127.0.0.1:5000/team/api:1.2@sha256:ab") == "api"
    assert core.application_name_from("/srv/repos/shop/", None) == "shop"


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
    lost = await core.abandoned(database, "test", host, stale_after=300)
    # a: its process is gone; b: pid 1 lives; c: fresh heartbeat elsewhere; d: stale elsewhere.
    assert sorted(lost) == sorted([ids[0], ids[3]])
    assert core.runner_alive(f"{host}-1-x", host) is True
    assert core.runner_alive("other-host-1-x", host) is None
