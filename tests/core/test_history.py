"""Reading deployments: filters, keyset pages, counts (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deploybot.core import history
from deploybot.db.engine import Database
from deploybot.db.models import Deployment
from deploybot.domain import DeploymentState
from deploybot.errors import DeploybotError
from deploybot.filters import DeploymentFilter
from deploybot.ids import encode_cursor
from deploybot.inputs import PageRequest
from deploybot.records import DeploymentRecord, Page
from tests.conftest import both_databases

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


async def list_page(
    db: Database,
    flt: DeploymentFilter | None,
    *,
    after: int | None = None,
    before: int | None = None,
    **kw: Any,
) -> Page[DeploymentRecord]:
    """A page as the history reads it, positions given as deployment ids."""
    cursors = {
        "after": encode_cursor(after) if after is not None else None,
        "before": encode_cursor(before) if before is not None else None,
    }
    return await history.list_deployments(db, flt, PageRequest(**cursors, **kw))


async def numbers(db: Database, flt: DeploymentFilter, **kw: Any) -> list[int]:
    page = await list_page(db, flt, **kw)
    return [r.id for r in page.nodes]


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
    assert await history.count_deployments(database, combined) == 5
    assert await history.count_deployments(database, None) == 30
    with pytest.raises(DeploybotError):
        await numbers(database, f(commit_sha="xyz"), first=10)


@both_databases
async def test_keyset_pages_both_directions(database: Database) -> None:
    ids = await seed(database, 25)
    newest_first = list(reversed(ids))
    seen: list[int] = []
    after = None
    while True:
        page = await list_page(database, None, first=10, after=after)
        seen += [r.id for r in page.nodes]
        if not page.has_next:
            break
        after = page.nodes[-1].id
    assert seen == newest_first

    # Backwards from the end: last 10 before the oldest.
    page = await list_page(database, None, last=10, before=ids[0])
    assert [r.id for r in page.nodes] == newest_first[14:24]
    assert page.has_previous is True and page.has_next is True

    ascending = await list_page(database, None, first=3, descending=False)
    assert [r.id for r in ascending.nodes] == ids[:3]
    for bad in ({"first": 0}, {"first": 101}, {"first": 1, "last": 1}):
        with pytest.raises(DeploybotError):
            await list_page(database, None, **bad)
