"""The release catalogue over GraphQL/HTTP from a running server, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from deploybot.db.engine import Database
from tests.conftest import both_databases
from tests.resolvers.shared import api, database, empty_database_url
from tests.servers import Client

__all__ = ["api", "database", "empty_database_url"]  # one server per database kind

PUBLISH = """
mutation($input: PublishReleaseInput!) {
  publishRelease(input: $input) {
    clientMutationId
    userErrors { field message code }
    release { id number component train version releasedAt data createdAt deployment { id } }
  }
}
"""

RELEASES = """
query($filter: ReleaseFilter, $orderBy: ReleaseOrder, $first: Int, $after: String) {
  releases(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { component train version releasedAt } }
  }
}
"""

LATEST = """
query($component: String!, $train: String!, $by: LatestReleaseBy!) {
  latestRelease(component: $component, train: $train, by: $by) { id version releasedAt }
}
"""


def publish(api: Client, **input: Any) -> dict[str, Any]:
    payload: dict[str, Any] = api.query(PUBLISH, {"input": input})["publishRelease"]
    return payload


@both_databases
async def test_publish_and_query_releases(database: Database, api: Client) -> None:
    # Deis' own example, with an offset: stored in UTC.
    done = publish(
        api,
        component="rl-builder",
        train="beta",
        version="2.0.0-beta2",
        releasedAt="2016-04-16T23:54:39+07:00",
        data={"notes": "here's beta2!"},
        clientMutationId="ci-7",
    )
    assert done["userErrors"] == []
    assert done["clientMutationId"] == "ci-7"
    release = done["release"]
    assert release["releasedAt"] == "2016-04-16T16:54:39+00:00"
    assert release["data"] == {"notes": "here's beta2!"}
    assert release["deployment"] is None
    node = api.query("query($id: ID!) { node(id: $id) { ... on Release { version } } }", release)
    assert node["node"] == {"version": "2.0.0-beta2"}

    # Without an offset the time is UTC; data may be {} or left out.
    naive = publish(
        api, component="rl-builder", train="beta", version="2.0.0", releasedAt="2016-05-02T08:00:00"
    )
    assert naive["release"]["releasedAt"] == "2016-05-02T08:00:00+00:00"
    assert naive["release"]["data"] == {}
    for n, version in enumerate(["1.9.0", "2.0.0-beta1", "10.0.0-rc.1"]):
        published = publish(
            api,
            component="rl-builder",
            train="stable" if n else "beta",
            version=version,
            releasedAt=f"2016-0{n + 1}-01T00:00:00Z",
            data={},
        )
        assert published["userErrors"] == []

    # The same component, train and version again: a typed conflict; nothing changes.
    again = publish(
        api,
        component="rl-builder",
        train="beta",
        version="2.0.0-beta2",
        releasedAt="2020-01-01T00:00:00Z",
        data={"notes": "overwritten?"},
    )
    assert again["release"] is None
    assert again["userErrors"] == [
        {
            "field": "version",
            "code": "RELEASE_EXISTS",
            "message": "rl-builder 2.0.0-beta2 is already published on train beta",
        }
    ]

    mine = {"components": ["rl-builder"]}
    beta = api.query(RELEASES, {"filter": {**mine, "trains": ["beta"]}, "first": 2})["releases"]
    assert beta["totalCount"] == 3
    assert [e["node"]["version"] for e in beta["edges"]] == ["2.0.0", "2.0.0-beta2"]
    assert beta["pageInfo"]["hasNextPage"] is True
    rest = api.query(
        RELEASES,
        {
            "filter": {**mine, "trains": ["beta"]},
            "first": 2,
            "after": beta["pageInfo"]["endCursor"],
        },
    )["releases"]
    assert [e["node"]["version"] for e in rest["edges"]] == ["1.9.0"]
    assert rest["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "endCursor": rest["edges"][0]["cursor"],
    }
    # A window in time (offsets accepted), oldest first.
    window = api.query(
        RELEASES,
        {
            "filter": {
                "components": ["rl-builder"],
                "releasedAfter": "2016-04-16T18:54:39+02:00",
                "releasedBefore": "2016-05-02T08:00:00Z",
            },
            "orderBy": {"field": "RELEASED_AT", "direction": "ASC"},
        },
    )["releases"]
    assert [e["node"]["version"] for e in window["edges"]] == ["2.0.0-beta2"]
    created = api.query(
        RELEASES, {"filter": mine, "orderBy": {"field": "CREATED_AT", "direction": "ASC"}}
    )
    assert [e["node"]["version"] for e in created["releases"]["edges"]][:2] == [
        "2.0.0-beta2",
        "2.0.0",
    ]

    def latest(train: str, by: str) -> Any:
        return api.query(LATEST, {"component": "rl-builder", "train": train, "by": by})[
            "latestRelease"
        ]

    assert latest("beta", "RELEASED_AT")["version"] == "2.0.0"
    assert latest("stable", "RELEASED_AT")["version"] == "10.0.0-rc.1"
    assert latest("stable", "SEMANTIC_VERSION")["version"] == "10.0.0-rc.1"
    assert latest("beta", "SEMANTIC_VERSION")["version"] == "2.0.0"
    assert latest("nightly", "RELEASED_AT") is None


@both_databases
async def test_bad_release_input_is_field_errors(database: Database, api: Client) -> None:
    before = api.query(RELEASES)["releases"]["totalCount"]
    bad = publish(
        api,
        component="rl builder",
        train="",
        version="1.0 final",
        releasedAt="2016-04-16T23:54:39Z07:00",  # Go's layout pasted as a value
        data=["not", "an", "object"],
    )
    assert bad["release"] is None
    assert {(e["field"], e["code"]) for e in bad["userErrors"]} == {
        ("component", "INVALID_INPUT"),
        ("train", "INVALID_INPUT"),
        ("version", "INVALID_INPUT"),
        ("releasedAt", "INVALID_INPUT"),
        ("data", "INVALID_INPUT"),
    }
    assert api.query(RELEASES)["releases"]["totalCount"] == before  # nothing written
    broken = api.execute(RELEASES, {"after": "bm90LWEtY3Vyc29y"})
    assert broken["errors"][0]["message"].startswith("after: not a valid cursor")
    too_many = api.execute(RELEASES, {"first": 101})
    assert too_many["errors"][0]["message"] == "first must be between 1 and 100"
