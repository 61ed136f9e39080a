"""Regression tests for what the GraphQL fuzzing found (`tests/fuzzing.py`): each answer is
a typed error, never "Internal server error" or an error without a code."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import server_env
from tests.servers import Client, ServerProcess


@pytest.fixture(scope="module")
def api_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    tmp = tmp_path_factory.mktemp("bad-input")
    server = ServerProcess(server_env(tmp), tmp, "--no-runner")
    client = Client(server.url)
    yield client
    client.close()
    server.stop()


def _errors(client: Client, query: str, variables: dict[str, Any] | None = None) -> list[Any]:
    body = client.execute(query, variables)
    return list(body.get("errors") or [])


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ('{ node(id: "") { id } }', "INVALID_INPUT"),
        ('{ deployment(id: "99999999999999999999999") { id } }', "INVALID_INPUT"),
        ('{ deployments(first: 5, after: "") { totalCount } }', "INVALID_INPUT"),
        ("{ deployments(first: -55) { totalCount } }", "INVALID_INPUT"),
        ('{ application(name: "x", environment: "elsewhere") { name } }', "WRONG_ENVIRONMENT"),
    ],
)
def test_bad_arguments_are_typed_errors(api_client: Client, query: str, code: str) -> None:
    errors = _errors(api_client, query)
    assert errors, query
    assert [e["extensions"]["code"] for e in errors] == [code], errors


@pytest.mark.parametrize("image", ["켶昰\u0010OßÿU", "a\u0000b", "UPPER/Case:1", "x" * 5000])
def test_images_docker_would_refuse_are_refused_first(api_client: Client, image: str) -> None:
    query = """mutation($i: String!) { deploy(input: {image: $i}) {
        deployment { id } userErrors { field code } } }"""
    payload = api_client.query(query, {"i": image})["deploy"]
    assert payload["deployment"] is None
    assert payload["userErrors"] == [{"field": "image", "code": "INVALID_INPUT"}]
