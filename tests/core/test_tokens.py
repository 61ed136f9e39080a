"""API tokens on SQLite and PostgreSQL: created once, stored as digests, listed, revoked,
expired; looked up through the cache; scopes compiled into the history's filters."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import event, text

from deploybot.access import Action, Grant, Principal
from deploybot.backend.guard import Guard
from deploybot.core import history, tokens
from deploybot.db.engine import Database
from deploybot.db.models import Deployment
from deploybot.domain import DeploymentState
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.filters import DeploymentFilter
from deploybot.inputs import PageRequest
from deploybot.times import utcnow
from tests.conftest import both_databases


async def _dump(db: Database) -> str:
    """Every column of every token row, as text (what a stolen backup would show)."""
    async with db.connection() as conn:
        rows = (await conn.execute(text("SELECT * FROM api_tokens"))).all()
    return repr([tuple(r) for r in rows])


@both_databases
async def test_a_token_is_shown_once_and_stored_only_as_a_digest(database: Database) -> None:
    created = await tokens.create_token(database, "ci", ["deploy,read:staging/shop*"])
    assert created.token.startswith("dbt_") and len(created.token) >= 4 + 43
    assert created.record.prefix == created.token[:12]
    assert created.record.grants == ("deploy,read:staging/shop*",)
    dump = await _dump(database)
    assert created.token not in dump
    assert created.token[12:] not in dump  # nothing past the shown prefix
    assert tokens.digest_of(created.token) in dump

    found = await tokens.token_by_digest(database, tokens.digest_of(created.token))
    assert found is not None and found.id == created.record.id
    principal = found.principal()
    assert principal.allows(Action.DEPLOY, "staging", "shop-web")
    assert not principal.allows(Action.DEPLOY, "production", "shop-web")
    assert not principal.allows(Action.RECORD, "staging", "shop-web")
    assert principal.label == f"token:{found.id}:ci"


@both_databases
async def test_bad_scopes_names_and_expiry_are_invalid_input(database: Database) -> None:
    for scopes in ([], ["fly:staging"], [":staging"]):
        with pytest.raises(DeploybotError) as bad:
            await tokens.create_token(database, "x", scopes)
        assert bad.value.code is ErrorCode.INVALID_INPUT and bad.value.field == "scopes"
    with pytest.raises(DeploybotError) as unnamed:
        await tokens.create_token(database, "  ", ["read"])
    assert unnamed.value.field == "name"
    with pytest.raises(DeploybotError) as past:
        await tokens.create_token(database, "x", ["read"], expires_at=utcnow() - timedelta(1))
    assert past.value.field == "expiresAt"
    assert await tokens.count_tokens(database) == 0


@both_databases
async def test_revoked_and_expired_tokens_stop_working(database: Database) -> None:
    cache = tokens.TokenCache(database, ttl=0.2)
    keep = await tokens.create_token(database, "keep", ["read"])
    soon = await tokens.create_token(
        database, "soon", ["read"], expires_at=utcnow() + timedelta(seconds=1)
    )
    assert await cache.authenticate(keep.token) is not None
    assert await cache.authenticate(soon.token) is not None
    assert await cache.authenticate("dbt_nope") is None
    assert await cache.authenticate("") is None

    revoked = await tokens.revoke_token(database, keep.record.id)
    assert revoked.revoked_at is not None
    again = await tokens.revoke_token(database, keep.record.id)
    assert again.revoked_at == revoked.revoked_at  # revoking twice keeps the first time
    await asyncio.sleep(1.1)  # past the cache's TTL and the expiry
    assert await cache.authenticate(keep.token) is None
    assert await cache.authenticate(soon.token) is None
    listed = {t.name: t for t in await tokens.list_tokens(database)}
    now = utcnow()
    assert not listed["keep"].is_active(now) and not listed["soon"].is_active(now)
    assert listed["soon"].last_used_at is not None  # its one use was recorded
    with pytest.raises(DeploybotError) as missing:
        await tokens.revoke_token(database, 999_999)
    assert missing.value.code is ErrorCode.TOKEN_NOT_FOUND


@both_databases
async def test_the_cache_answers_without_the_database_within_its_ttl(database: Database) -> None:
    cache = tokens.TokenCache(database, ttl=60)
    created = await tokens.create_token(database, "ci", ["read"])
    first = await cache.authenticate(created.token)
    await tokens.revoke_token(database, created.record.id)
    assert await cache.authenticate(created.token) is first  # cached: no round trip
    cache.clear()  # what revoking through the backend does to its own process's cache
    assert await cache.authenticate(created.token) is None


@both_databases
async def test_requests_that_miss_the_cache_together_share_one_lookup(database: Database) -> None:
    created = await tokens.create_token(database, "ci", ["read"])
    await tokens.TokenCache(database).authenticate(created.token)  # last_used_at written
    lookups: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM api_tokens" in statement:
            lookups.append(statement)

    # Reads may go through an engine of their own (SQLite's autocommit pool): watch both.
    engines = {
        id(e.sync_engine.pool): e.sync_engine for e in (database.engine, database.read_engine)
    }
    for engine in engines.values():
        event.listen(engine, "before_cursor_execute", count)
    try:
        cache = tokens.TokenCache(database)
        answers = await asyncio.gather(*(cache.authenticate(created.token) for _ in range(32)))
    finally:
        for engine in engines.values():
            event.remove(engine, "before_cursor_execute", count)
    assert len(lookups) == 1, lookups
    assert answers[0] is not None and answers[0].may_anywhere(Action.READ)
    assert all(answer is answers[0] for answer in answers)  # one principal, built once


@both_databases
async def test_a_fixed_admin_token_is_stored_digested_once(database: Database) -> None:
    fixed = "dbt_fixed-admin-token-for-tests-000000"
    first = await tokens.ensure_token(database, "admin", ["admin"], fixed)
    second = await tokens.ensure_token(database, "admin", ["admin"], fixed)
    assert first.id == second.id and await tokens.count_tokens(database) == 1
    assert fixed not in await _dump(database)


async def _seed(db: Database) -> None:
    now = utcnow()
    rows = [
        ("staging", "shop-web", "git://git/acme/shop-web.git"),
        ("staging", "shop-api", "git://git/acme/shop-api.git"),
        ("staging", "billing", "git://git/other/billing.git"),
        ("staging", "recorded", None),
    ]
    async with db.transaction() as session:
        for env, app, repo in rows:
            session.add(
                Deployment(
                    environment=env,
                    application=app,
                    repository_url=repo,
                    state=DeploymentState.SUCCESS,
                    created_at=now,
                    updated_at=now,
                )
            )


def _guard(*grants: str) -> Guard:
    return Guard(Principal("t", tuple(Grant.parse(g) for g in grants)), "staging")


SCOPES = [
    (("read",), {"shop-web", "shop-api", "billing", "recorded"}),
    (("read:staging/shop*",), {"shop-web", "shop-api"}),
    (("read:staging/shop-web,billing",), {"shop-web", "billing"}),
    (("read:*/*@git://git/acme/*",), {"shop-web", "shop-api"}),
    (("read:staging/billing", "read:*/shop-api"), {"shop-api", "billing"}),
    (("read:production",), set()),
    (("deploy:staging",), set()),
]


@both_databases
@pytest.mark.parametrize(("grants", "visible"), SCOPES)
async def test_a_scope_filters_lists_in_sql_postgres_text_and_memory_alike(
    database: Database, grants: tuple[str, ...], visible: set[str]
) -> None:
    await _seed(database)
    scope = _guard(*grants).scope(Action.READ)
    flt = DeploymentFilter(scope=scope)
    # On PostgreSQL the page is read through the asyncpg text path, counts through SQLAlchemy.
    page = await history.list_deployments(database, flt, PageRequest(first=50))
    assert {d.application for d in page.nodes} == visible
    assert await history.count_deployments(database, flt) == len(visible)
    everything = await history.list_deployments(database, None, PageRequest(first=50))
    assert {d.application for d in everything.nodes if flt.matches(d)} == visible
