"""The history over GraphQL/HTTP from a running server, on SQLite and on PostgreSQL."""

from __future__ import annotations

from deploybot.db.engine import Database
from deploybot.ids import encode_id
from tests.conftest import both_databases
from tests.core.test_history import seed
from tests.servers import Client

QUERY = """
query($filter: DeploymentFilter, $first: Int, $after: String) {
  deployments(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { id number environment application state commitSha createdAt } }
  }
}
"""


@both_databases
async def test_filtered_history_over_http(database: Database, api: Client) -> None:
    ids = await seed(database, 30)
    data = api.query(
        QUERY,
        {
            "filter": {"environments": ["production"], "states": ["SUCCESS", "FAILURE"]},
            "first": 4,
        },
    )["deployments"]
    expected = [i for n, i in enumerate(ids) if n % 2 == 1 and n % 3 != 2][::-1]
    assert data["totalCount"] == len(expected) == 10
    assert [e["node"]["number"] for e in data["edges"]] == expected[:4]
    assert data["pageInfo"]["hasNextPage"] is True
    assert data["edges"][0]["node"]["createdAt"].endswith("+00:00")

    rest = api.query(
        QUERY,
        {
            "filter": {"environments": ["production"], "states": ["SUCCESS", "FAILURE"]},
            "first": 100,
            "after": data["pageInfo"]["endCursor"],
        },
    )["deployments"]
    assert [e["node"]["number"] for e in rest["edges"]] == expected[4:]
    assert rest["pageInfo"]["hasPreviousPage"] is True

    other_env = api.query(
        "query($id: ID!) { node(id: $id) { id } }",
        {"id": encode_id("Deployment", "elsewhere", data["edges"][0]["node"]["number"])},
    )
    assert other_env["node"] is None

    bad = api.execute(QUERY, {"after": "garbage"})
    assert "not a valid cursor" in bad["errors"][0]["message"]
    assert api.execute(QUERY, {"filter": {"createdAfter": "yesterday"}})["errors"]


@both_databases
async def test_narrowed_reads_answer_every_selected_field(database: Database, api: Client) -> None:
    """The list reads only the columns a selection shows; fragments and edges included."""
    await seed(database, 3)
    full = api.query(
        "{ deployments { nodes { number environment application repositoryUrl ref commitSha "
        "version state strategy trigger references createdAt finishedAt duration logsUrl } } }"
    )["deployments"]["nodes"]
    narrowed = api.query(
        "fragment F on Deployment { version state } "
        "{ deployments { edges { node { number ...F ... on Deployment { commitSha duration } "
        "logsUrl references } } } }"
    )["deployments"]["edges"]
    assert [e["node"]["number"] for e in narrowed] == [n["number"] for n in full]
    for edge, node in zip(narrowed, full, strict=True):
        for key, value in edge["node"].items():
            assert value == node[key], key
    assert all(n["state"] and n["strategy"] == "ROLLING" for n in full)
