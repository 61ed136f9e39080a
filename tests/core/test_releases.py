"""The release catalogue on real SQLite and PostgreSQL: publishing (times in UTC, conflicts,
field errors), keyset pages, the latest release, and the release a deployment publishes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deploybot.config import Settings, parse_release_trains
from deploybot.core import releases as core
from deploybot.db.engine import Database
from deploybot.db.models import Deployment
from deploybot.domain import DeploymentState
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.filters import ReleaseFilter
from deploybot.inputs import PublishRequest
from tests.conftest import both_databases

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ENV = "local"


def test_trains_from_branches() -> None:
    settings = Settings(release_trains="main=stable, develop=beta", release_default_train="edge")
    assert core.train_for(settings, "main") == "stable"
    assert core.train_for(settings, "develop") == "beta"
    assert core.train_for(settings, "feature/login") == "feature/login"
    assert core.train_for(settings, None) == "edge"
    assert parse_release_trains("") == {}
    with pytest.raises(ValueError):
        Settings(release_trains="main")


@both_databases
async def test_publish_query_and_conflict(database: Database) -> None:
    first = await core.publish_release(
        database,
        environment=ENV,
        request=PublishRequest(
            "deis-builder", "beta", "2.0.0-beta2", "2016-04-16T23:54:39+07:00", {"notes": "b2"}
        ),
    )
    assert first.released_at == datetime(2016, 4, 16, 16, 54, 39, tzinfo=UTC)
    assert first.data == {"notes": "b2"}
    naive = await core.publish_release(
        database,
        environment=ENV,
        request=PublishRequest("deis-builder", "beta", "2.0.0-beta3", "2016-04-20T10:00:00", {}),
    )
    assert naive.released_at == datetime(2016, 4, 20, 10, 0, tzinfo=UTC)

    with pytest.raises(DeploybotError) as conflict:
        await core.publish_release(
            database,
            environment=ENV,
            request=PublishRequest("deis-builder", "beta", "2.0.0-beta2", "2016-05-01T00:00:00Z"),
        )
    assert conflict.value.code is ErrorCode.RELEASE_EXISTS
    # The same version on another train is another release.
    await core.publish_release(
        database,
        environment=ENV,
        request=PublishRequest("deis-builder", "stable", "2.0.0-beta2", "2016-04-17T00:00:00Z"),
    )
    assert await core.count_releases(database, ReleaseFilter(trains=["beta"])) == 2


@both_databases
async def test_every_other_mistake_is_a_field_error(database: Database) -> None:
    with pytest.raises(ValidationFailed) as failed:
        await core.publish_release(
            database,
            environment=ENV,
            request=PublishRequest("", "be ta", " ", "2016-04-16T23:54:39Z07:00", ["x"]),
        )
    assert {(e.field, e.code) for e in failed.value.errors} == {
        ("component", ErrorCode.INVALID_INPUT),
        ("train", ErrorCode.INVALID_INPUT),
        ("version", ErrorCode.INVALID_INPUT),
        ("releasedAt", ErrorCode.INVALID_INPUT),
        ("data", ErrorCode.INVALID_INPUT),
    }
    assert await core.count_releases(database, None) == 0


@both_databases
async def test_keyset_pages_by_release_time_and_latest(database: Database) -> None:
    versions = ["1.0.0", "1.1.0", "1.10.0", "1.2.0", "2.0.0-rc.1", "1.9.0"]
    for hours, version in enumerate(versions):
        await core.publish_release(
            database,
            environment=ENV,
            request=PublishRequest("web", "stable", version, T0 + timedelta(hours=hours)),
        )
    # Same release time for two others: ties go by id.
    for version in ("0.1.0", "0.2.0"):
        await core.publish_release(
            database, environment=ENV, request=PublishRequest("api", "stable", version, T0)
        )

    seen: list[str] = []
    after = None
    while True:
        page = await core.list_releases(database, None, environment=ENV, first=3, after=after)
        seen += [f"{r.component}@{r.version}" for r in page.nodes]
        if not page.has_next:
            break
        after = page.edges[-1].cursor
    # Newest release first; the three released at T0 by id, newest published first.
    assert seen == [
        "web@1.9.0",
        "web@2.0.0-rc.1",
        "web@1.2.0",
        "web@1.10.0",
        "web@1.1.0",
        "api@0.2.0",
        "api@0.1.0",
        "web@1.0.0",
    ]

    window = await core.list_releases(
        database,
        ReleaseFilter(
            components=["web"],
            released_after=T0 + timedelta(hours=1),
            released_before=T0 + timedelta(hours=3),
        ),
        environment=ENV,
        descending=False,
    )
    assert [r.version for r in window.nodes] == ["1.1.0", "1.10.0"]

    by_time = await core.latest_release(database, "web", "stable", environment=ENV)
    assert by_time is not None and by_time.version == "1.9.0"
    by_semver = await core.latest_release(
        database, "web", "stable", environment=ENV, by_semver=True
    )
    assert by_semver is not None and by_semver.version == "2.0.0-rc.1"
    assert await core.latest_release(database, "web", "beta", environment=ENV) is None


@both_databases
async def test_a_deployment_publishes_its_release_once(database: Database) -> None:
    settings = Settings(release_trains="main=stable,develop=beta")
    committed = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
    ids = []
    async with database.transaction() as session:
        for ref in ("develop", "develop", None):
            row = Deployment(
                environment="local",
                application="shop",
                repository_url="git://git.example/shop.git",
                ref=ref,
                commit_sha="ab" * 20,
                committed_at=committed,
                version="v1.4.0",
                state=DeploymentState.IN_PROGRESS if not ids else DeploymentState.QUEUED,
            )
            session.add(row)
            await session.flush()
            assert row.id is not None
            ids.append(row.id)
    first = await core.publish_deployment_release(database, settings, ids[0], branch="develop")
    again = await core.publish_deployment_release(database, settings, ids[1], branch="develop")
    assert first is not None and first == again  # redeploying a version is no conflict
    release = await core.get_release(database, first, environment=ENV)
    assert release is not None
    assert (release.component, release.train, release.version) == ("shop", "beta", "v1.4.0")
    assert release.released_at == committed
    assert release.deployment_id == ids[0]
    assert release.data["commitSha"] == "ab" * 20
    other = await core.publish_deployment_release(database, settings, ids[2], branch=None)
    assert other is not None and other != first
    stable = await core.get_release(database, other, environment=ENV)
    assert stable is not None and stable.train == "stable"
