"""Rate limits per caller: the windows (memory on SQLite, the counter table on PostgreSQL),
then the same limits through running servers: the 6th deploy of an application within a
minute, list and status reads, the raw-log route's 429, and one limit held by two API
processes sharing one PostgreSQL database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploybot.config import Settings
from deploybot.core.rate_limits import DatabaseCounterStorage, RateLimitKind, RateLimits
from deploybot.db.engine import Database
from deploybot.errors import DeploybotError, ErrorCode
from tests.conftest import both_databases, server_env
from tests.servers import Client, ServerProcess

DEPLOY = """
mutation($app: String!) {
  deploy(input: {application: $app, repositoryUrl: "git://127.0.0.1:1/nowhere.git"}) {
    deployment { id }
    userErrors { field code message retryAfter }
  }
}
"""
ROLLBACK = """
mutation($app: String!) {
  rollback(input: {application: $app}) { userErrors { code message retryAfter } }
}
"""
LIST = "{ deployments(first: 1) { totalCount } }"


LimitsFactory = Callable[..., RateLimits]


@pytest.fixture
async def make_limits(database: Database) -> AsyncIterator[LimitsFactory]:
    """RateLimits over the test's database with some settings; closed afterwards."""
    made: list[RateLimits] = []

    def make(**settings: Any) -> RateLimits:
        made.append(
            RateLimits.from_settings(Settings(database_url=database.url, **settings), database)
        )
        return made[-1]

    yield make
    for limits in made:
        await limits.close()


@both_databases
async def test_sixth_deploy_of_an_application_is_refused(
    database: Database, make_limits: LimitsFactory
) -> None:
    limits = make_limits()
    shared = isinstance(limits.limiter.storage if limits.limiter else None, DatabaseCounterStorage)
    assert shared is not database.is_sqlite  # PostgreSQL: the table; SQLite: memory
    for _ in range(5):
        await limits.hit(RateLimitKind.DEPLOY, "token:1", "shop")
    with pytest.raises(DeploybotError) as refused:
        await limits.hit(RateLimitKind.DEPLOY, "token:1", "shop")
    assert refused.value.code is ErrorCode.RATE_LIMITED
    assert refused.value.retry_after is not None and 1 <= refused.value.retry_after <= 60
    assert "shop" in refused.value.message and "retry in" in refused.value.message
    # Another application, another caller: their own windows.
    await limits.hit(RateLimitKind.DEPLOY, "token:1", "billing")
    await limits.hit(RateLimitKind.DEPLOY, "token:2", "shop")


@both_databases
async def test_a_window_ends_and_the_count_starts_again(make_limits: LimitsFactory) -> None:
    limits = make_limits(rate_limit_status="2/second")
    await limits.hit(RateLimitKind.STATUS, "10.0.0.1")
    await limits.hit(RateLimitKind.STATUS, "10.0.0.1")
    with pytest.raises(DeploybotError) as refused:
        await limits.hit(RateLimitKind.STATUS, "10.0.0.1")
    assert refused.value.retry_after == 1
    await asyncio.sleep(1.1)
    await limits.hit(RateLimitKind.STATUS, "10.0.0.1")


@both_databases
async def test_concurrent_hits_are_counted_exactly(make_limits: LimitsFactory) -> None:
    limits = make_limits(rate_limit_list="7/minute", rate_limit_storage="database")
    results = await asyncio.gather(
        *(limits.hit(RateLimitKind.LIST, "ci") for _ in range(20)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, DeploybotError)]
    assert len(refused) == 13
    assert {r.code for r in refused} == {ErrorCode.RATE_LIMITED}


async def test_turned_off_as_a_whole_or_one_by_one(make_limits: LimitsFactory) -> None:
    off = make_limits(rate_limit_enabled=False)
    assert not off.enabled
    for _ in range(10):
        await off.hit(RateLimitKind.DEPLOY, "x", "shop")
    one_off = make_limits(rate_limit_deploy="off", rate_limit_list="1/minute")
    for _ in range(10):
        await one_off.hit(RateLimitKind.DEPLOY, "x", "shop")
    await one_off.hit(RateLimitKind.LIST, "x")
    with pytest.raises(DeploybotError):
        await one_off.hit(RateLimitKind.LIST, "x")


def test_settings_refuse_a_limit_that_does_not_parse() -> None:
    with pytest.raises(ValueError, match="not a rate limit"):
        Settings(rate_limit_deploy="five a minute")
    with pytest.raises(ValueError, match="auto, memory or database"):
        Settings(rate_limit_storage="redis")


# --- through running servers -----------------------------------------------------------------


def _limited_server(url: str, tmp: Path, **env: str) -> ServerProcess:
    return ServerProcess(
        server_env(tmp, DEPLOYBOT_DATABASE_URL=url, DEPLOYBOT_RATE_LIMIT_ENABLED="true", **env),
        tmp,
        "--no-runner",
    )


@pytest.fixture
def limited(database: Database, empty_database_url: str, tmp_path: Path) -> Iterator[Client]:
    """A server with the default deploy limit, and small list and status limits."""
    server = _limited_server(
        empty_database_url,
        tmp_path,
        DEPLOYBOT_RATE_LIMIT_LIST="3/minute",
        DEPLOYBOT_RATE_LIMIT_STATUS="4/minute",
    )
    client = Client(server.url)
    yield client
    client.close()
    server.stop()


def _deploy_errors(client: Client, app: str) -> list[dict[str, object]]:
    errors: list[dict[str, object]] = client.query(DEPLOY, {"app": app})["deploy"]["userErrors"]
    return errors


@both_databases
def test_limits_over_graphql_and_http(limited: Client) -> None:
    """One server per database (they are slow to start here): deploys, then reads."""
    _sixth_deploy_within_a_minute_is_refused(limited)
    _list_and_status_reads_are_limited(limited)


def _sixth_deploy_within_a_minute_is_refused(limited: Client) -> None:
    for _ in range(4):  # each refused by its own checks, and each counted
        assert _deploy_errors(limited, "shop")[0]["code"] != "RATE_LIMITED"
    rollback = limited.query(ROLLBACK, {"app": "shop"})["rollback"]["userErrors"]
    assert rollback[0]["code"] == "DEPLOYMENT_NOT_FOUND"  # the 5th: rollbacks count as deploys
    [refused] = _deploy_errors(limited, "shop")
    assert refused["code"] == "RATE_LIMITED"
    assert isinstance(refused["retryAfter"], int) and 1 <= refused["retryAfter"] <= 60
    assert f"retry in {refused['retryAfter']} s" in str(refused["message"])
    again = limited.query(ROLLBACK, {"app": "shop"})["rollback"]["userErrors"]
    assert again[0]["code"] == "RATE_LIMITED"
    assert _deploy_errors(limited, "billing")[0]["code"] != "RATE_LIMITED"


def _list_and_status_reads_are_limited(limited: Client) -> None:
    for _ in range(3):
        limited.query(LIST)
    body = limited.execute(LIST)
    [error] = body["errors"]
    assert error["path"] == ["deployments"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 1 <= error["extensions"]["retryAfter"] <= 60
    releases = limited.execute("{ releases(first: 1) { totalCount } }")  # the same window
    assert releases["errors"][0]["extensions"]["code"] == "RATE_LIMITED"

    for _ in range(3):
        assert limited.query('{ deployment(id: "1") { id } }')["deployment"] is None
    response = limited.http.get("/deployments/1/logs")  # the 4th status read
    assert response.status_code == 404
    response = limited.http.get("/deployments/1/logs")
    assert response.status_code == 429
    retry = int(response.headers["Retry-After"])
    assert 1 <= retry <= 60
    assert response.json() == {
        "error": {
            "code": "RATE_LIMITED",
            "message": response.json()["error"]["message"],
            "retryAfter": retry,
        }
    }
    status = limited.execute('{ application(name: "shop") { name } }')
    assert status["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_the_limit_holds_across_two_api_processes(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two `deploybot serve` on one PostgreSQL database share each caller's window."""
    first = _limited_server(postgres_url, tmp_path_factory.mktemp("api-a"))
    second = _limited_server(postgres_url, tmp_path_factory.mktemp("api-b"))
    clients = [Client(first.url), Client(second.url)]
    try:
        codes = []
        for n in range(5):
            errors = await asyncio.to_thread(_deploy_errors, clients[n % 2], "shared-app")
            codes.append(errors[0]["code"])
        assert "RATE_LIMITED" not in codes
        for client in clients:
            [refused] = await asyncio.to_thread(_deploy_errors, client, "shared-app")
            assert refused["code"] == "RATE_LIMITED"
    finally:
        for client in clients:
            client.close()
        first.stop()
        second.stop()
