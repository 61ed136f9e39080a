"""Access control through every transport of a real server, on SQLite and PostgreSQL:
GraphQL over HTTP, GraphQL over WebSocket and the raw log route each allow and refuse
the same things, lists are filtered to the token's scope, an object outside it answers as a
missing one, revocation closes sockets, and every change is audited."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import _create_pg_database, server_env, ws_url
from tests.servers import ADMIN_TOKEN, Client, ServerProcess

RECORD = """
mutation($input: RecordDeploymentInput!) {
  recordDeployment(input: $input) {
    userErrors { field message code } deployment { id number application actor requestedBy }
  }
}
"""
REPORT = """
mutation($input: ReportDeploymentStatusInput!) {
  reportDeploymentStatus(input: $input) { userErrors { field code } deployment { number } }
}
"""
PUBLISH = """
mutation($input: PublishReleaseInput!) {
  publishRelease(input: $input) { userErrors { field code } release { component } }
}
"""
DEPLOY = """
mutation($input: DeployInput!) {
  deploy(input: $input) { userErrors { field message code } deployment { number } }
}
"""
CREATE_TOKEN = """
mutation($input: CreateApiTokenInput!) {
  createApiToken(input: $input) {
    token userErrors { field message code } apiToken { id name prefix scopes active }
  }
}
"""
REVOKE_TOKEN = """
mutation($id: ID!) {
  revokeApiToken(input: {id: $id}) { userErrors { code } apiToken { id active revokedAt } }
}
"""
LIST = """
query($apps: [String!]) {
  deployments(first: 50, filter: {applications: $apps}) { totalCount nodes { number application } }
}
"""
ONE = "query($id: ID!) { deployment(id: $id) { number application } }"
RELEASES = "{ releases(first: 50) { totalCount nodes { component } } }"
AUDIT = """
query($after: String, $first: Int!, $filter: AuditEventFilter) {
  auditEvents(first: $first, after: $after, filter: $filter) {
    pageInfo { hasNextPage endCursor }
    nodes { id tokenId principal operation target outcome at }
  }
}
"""
EVENTS = "subscription { deploymentEvents { kind deployment { application } } }"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp(f"auth-{request.param}")
    env = server_env(tmp)
    if request.param == "postgresql":
        env["DEPLOYBOT_DATABASE_URL"] = await _create_pg_database()
    process = ServerProcess(env, tmp, "--no-runner")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[Client]:
    client = Client(server.url)
    yield client
    client.close()


def new_token(admin: Client, name: str, *scopes: str, expires: datetime | None = None) -> str:
    payload = admin.query(
        CREATE_TOKEN,
        {
            "input": {
                "name": name,
                "scopes": list(scopes),
                "expiresAt": expires.isoformat() if expires else None,
            }
        },
    )["createApiToken"]
    assert payload["userErrors"] == [], payload
    assert payload["apiToken"]["prefix"] == payload["token"][:12]
    token: str = payload["token"]
    return token


def record(client: Client, application: str, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = client.query(
        RECORD, {"input": {"application": application, "version": "1.0.0", **extra}}
    )["recordDeployment"]
    return payload


def codes(body: dict[str, Any]) -> list[str | None]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or []]


# --- HTTP -------------------------------------------------------------------------------------


def test_without_a_valid_token_only_health_and_graphiql_answer(
    server: ServerProcess, admin: Client
) -> None:
    for headers in ({}, {"Authorization": "Bearer dbt_not-a-token"}, {"Authorization": "Nope"}):
        answer = httpx.post(
            f"{server.url}/graphql", json={"query": "{ __typename }"}, headers=headers
        )
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert codes(answer.json()) == ["UNAUTHENTICATED"]
        assert answer.json()["data"] is None
        raw = httpx.get(f"{server.url}/deployments/1/logs", headers=headers)
        assert raw.status_code == 401
        assert raw.json()["error"]["code"] == "UNAUTHENTICATED"
    by_get = httpx.get(f"{server.url}/graphql", params={"query": "{ __typename }"})
    assert by_get.status_code == 401
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    page = httpx.get(f"{server.url}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    basic = base64.b64encode(f"ci:{ADMIN_TOKEN}".encode()).decode()
    answer = httpx.post(
        f"{server.url}/graphql",
        json={"query": "{ __typename }"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert answer.status_code == 200 and answer.json()["data"] == {"__typename": "Query"}


def test_each_action_is_allowed_to_its_grant_and_refused_otherwise(admin: Client) -> None:
    reader = Client(admin.base_url, new_token(admin, "reader", "read"))
    recorder = Client(admin.base_url, new_token(admin, "recorder", "record"))
    deployer = Client(admin.base_url, new_token(admin, "deployer", "deploy"))
    before = admin.query(LIST, {"apps": ["act-app"]})["deployments"]["totalCount"]

    refused = record(reader, "act-app")
    assert [e["code"] for e in refused["userErrors"]] == ["FORBIDDEN"]
    assert refused["deployment"] is None
    assert admin.query(LIST, {"apps": ["act-app"]})["deployments"]["totalCount"] == before

    done = record(recorder, "act-app", actor="jenkins")
    assert done["userErrors"] == []
    recorder_id = next(
        t["id"]
        for t in admin.query("{ apiTokens { id name } }")["apiTokens"]
        if t["name"] == "recorder"
    )
    assert done["deployment"]["actor"] == "jenkins"
    assert done["deployment"]["requestedBy"] == f"token:{recorder_id}:recorder"

    assert codes(recorder.execute(LIST)) == ["FORBIDDEN"]  # record gives no read
    assert reader.query(LIST, {"apps": ["act-app"]})["deployments"]["totalCount"] == before + 1

    release = {"component": "act-app", "train": "stable", "version": "9.9.9",
               "releasedAt": "2026-01-01T00:00:00Z"}  # fmt: skip
    assert reader.query(PUBLISH, {"input": release})["publishRelease"]["userErrors"] == [
        {"field": None, "code": "FORBIDDEN"}
    ]
    assert recorder.query(PUBLISH, {"input": release})["publishRelease"]["userErrors"] == []

    deploy_input = {"input": {"repositoryUrl": "git://127.0.0.1:1/none.git", "ref": "main"}}
    forbidden = reader.query(DEPLOY, deploy_input)["deploy"]["userErrors"]
    assert [e["code"] for e in forbidden] == ["FORBIDDEN"]
    tried = deployer.query(DEPLOY, deploy_input)["deploy"]["userErrors"]
    assert tried and "FORBIDDEN" not in [e["code"] for e in tried]  # past the guard
    validate = '{ validateDeployment(input: {repositoryUrl: "git://x/y.git"}) { valid } }'
    assert codes(reader.execute(validate)) == ["FORBIDDEN"]

    assert codes(reader.execute("{ apiTokens { id } }")) == ["FORBIDDEN"]
    attempt = recorder.query(CREATE_TOKEN, {"input": {"name": "x", "scopes": ["admin"]}})
    assert [e["code"] for e in attempt["createApiToken"]["userErrors"]] == ["FORBIDDEN"]
    assert attempt["createApiToken"]["token"] is None
    bad = admin.query(CREATE_TOKEN, {"input": {"name": "x", "scopes": ["fly:prod"]}})
    assert bad["createApiToken"]["userErrors"][0]["code"] == "INVALID_INPUT"
    for client in (reader, recorder, deployer):
        client.close()


def test_lists_show_only_the_scope_and_the_rest_answers_as_missing(
    server: ServerProcess, admin: Client
) -> None:
    apps = ["scope-shop-web", "scope-shop-api", "scope-billing"]
    numbers = {app: record(admin, app)["deployment"]["number"] for app in apps}
    for app in ("scope-shop-web", "scope-billing"):
        release = {"component": app, "train": "stable", "version": "2.0.0",
                   "releasedAt": "2026-01-01T00:00:00Z"}  # fmt: skip
        assert admin.query(PUBLISH, {"input": release})["publishRelease"]["userErrors"] == []
    shop_token = new_token(admin, "shop", "read,record:test/scope-shop*")
    shop = Client(server.url, shop_token)

    listed = shop.query(LIST)["deployments"]
    assert {n["application"] for n in listed["nodes"]} == {"scope-shop-web", "scope-shop-api"}
    assert listed["totalCount"] == 2
    filtered = shop.query(LIST, {"apps": ["scope-billing", "scope-shop-api"]})["deployments"]
    assert [n["application"] for n in filtered["nodes"]] == ["scope-shop-api"]
    assert filtered["totalCount"] == 1
    components = {n["component"] for n in shop.query(RELEASES)["releases"]["nodes"]}
    assert components == {"scope-shop-web", "scope-shop-api"}  # published and recorded ones

    outside, missing = numbers["scope-billing"], 987_654
    assert shop.query(ONE, {"id": str(outside)}) == shop.query(ONE, {"id": str(missing)})
    assert shop.query(ONE, {"id": str(outside)}) == {"deployment": None}
    assert shop.query(ONE, {"id": str(numbers["scope-shop-web"])})["deployment"] is not None

    def raw_log(number: int) -> httpx.Response:
        return shop.http.get(f"/deployments/{number}/logs")

    assert raw_log(numbers["scope-shop-web"]).status_code == 200
    hidden, absent = raw_log(outside), raw_log(missing)
    assert hidden.status_code == absent.status_code == 404
    assert (
        hidden.json()["error"]["code"] == absent.json()["error"]["code"] == "DEPLOYMENT_NOT_FOUND"
    )

    for number in (outside, missing):
        report = shop.query(REPORT, {"input": {"id": str(number), "state": "FAILURE"}})
        assert report["reportDeploymentStatus"]["userErrors"] == [
            {"field": "id", "code": "DEPLOYMENT_NOT_FOUND"}
        ]
    shop.close()


def test_an_expired_token_is_refused(server: ServerProcess, admin: Client) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=2)
    token = new_token(admin, "short", "read", expires=expires)
    assert Client(server.url, token).execute("{ __typename }")["data"] == {"__typename": "Query"}
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.3)
    answer = httpx.post(
        f"{server.url}/graphql",
        json={"query": "{ __typename }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 401 and codes(answer.json()) == ["UNAUTHENTICATED"]
    listed = admin.query("{ apiTokens { name active } }")["apiTokens"]
    assert {"name": "short", "active": False} in listed


def test_every_change_is_audited_with_who_and_how_it_ended(admin: Client) -> None:
    writer = Client(admin.base_url, new_token(admin, "auditee", "record:test/audit-*"))
    assert record(writer, "audit-ok")["userErrors"] == []
    assert record(writer, "elsewhere")["userErrors"][0]["code"] == "FORBIDDEN"
    events = admin.query(
        AUDIT, {"first": 100, "filter": {"operations": ["recordDeployment", "createApiToken"]}}
    )["auditEvents"]["nodes"]
    mine = [e for e in events if e["principal"].endswith(":auditee")]
    assert [(e["operation"], e["target"], e["outcome"]) for e in mine] == [
        ("recordDeployment", "test/elsewhere", "FORBIDDEN"),
        ("recordDeployment", "test/audit-ok", "ok"),
    ]
    created = [e for e in events if e["operation"] == "createApiToken"]
    assert any(e["target"] == "token:auditee" and e["outcome"] == "ok" for e in created)
    assert all(e["principal"].startswith("token:") for e in created)

    reader = Client(admin.base_url, new_token(admin, "nosy", "read"))
    assert codes(reader.execute(AUDIT, {"first": 1})) == ["FORBIDDEN"]
    refused = record(reader, "audit-ok")  # refused by the schema: audited all the same
    assert refused["userErrors"][0]["code"] == "FORBIDDEN"
    latest = admin.query(AUDIT, {"first": 1})["auditEvents"]["nodes"][0]
    assert latest["principal"].endswith(":nosy")
    assert (latest["operation"], latest["outcome"]) == ("recordDeployment", "FORBIDDEN")

    first = admin.query(AUDIT, {"first": 2})["auditEvents"]
    assert first["pageInfo"]["hasNextPage"] and len(first["nodes"]) == 2
    rest = admin.query(AUDIT, {"first": 2, "after": first["pageInfo"]["endCursor"]})
    seen = [int(e["id"]) for e in first["nodes"] + rest["auditEvents"]["nodes"]]
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 4
    writer.close()
    reader.close()


# --- WebSocket --------------------------------------------------------------------------------


async def _connect(
    server: ServerProcess, *, header: str | None = None
) -> websockets.ClientConnection:
    return await websockets.connect(
        ws_url(server),
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {header}"} if header else None,
    )


async def _init(ws: websockets.ClientConnection, token: str | None) -> dict[str, Any]:
    payload = {"authorization": f"Bearer {token}"} if token else {}
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    answer: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return answer


async def _next(ws: websockets.ClientConnection, op_id: str) -> dict[str, Any]:
    """The payload of operation `op_id`'s next result (other messages are skipped)."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message["type"] == "next" and message["id"] == op_id:
            payload: dict[str, Any] = message["payload"]
            return payload


async def _closed_with(ws: websockets.ClientConnection) -> int | None:
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 15)
    return ws.close_code


async def test_a_socket_needs_a_valid_token(server: ServerProcess, admin: Client) -> None:
    for token in (None, "dbt_not-a-token"):
        async with await _connect(server) as ws:
            payload = {"authorization": f"Bearer {token}"} if token else {}
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            assert await _closed_with(ws) == 4403
    async with await _connect(server, header=ADMIN_TOKEN) as ws:  # the upgrade's header
        assert await _init(ws, None) == {"type": "connection_ack"}
    reader = new_token(admin, "ws-reader", "read")
    async with await _connect(server) as ws:  # connection_init's payload
        assert await _init(ws, reader) == {"type": "connection_ack"}
        await ws.send(
            json.dumps(
                {"type": "subscribe", "id": "1", "payload": {"query": "{ apiTokens { id } }"}}
            )
        )
        assert (await _next(ws, "1"))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        await ws.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "id": "2",
                    "payload": {
                        "query": RECORD,
                        "variables": {"input": {"application": "ws-app", "version": "1"}},
                    },
                }
            )
        )
        errors = (await _next(ws, "2"))["data"]["recordDeployment"]["userErrors"]
        assert [e["code"] for e in errors] == ["FORBIDDEN"]


async def _subscribe_events(server: ServerProcess, token: str) -> websockets.ClientConnection:
    ws = await _connect(server)
    assert await _init(ws, token) == {"type": "connection_ack"}
    await ws.send(json.dumps({"type": "subscribe", "id": "ev", "payload": {"query": EVENTS}}))
    return ws


async def _applications(ws: websockets.ClientConnection, count: int) -> list[str]:
    """The applications of the next `count` deployments created, as the socket saw them."""
    seen: list[str] = []
    while len(seen) < count:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        event = message["payload"]["data"]["deploymentEvents"] if message["type"] == "next" else {}
        if event.get("kind") == "CREATED":  # a recorded deployment is also "changed" after
            seen.append(event["deployment"]["application"])
    return seen


async def test_subscribers_with_other_scopes_on_one_document_see_their_own(
    server: ServerProcess, admin: Client
) -> None:
    shop = await _subscribe_events(server, new_token(admin, "ev-shop", "read:test/ev-shop*"))
    billing = await _subscribe_events(server, new_token(admin, "ev-bill", "read:test/ev-billing"))
    everyone = await _subscribe_events(server, ADMIN_TOKEN)
    await asyncio.sleep(0.5)
    for app in ("ev-billing", "ev-shop-web", "ev-other", "ev-shop-api"):
        assert (await asyncio.to_thread(record, admin, app))["userErrors"] == []
    assert await _applications(shop, 2) == ["ev-shop-web", "ev-shop-api"]
    assert await _applications(billing, 1) == ["ev-billing"]
    assert await _applications(everyone, 4) == [
        "ev-billing", "ev-shop-web", "ev-other", "ev-shop-api"
    ]  # fmt: skip
    for ws in (shop, billing, everyone):
        await ws.close()


async def test_revoking_a_token_closes_its_socket_within_ten_seconds(
    server: ServerProcess, admin: Client
) -> None:
    token = new_token(admin, "revoked-ws", "read")
    ws = await _subscribe_events(server, token)
    token_id = next(
        t["id"]
        for t in admin.query("{ apiTokens { id name } }")["apiTokens"]
        if t["name"] == "revoked-ws"
    )
    revoked = admin.query(REVOKE_TOKEN, {"id": token_id})["revokeApiToken"]
    assert revoked["userErrors"] == [] and revoked["apiToken"]["active"] is False
    started = time.monotonic()
    assert await _closed_with(ws) == 4403
    assert time.monotonic() - started < 10
    gone = await asyncio.to_thread(
        httpx.post,
        f"{server.url}/graphql",
        json={"query": "{ __typename }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert gone.status_code == 401


# --- start-up ---------------------------------------------------------------------------------


def test_first_start_mints_an_admin_token_printed_once(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    del env["DEPLOYBOT_ADMIN_TOKEN"]
    first = ServerProcess(env, tmp_path, "--no-runner")
    try:
        path = tmp_path / "work" / "admin-token"
        token = path.read_text().strip()
        assert token.startswith("dbt_")
        assert path.stat().st_mode & 0o777 == 0o600
        assert first.log().count(token) == 1
        answer = Client(first.url, token).query("{ apiTokens { name scopes } }")
        assert answer == {"apiTokens": [{"name": "admin", "scopes": ["admin:*/*"]}]}
    finally:
        first.stop()
    again = ServerProcess(env, tmp_path, "--no-runner")
    try:
        assert "dbt_" not in again.log()
        assert path.read_text().strip() == token
    finally:
        again.stop()


def test_auth_off_warns_and_refuses_a_public_host(tmp_path: Path) -> None:
    env = {**server_env(tmp_path), "DEPLOYBOT_AUTH": "off"}
    del env["DEPLOYBOT_ADMIN_TOKEN"]
    public = subprocess.run(
        [sys.executable, "-m", "deploybot", "serve", "--host", "0.0.0.0", "--no-runner"],
        env={**os.environ, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert public.returncode == 2
    assert "refusing to serve 0.0.0.0" in public.stderr
    local = ServerProcess(env, tmp_path, "--no-runner")
    try:
        assert "authentication is disabled" in local.log()
        anonymous = Client(local.url, token=None)
        assert record(anonymous, "open-app")["userErrors"] == []
        assert not (tmp_path / "work" / "admin-token").exists()
    finally:
        local.stop()


async def test_a_subscription_outside_the_scope_answers_as_a_missing_one(
    server: ServerProcess, admin: Client
) -> None:
    hidden = (await asyncio.to_thread(record, admin, "sub-billing"))["deployment"]["number"]
    token = await asyncio.to_thread(new_token, admin, "sub-shop", "read:test/sub-shop*")
    logs = "subscription($id: ID!) { deploymentLogs(id: $id) { lastSequence } }"
    answers = []
    async with await _connect(server) as ws:
        assert await _init(ws, token) == {"type": "connection_ack"}
        for op_id, number in (("hidden", hidden), ("missing", 987_654)):
            payload = {"query": logs, "variables": {"id": str(number)}}
            await ws.send(json.dumps({"type": "subscribe", "id": op_id, "payload": payload}))
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert (message["type"], message["id"]) == ("error", op_id)
            answers.append([e["extensions"]["code"] for e in message["payload"]])
    assert answers == [["DEPLOYMENT_NOT_FOUND"], ["DEPLOYMENT_NOT_FOUND"]]
