"""Bad input never answers "Internal server error": IDs and numbers out of range are
typed errors (INVALID_INPUT), on SQLite and PostgreSQL, over GraphQL and the raw-log route.
The largest number the database holds is a valid reference that finds nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploybot.db.engine import Database
from deploybot.ids import MAX_KEY, encode_cursor, encode_id
from tests.conftest import both_databases, server_env
from tests.servers import Client, ServerProcess

HUGE = "99999999999999999999999"


@pytest.fixture
def api(database: Database, empty_database_url: str, tmp_path: Path) -> Iterator[Client]:
    server = ServerProcess(
        server_env(tmp_path, DEPLOYBOT_DATABASE_URL=empty_database_url), tmp_path, "--no-runner"
    )
    client = Client(server.url)
    yield client
    client.close()
    server.stop()


def _code(client: Client, query: str, variables: dict[str, object] | None = None) -> str:
    body = client.execute(query, variables)
    [error] = body["errors"]
    assert "Internal server error" not in error["message"]
    return str(error["extensions"]["code"])


@both_databases
def test_numbers_out_of_range_are_typed_errors(api: Client) -> None:
    assert _code(api, '{ deployment(id: "%s") { id } }' % HUGE) == "INVALID_INPUT"
    assert (
        _code(
            api,
            "{ node(id: $id) { id } }".replace(
                "$id", '"%s"' % encode_id("Deployment", "test", MAX_KEY + 1)
            ),
        )
        == "INVALID_INPUT"
    )
    # The largest number a deployment can have is a valid reference to nothing.
    assert api.query('{ deployment(id: "%d") { id } }' % MAX_KEY) == {"deployment": None}
    node = api.query('{ node(id: "%s") { id } }' % encode_id("Deployment", "test", MAX_KEY))
    assert node == {"node": None}

    for first in (0, -1, 101):
        assert _code(api, "{ deployments(first: %d) { totalCount } }" % first) == "INVALID_INPUT"
    # Past the node limit, the cost check refuses it first, before anything runs.
    huge = "{ deployments(first: %d) { totalCount } }" % (2**31 - 1)
    assert _code(api, huge) == "QUERY_TOO_COMPLEX"
    assert _code(api, "{ deployments(first: 99999999999) { totalCount } }") == "INVALID_INPUT"
    assert (
        _code(api, "query($n: Int) { deployments(first: $n) { totalCount } }", {"n": 2**40})
        == "INVALID_INPUT"
    )
    after = encode_cursor(MAX_KEY + 1)
    assert _code(api, '{ deployments(after: "%s") { totalCount } }' % after) == "INVALID_INPUT"
    assert _code(api, '{ releases(first: 1, after: "%s") { totalCount } }' % after) == (
        "INVALID_INPUT"
    )
    late = api.query(
        '{ deployments(first: 1, after: "%s") { totalCount } }' % encode_cursor(MAX_KEY)
    )
    assert late == {"deployments": {"totalCount": 0}}

    mutation = """
    mutation($id: ID!) { cancelDeployment(input: {id: $id}) { userErrors { field code } } }
    """
    errors = api.query(mutation, {"id": HUGE})["cancelDeployment"]["userErrors"]
    assert errors == [{"field": "id", "code": "INVALID_INPUT"}]

    response = api.http.get(f"/deployments/{HUGE}/logs")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_INPUT"
    assert api.http.get(f"/deployments/{MAX_KEY}/logs").status_code == 404
