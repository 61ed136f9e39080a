"""Deployment Manager (seed 002) through HTTP, without Swarm rollouts: the seed's example
bodies, every error status it lists in its error format, status, list paging, validate and
the progress socket of an unknown deployment. The deploys that roll out are in
test_swarm.py."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.rest.conftest import ServerProcess
from tests.servers import AUTH_HEADERS

# The seed's request bodies, verbatim (their placeholders are not valid values).
DEPLOY_EXAMPLE = """{
  "name": "string",
  "version": "string",
  "environment": "string",
  "strategy": "rolling|blue-green|canary|recreate",
  "artifact_path": "string",
  "working_directory": "string",
  "service_name": "string",
  "health_check_url": "string",
  "rollback_on_failure": true,
  "dependencies": ["string"],
  "pre_deploy_hooks": ["string"],
  "post_deploy_hooks": ["string"]
}"""
VALIDATE_EXAMPLE = """{
  "name": "string",
  "version": "string",
  "artifact_path": "string",
  "strategy": "string",
  "dependencies": ["string"]
}"""
JSON = {"Content-Type": "application/json"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def assert_error(
    answer: httpx.Response, status: int, code: str, deployment: str | None, operation: str
) -> dict[str, Any]:
    """The seed's error format: code, message, details (deployment, operation, cause),
    timestamp."""
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert set(error) == {"code", "message", "details", "timestamp"}
    assert error["code"] == code
    assert error["details"]["deployment"] == deployment
    assert error["details"]["operation"] == operation
    assert error["details"]["cause"]
    assert TIMESTAMP.match(error["timestamp"])
    return error


def record(http: httpx.Client, application: str, **fields: Any) -> dict[str, Any]:
    """A deployment recorded from elsewhere (through Sponge's route)."""
    answer = http.post("/release", json={"application": application, **fields})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_the_seed_deploy_example_is_an_invalid_spec(http: httpx.Client) -> None:
    answer = http.post("/api/v1/deployments", content=DEPLOY_EXAMPLE, headers=JSON)
    error = assert_error(answer, 400, "INVALID_DEPLOYMENT_SPEC", None, "deploy")
    assert "strategy" in error["message"]


def test_invalid_specs_are_400(http: httpx.Client) -> None:
    bad_name = http.post(
        "/api/v1/deployments",
        json={"name": "Not A Name", "version": "v1", "artifact_path": "git://127.0.0.1/x.git"},
    )
    error = assert_error(bad_name, 400, "INVALID_DEPLOYMENT_SPEC", "Not A Name", "deploy")
    assert error["message"].startswith("application: ")
    assert_error(
        http.post("/api/v1/deployments", content=b"{nope", headers=JSON),
        400,
        "INVALID_DEPLOYMENT_SPEC",
        None,
        "deploy",
    )
    no_artifact = http.post("/api/v1/deployments", json={"name": "rs-x", "version": "v1"})
    assert_error(no_artifact, 400, "INVALID_DEPLOYMENT_SPEC", "rs-x", "deploy")
    outside = http.post(
        "/api/v1/deployments",
        json={
            "name": "rs-x",
            "artifact_path": "git://127.0.0.1/x.git#main",
            "working_directory": "../elsewhere",
        },
    )
    error = assert_error(outside, 400, "INVALID_DEPLOYMENT_SPEC", "rs-x", "deploy")
    assert "workingDirectory" in error["message"]


def test_a_deploy_while_one_is_in_progress_is_409(http: httpx.Client, unique: str) -> None:
    record(http, unique, started="2024-01-01T10:00:00Z")  # an ongoing release
    answer = http.post(
        "/api/v1/deployments",
        json={"name": unique, "version": "v2", "artifact_path": "git://127.0.0.1/none.git"},
    )
    error = assert_error(answer, 409, "DEPLOYMENT_IN_PROGRESS", unique, "deploy")
    assert "under way" in error["message"]


def test_unknown_deployments_are_404(http: httpx.Client, unique: str) -> None:
    for answer, operation in (
        (http.get(f"/api/v1/deployments/{unique}"), "status"),
        (http.get(f"/api/v1/deployments/{unique}/health"), "health"),
        (http.post(f"/api/v1/deployments/{unique}/rollback", json={"version": "1"}), "rollback"),
    ):
        assert_error(answer, 404, "DEPLOYMENT_NOT_FOUND", unique, operation)


def test_status_of_a_recorded_deployment(http: httpx.Client, unique: str) -> None:
    record(http, unique, version="1.0.0")
    status = http.get(f"/api/v1/deployments/{unique}")
    assert status.status_code == 200
    body = status.json()
    assert set(body) == {
        "name",
        "version",
        "environment",
        "state",
        "health",
        "last_updated",
        "replicas",
        "configuration",
        "events",
    }
    assert body["name"] == unique
    assert body["version"] == "1.0.0"
    assert body["environment"] == "test"
    assert body["state"] == "unknown"  # nothing of it runs on this Swarm
    assert body["health"] == "unknown"
    assert body["replicas"] == {"desired": 0, "available": 0, "ready": 0, "updated": 0}
    assert all(e["type"] in ("info", "warning", "error") for e in body["events"])

    health = http.get(f"/api/v1/deployments/{unique}/health")
    assert health.status_code == 200
    assert health.json()["overall"] == "unknown"
    assert health.json()["components"] == {}


def test_rollback_to_a_version_never_deployed_is_400(http: httpx.Client, unique: str) -> None:
    record(http, unique, version="1.0.0")
    answer = http.post(f"/api/v1/deployments/{unique}/rollback", json={"version": "0.0.1"})
    error = assert_error(answer, 400, "BACKUP_NOT_FOUND", unique, "rollback")
    assert "0.0.1" in error["message"]
    not_json = http.post(f"/api/v1/deployments/{unique}/rollback", content=b"[", headers=JSON)
    assert_error(not_json, 400, "INVALID_DEPLOYMENT_SPEC", unique, "rollback")


def test_list_pages_by_offset_with_a_total(http: httpx.Client, unique: str) -> None:
    for n in range(3):
        record(http, f"{unique}-{n}", version=f"{n}.0")
    first = http.get("/api/v1/deployments", params={"limit": 2, "offset": 0})
    assert first.status_code == 200
    page = first.json()
    assert page["limit"] == 2
    assert page["offset"] == 0
    assert page["total"] >= 3
    assert len(page["deployments"]) == 2
    # Page through everything two at a time (other stacks on the shared Swarm may come
    # and go meanwhile, so only this test's own applications are counted exactly).
    names: list[str] = []
    offset = 0
    while offset < page["total"] + 10:
        chunk = http.get("/api/v1/deployments", params={"limit": 2, "offset": offset}).json()
        assert chunk["offset"] == offset
        names += [d["name"] for d in chunk["deployments"]]
        if not chunk["deployments"]:
            break
        offset += 2
    assert {n for n in names if n.startswith(unique)} == {f"{unique}-{n}" for n in range(3)}
    rest = http.get("/api/v1/deployments", params={"limit": 100}).json()
    item = next(d for d in rest["deployments"] + page["deployments"] if d["name"] == f"{unique}-1")
    assert item == {
        "name": f"{unique}-1",
        "version": "1.0",
        "environment": "test",
        "state": "unknown",
        "health": "unknown",
        "updated_at": item["updated_at"],
    }
    unknown = http.get("/api/v1/deployments", params={"state": "unknown", "limit": 100}).json()
    assert unknown["total"] >= 3
    assert all(d["state"] == "unknown" for d in unknown["deployments"])
    healthy = http.get("/api/v1/deployments", params={"state": "healthy"}).json()
    assert all(d["state"] == "healthy" for d in healthy["deployments"])  # others' stacks
    assert not {f"{unique}-{n}" for n in range(3)} & {d["name"] for d in healthy["deployments"]}
    default = http.get("/api/v1/deployments").json()
    assert (default["limit"], default["offset"]) == (50, 0)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"offset": 5000},  # past the cap: a deep offset would be a slow request
        {"limit": "many"},
        {"state": "sleeping"},
        {"environment": "production"},
    ],
)
def test_list_refuses_bad_paging_and_filters(http: httpx.Client, params: dict[str, Any]) -> None:
    answer = http.get("/api/v1/deployments", params=params)
    assert_error(answer, 400, "INVALID_DEPLOYMENT_SPEC", None, "list")


def test_validate_the_seed_example(http: httpx.Client) -> None:
    answer = http.post("/api/v1/deployments/validate", content=VALIDATE_EXAMPLE, headers=JSON)
    assert answer.status_code == 400
    body = answer.json()
    assert body["valid"] is False
    assert body["warnings"] == []
    assert body["issues"]
    assert all(i["severity"] == "error" and i["message"] for i in body["issues"])
    fields = [i["field"] for i in body["issues"]]
    assert "strategy" in fields  # "string" is none of the seed's strategies
    assert len(fields) >= 2  # and the other checks still ran: the artifact "string" is none


def test_validate_unreadable_specs(http: httpx.Client) -> None:
    answer = http.post("/api/v1/deployments/validate", json={"version": "1"})
    assert answer.status_code == 400
    assert answer.json()["issues"][0]["field"] == "name"


def test_progress_of_an_unknown_deployment(rest_server: ServerProcess, unique: str) -> None:
    url = rest_server.url.replace("http://", "ws://") + f"/api/v1/deployments/{unique}/progress"
    with connect(url, additional_headers=AUTH_HEADERS) as socket:
        message = json.loads(socket.recv(timeout=10))
        assert message["error"]["code"] == "DEPLOYMENT_NOT_FOUND"
        assert message["error"]["details"]["operation"] == "progress"
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


def test_the_progress_of_a_recorded_deployment_ends_at_once(
    rest_server: ServerProcess, http: httpx.Client, unique: str
) -> None:
    record(http, unique, version="3.1")
    url = rest_server.url.replace("http://", "ws://") + f"/api/v1/deployments/{unique}/progress"
    with connect(url, additional_headers=AUTH_HEADERS) as socket:
        message = json.loads(socket.recv(timeout=10))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    assert set(message) == {"step", "status", "message", "progress_pct", "timestamp"}
    assert message["status"] == "success"
    assert message["progress_pct"] == 100
    assert TIMESTAMP.match(message["timestamp"])
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
