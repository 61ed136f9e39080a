"""Seed 002's rate limits on the REST routes: the same per-caller limiter as GraphQL, in the
backend, answered with 429 and Retry-After in the seed's error format."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import server_env
from tests.servers import AUTH_HEADERS, ServerProcess


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("rest-limits")
    env = server_env(tmp, DEPLOYBOT_RATE_LIMIT_ENABLED="true", DEPLOYBOT_RATE_LIMIT_LIST="3/minute")
    server = ServerProcess(env, tmp, "--no-runner")
    yield server
    server.stop()


def test_the_fourth_list_within_a_minute_is_429(limited: ServerProcess) -> None:
    with httpx.Client(base_url=limited.url, headers=AUTH_HEADERS, timeout=30) as http:
        answers = [http.get("/api/v1/deployments") for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    refused = answers[3]
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"]["code"] == "RATE_LIMITED"
    assert "timestamp" in body["error"] or "timestamp" in body
    assert int(refused.headers["Retry-After"]) >= 1
