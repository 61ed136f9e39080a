"""Deployments made by other tools over GraphQL/HTTP from a running server, on SQLite and
PostgreSQL: an outside runner's whole cycle, a bare recording, a release manager's questions."""

from __future__ import annotations

from typing import Any

from deploybot.db.engine import Database
from deploybot.db.models import Deployment
from deploybot.domain import DeploymentState
from deploybot.ids import encode_id
from tests.conftest import both_databases
from tests.resolvers.shared import api, database, empty_database_url
from tests.servers import Client

__all__ = ["api", "database", "empty_database_url"]  # one server per database kind


FIELDS = """
  id number application environment version state trigger actor team description references
  hosts startedAt finishedAt duration errorMessage previousVersion
  services { service version nodes duration }
  results { data createdAt }
  release { component train version releasedAt }
  originalRequest
"""

RECORD = (
    """
mutation($input: RecordDeploymentInput!) {
  recordDeployment(input: $input) {
    clientMutationId userErrors { field message code } deployment { %s }
  }
}
"""
    % FIELDS
)

REPORT = (
    """
mutation($input: ReportDeploymentStatusInput!) {
  reportDeploymentStatus(input: $input) {
    userErrors { field message code } deployment { %s }
  }
}
"""
    % FIELDS
)

ADD_RESULT = """
mutation($input: AddDeploymentResultInput!) {
  addDeploymentResult(input: $input) {
    userErrors { field message code } result { data createdAt } deployment { id }
  }
}
"""

CURRENT = """
query($application: String!, $environment: String) {
  currentVersion(application: $application, environment: $environment) {
    application environment version deployedAt deployment { number }
    services { service version hosts deployment { number } }
  }
}
"""


def record(api: Client, **input: Any) -> dict[str, Any]:
    payload: dict[str, Any] = api.query(RECORD, {"input": input})["recordDeployment"]
    return payload


def report(api: Client, **input: Any) -> dict[str, Any]:
    payload: dict[str, Any] = api.query(REPORT, {"input": input})["reportDeploymentStatus"]
    return payload


@both_databases
async def test_an_outside_runner_reports_a_whole_deployment(
    database: Database,
    api: Client,
) -> None:
    queued = record(
        api,
        application="rl-speed",
        version="3.2.0",
        state="QUEUED",
        ref="main",
        actor="jenkins",
        team="payments",
        references=["PAY-12"],
        notes="nightly",
    )
    assert queued["userErrors"] == []
    deployment = queued["deployment"]
    assert deployment["state"] == "QUEUED" and deployment["trigger"] == "EXTERNAL"
    assert deployment["environment"] == "test"
    assert (deployment["actor"], deployment["team"], deployment["description"]) == (
        "jenkins",
        "payments",
        "nightly",
    )

    running = report(api, id=deployment["id"], state="IN_PROGRESS", message="pulling images")
    assert running["userErrors"] == []
    assert running["deployment"]["state"] == "IN_PROGRESS"
    assert running["deployment"]["startedAt"] is not None
    ongoing = api.query(
        '{ deployments(filter: {applications: ["rl-speed"], states: [QUEUED, IN_PROGRESS]})'
        " { nodes { number } } }"
    )
    assert ongoing["deployments"]["nodes"] == [{"number": deployment["number"]}]

    for result in ("42 tests passed", {"suite": "smoke", "passed": 7, "failed": 0}):
        added = api.query(ADD_RESULT, {"input": {"id": deployment["id"], "result": result}})
        assert added["addDeploymentResult"]["userErrors"] == []
        assert added["addDeploymentResult"]["result"]["data"] == result
    missing = api.query(ADD_RESULT, {"input": {"id": str(deployment["number"]), "result": ""}})
    assert missing["addDeploymentResult"]["userErrors"] == [
        {"field": "result", "message": "missing results data", "code": "INVALID_INPUT"}
    ]

    done = report(api, id=str(deployment["number"]), state="SUCCESS", message="all green")
    assert done["userErrors"] == []
    final = done["deployment"]
    assert final["state"] == "SUCCESS" and final["finishedAt"] is not None
    assert [r["data"] for r in final["results"]] == [
        "42 tests passed",
        {"suite": "smoke", "passed": 7, "failed": 0},
    ]
    # The success published its release: the branch names the train.
    assert final["release"]["component"] == "rl-speed"
    assert (final["release"]["train"], final["release"]["version"]) == ("stable", "3.2.0")

    # A final state is never left.
    late = report(api, id=deployment["id"], state="FAILURE", message="oops")
    assert late["deployment"] is None
    assert late["userErrors"][0]["code"] == "INVALID_STATE_TRANSITION"
    assert late["userErrors"][0]["field"] == "state"
    logs = api.query(
        "query($id: ID!) { deployment(id: $id) { logs { nodes { text } } } }",
        {"id": deployment["id"]},
    )
    assert [n["text"] for n in logs["deployment"]["logs"]["nodes"]] == [
        "IN_PROGRESS: pulling images",
        "SUCCESS: all green",
    ]

    # deploybot's own deployments are moved by its runner alone.
    async with database.transaction() as session:
        own = Deployment(
            environment="test", application="rl-own", version="1", state=DeploymentState.QUEUED
        )
        session.add(own)
        await session.flush()
    refused = report(api, id=encode_id("Deployment", "test", int(own.id or 0)), state="SUCCESS")
    assert refused["userErrors"][0]["code"] == "NOT_EXTERNAL"
    unknown = report(api, id="987654", state="SUCCESS")
    assert unknown["userErrors"][0]["code"] == "DEPLOYMENT_NOT_FOUND"
    elsewhere = report(api, id=encode_id("Deployment", "production", 1), state="SUCCESS")
    assert elsewhere["userErrors"][0]["code"] == "DEPLOYMENT_NOT_FOUND"
    garbage = report(api, id="%%%", state="SUCCESS")
    assert garbage["userErrors"][0]["field"] == "id"


@both_databases
async def test_recording_with_only_the_required_fields(
    database: Database,
    api: Client,
) -> None:
    bare = record(api, application="rl-sponge", version="2024.10.1")
    assert bare["userErrors"] == []
    deployment = bare["deployment"]
    assert deployment["state"] == "SUCCESS"
    assert deployment["finishedAt"] is not None  # recorded after the fact: finished by now
    assert deployment["startedAt"] is None and deployment["duration"] is None
    assert deployment["hosts"] == [] and deployment["services"] == []
    assert deployment["references"] == [] and deployment["actor"] is None
    assert deployment["release"]["train"] == "stable"  # no branch: the default train
    assert deployment["originalRequest"] == {
        "application": "rl-sponge",
        "version": "2024.10.1",
        "state": "SUCCESS",
    }
    current = api.query(CURRENT, {"application": "rl-sponge"})["currentVersion"]
    assert [(c["environment"], c["version"]) for c in current] == [("test", "2024.10.1")]


@both_databases
async def test_a_release_managers_questions(database: Database, api: Client) -> None:
    first = record(
        api,
        application="rl-shop",
        version="1.4.0",
        actor="ana",
        hosts=["lb-1"],
        startedAt="2026-05-01T10:00:00+02:00",
        duration=300,
        services=[
            {"name": "web", "hosts": ["web-1", "web-2"], "duration": 120},
            {"name": "worker", "version": "1.4.0-w", "hosts": ["job-1"]},
        ],
    )["deployment"]
    assert first["originalRequest"]["services"][0] == {
        "name": "web",
        "hosts": ["web-1", "web-2"],
        "duration": 120,
    }
    assert first["startedAt"] == "2026-05-01T08:00:00+00:00"
    assert first["finishedAt"] == "2026-05-01T08:05:00+00:00"
    assert first["duration"] == 300
    assert first["hosts"] == ["lb-1", "web-1", "web-2", "job-1"]
    services = {s["service"]: s for s in first["services"]}
    assert services["web"]["duration"] == 120 and services["web"]["version"] == "1.4.0"
    assert services["worker"]["version"] == "1.4.0-w"

    second = record(
        api,
        application="rl-shop",
        version="1.5.0",
        finishedAt="2026-05-02T09:00:00Z",
        services=[{"name": "web", "hosts": ["web-3"]}],
    )["deployment"]
    assert second["previousVersion"] == "1.4.0"
    record(api, application="rl-shop", version="1.6.0", state="FAILURE")

    current = api.query(CURRENT, {"application": "rl-shop", "environment": "test"})
    [shop] = current["currentVersion"]
    assert (shop["version"], shop["deployment"]["number"]) == ("1.5.0", second["number"])
    assert shop["deployedAt"] == "2026-05-02T09:00:00+00:00"
    assert [
        (s["service"], s["version"], s["hosts"], s["deployment"]["number"])
        for s in shop["services"]
    ] == [
        ("web", "1.5.0", ["web-3"], second["number"]),
        ("worker", "1.4.0-w", ["job-1"], first["number"]),
    ]
    assert api.query(CURRENT, {"application": "rl-nothing"})["currentVersion"] == []

    past = api.query(
        '{ deployments(filter: {applications: ["rl-shop"]}) { nodes { version state hosts } } }'
    )["deployments"]["nodes"]
    assert past == [
        {"version": "1.6.0", "state": "FAILURE", "hosts": []},
        {"version": "1.5.0", "state": "SUCCESS", "hosts": ["web-3"]},
        {"version": "1.4.0", "state": "INACTIVE", "hosts": ["lb-1", "web-1", "web-2", "job-1"]},
    ]


@both_databases
async def test_bad_recordings_are_field_errors(database: Database, api: Client) -> None:
    count = "{ deployments { totalCount } }"
    before = api.query(count)["deployments"]["totalCount"]
    bad = record(
        api,
        application="RL Shop",
        version=" ",
        environment="production",
        state="INACTIVE",
        commitSha="not-a-sha",
        committedAt="last tuesday",
        startedAt="2026-05-01T10:00:00Z",
        finishedAt="2026-05-01T09:00:00Z",
        references=[""],
        services=[{"name": "web"}, {"name": "web", "duration": -3}],
        clientMutationId="x",
    )
    assert bad["deployment"] is None and bad["clientMutationId"] == "x"
    assert {(e["field"], e["code"]) for e in bad["userErrors"]} == {
        ("application", "INVALID_INPUT"),
        ("version", "INVALID_INPUT"),
        ("environment", "WRONG_ENVIRONMENT"),
        ("state", "INVALID_INPUT"),
        ("commitSha", "INVALID_INPUT"),
        ("committedAt", "INVALID_INPUT"),
        ("finishedAt", "INVALID_INPUT"),
        ("references[0]", "INVALID_INPUT"),
        ("services[1].name", "INVALID_INPUT"),
        ("services[1].duration", "INVALID_INPUT"),
    }
    queued = record(
        api, application="rl-shop", version="1", state="QUEUED", finishedAt="2026-05-01T09:00:00Z"
    )
    assert queued["userErrors"] == [
        {
            "field": "finishedAt",
            "message": "a QUEUED deployment has not finished",
            "code": "INVALID_INPUT",
        }
    ]
    assert api.query(count)["deployments"]["totalCount"] == before  # nothing written


ADD_SERVICES = """
mutation($input: AddDeploymentServicesInput!) {
  addDeploymentServices(input: $input) {
    clientMutationId userErrors { field message code }
    services { service version nodes duration }
    deployment { number hosts }
  }
}
"""


@both_databases
async def test_recording_without_application_or_version(database: Database, api: Client) -> None:
    """Sponge's forgiving recording: no application and no version, shown as null."""
    payload = api.query(
        "mutation($input: RecordDeploymentInput!) { recordDeployment(input: $input) {"
        " userErrors { field } deployment { number application version platforms release {"
        " version } } } }",
        {"input": {"platforms": ["My_Platform", "other"], "notes": "My first milestone"}},
    )["recordDeployment"]
    assert payload["userErrors"] == []
    deployment = payload["deployment"]
    assert deployment["application"] is None
    assert deployment["version"] is None
    assert deployment["platforms"] == ["My_Platform", "other"]
    assert deployment["release"] is None  # no version: nothing to publish
    nothing = record(api)
    assert nothing["userErrors"] == []
    assert nothing["deployment"]["application"] is None


@both_databases
async def test_services_are_added_to_a_recording_afterwards(
    database: Database, api: Client
) -> None:
    recorded = record(api, application="rl-pkg", version="7", hosts=["web-1"])["deployment"]
    added = api.query(
        ADD_SERVICES,
        {
            "input": {
                "id": recorded["id"],
                "services": [
                    {"name": "api", "version": "7.1", "hosts": ["api-1"], "duration": 12.5},
                    {"name": "worker"},
                ],
                "clientMutationId": "pkgs",
            }
        },
    )["addDeploymentServices"]
    assert added["userErrors"] == [] and added["clientMutationId"] == "pkgs"
    services = {s["service"]: s for s in added["services"]}
    assert services["api"] == {
        "service": "api",
        "version": "7.1",
        "nodes": ["api-1"],
        "duration": 12.5,
    }
    assert services["worker"]["version"] == "7"  # the deployment's version
    assert added["deployment"]["hosts"] == ["web-1", "api-1"]

    again = api.query(
        ADD_SERVICES, {"input": {"id": recorded["id"], "services": [{"name": "api"}]}}
    )["addDeploymentServices"]
    assert again["services"] is None
    assert [(e["field"], e["code"]) for e in again["userErrors"]] == [
        ("services[0].name", "INVALID_INPUT")
    ]
    missing = api.query(ADD_SERVICES, {"input": {"id": "987654", "services": [{"name": "x"}]}})[
        "addDeploymentServices"
    ]
    assert [e["code"] for e in missing["userErrors"]] == ["DEPLOYMENT_NOT_FOUND"]
    empty = api.query(ADD_SERVICES, {"input": {"id": recorded["id"], "services": []}})
    assert [e["field"] for e in empty["addDeploymentServices"]["userErrors"]] == ["services"]
