"""What one GraphQL request may cost: the node estimate (GitHub's), and through a running
server the issue's 2,000-alias request, depth, aliases and nodes refused with
QUERY_TOO_COMPLEX before execution, over HTTP and over WebSocket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from graphql import OperationDefinitionNode, parse

from deploybot.schema import schema
from deploybot.schema.limits import estimated_nodes, exceeds_tokens
from tests.conftest import server_env, ws_url
from tests.servers import WS_INIT_PAYLOAD, Client, ServerProcess

LOGS = "logs(first: 100) { totalCount }"
ALIASES_2000 = (
    "{ "
    + " ".join(
        f"a{i}: deployments(first: 100) {{ totalCount nodes {{ {LOGS} }} }}" for i in range(2000)
    )
    + " }"
)


def _nodes(query: str, variables: dict[str, Any] | None = None) -> int:
    document = parse(query)
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    return estimated_nodes(schema._schema, document, operation, variables)


def test_the_estimate_multiplies_along_nested_connections() -> None:
    assert _nodes("{ deployments(first: 10) { totalCount } }") == 10
    assert _nodes("{ deployments(first: 10) { nodes { logs(first: 50) { totalCount } } } }") == (
        10 + 10 * 50
    )
    # `logs` without `first` counts at its default (100); `deployments` at the page size.
    assert _nodes("{ deployments { nodes { logs { totalCount } } } }") == 100 + 100 * 100
    # Variables count at their values; edges and fragments are followed; aliases add up.
    query = """
    query($n: Int, $m: Int) {
      a: deployments(first: $n) { edges { node { ...L } } }
      b: deployments(last: 3) { totalCount }
    }
    fragment L on Deployment { logs(first: $m) { nodes { text } } }
    """
    assert _nodes(query, {"n": 20, "m": 30}) == 20 + 20 * 30 + 3
    assert _nodes("{ __typename applications { name } }") == 0


def test_the_token_count_stops_at_the_limit() -> None:
    assert exceeds_tokens(ALIASES_2000, 2000)
    assert not exceeds_tokens("{ a b c }", 5)
    assert exceeds_tokens("{ a b c d e }", 5)
    # Comments are not tokens; a string is one, whatever it holds.
    assert not exceeds_tokens('# x y z w v u\n{ a(s: "1 2 3 4 5 6") }', 8)
    assert exceeds_tokens('# x y z w v u\n{ a(s: "1 2 3 4 5 6") }', 7)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("query-cost")
    process = ServerProcess(server_env(tmp), tmp, "--no-runner")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[Client]:
    c = Client(server.url)
    yield c
    c.close()


def _refusal(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("data") is None, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", error
    return dict(error)


def test_the_issues_2000_alias_request_is_refused(client: Client) -> None:
    error = _refusal(client.execute(ALIASES_2000))
    assert "2000 tokens" in error["message"]


def test_aliases_depth_and_nodes_are_refused(client: Client) -> None:
    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(101)) + " }"
    assert "aliases" in _refusal(client.execute(aliases))["message"]
    allowed = "{ " + " ".join(f"a{i}: __typename" for i in range(100)) + " }"
    assert client.query(allowed)["a99"] == "Query"

    deep = '{ deployment(id: "1") { ' + "rollbackOf { " * 12 + "id" + " }" * 13 + " }"
    assert "depth" in _refusal(client.execute(deep))["message"]
    shallow = '{ deployment(id: "1") { ' + "rollbackOf { " * 10 + "id" + " }" * 11 + " }"
    assert client.query(shallow) == {"deployment": None}

    nodes = "query($n: Int) { deployments(first: 100) { nodes { logs(first: $n) { %s } } } }"
    nodes %= "totalCount"
    error = _refusal(client.execute(nodes, {"n": 1000}))
    assert error["extensions"]["nodes"] == 100 + 100 * 1000
    assert error["extensions"]["maxNodes"] == 50_000
    assert client.query(nodes, {"n": 10})["deployments"]["nodes"] == []
    # The estimate is cached per document and integer variables: the same document with a
    # larger page is still counted at its own size.
    assert _refusal(client.execute(nodes, {"n": 2000}))["extensions"]["nodes"] == 200_100


async def test_the_limits_hold_over_websocket(server: ServerProcess) -> None:
    async with websockets.connect(
        ws_url(server),
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        max_size=None,
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": WS_INIT_PAYLOAD}))
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}

        async def errors(op_id: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
            await ws.send(json.dumps({"type": "subscribe", "id": op_id, "payload": payload}))
            message = json.loads(await ws.recv())
            if message["type"] == "next":
                found: list[dict[str, Any]] = message["payload"]["errors"]
                return found
            assert message["type"] == "error", message
            return list(message["payload"])

        [tokens] = await errors("t", {"query": ALIASES_2000})
        assert tokens["extensions"]["code"] == "QUERY_TOO_COMPLEX"

        inner = " ".join(f"a{i}: __typename" for i in range(101))
        aliased = await errors("a", {"query": "subscription { deploymentEvents { %s } }" % inner})
        assert [e["extensions"]["code"] for e in aliased] == ["QUERY_TOO_COMPLEX"]

        nodes = "{ deployments(first: 100) { nodes { logs(first: 1000) { totalCount } } } }"
        [too_many] = await errors("n", {"query": nodes})
        assert too_many["extensions"]["code"] == "QUERY_TOO_COMPLEX"
