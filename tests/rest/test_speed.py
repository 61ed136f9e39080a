"""SPEED (seed 001) through HTTP: an external runner drives a deployment through /start,
/update, /add_results and /results, and every error status the seed lists."""

from __future__ import annotations

import httpx

from tests.rest.conftest import ServerProcess


def test_an_external_runner_drives_a_deployment(http: httpx.Client, unique: str) -> None:
    url = f"git://127.0.0.1/{unique}.git"
    started = http.post("/start", json={"url": url, "branch": "main"})
    assert started.status_code == 201, started.text
    deployment_id = started.json()["id"]
    assert isinstance(deployment_id, int)

    info = http.get(f"/info/{deployment_id}")
    assert info.status_code == 200
    assert info.json() == {
        "id": deployment_id,
        "repo_name": url,
        "repo_branch": "main",
        "status": "Pending",
    }

    running = http.post("/update", json={"id": deployment_id, "new_results": "Running"})
    assert running.status_code == 200
    assert running.json() == {"message": "Deployment updated successfully"}
    assert http.get(f"/info/{deployment_id}").json()["status"] == "Running"

    added = http.post(f"/add_results/{deployment_id}", json={"results": "build ok"})
    assert added.status_code == 200
    assert added.json() == {"message": "Results added successfully"}
    note = http.post("/update", json={"id": deployment_id, "new_results": "3 of 4 tests passed"})
    assert note.status_code == 200  # not a status word: kept as a result

    done = http.post("/update", json={"id": deployment_id, "new_results": "Succeeded"})
    assert done.status_code == 200
    assert http.get(f"/info/{deployment_id}").json()["status"] == "Succeeded"

    results = http.get(f"/results/{deployment_id}")
    assert results.status_code == 200
    assert results.json() == {"results": "build ok\n3 of 4 tests passed"}

    # A final deployment is not moved again.
    again = http.post("/update", json={"id": deployment_id, "new_results": "Running"})
    assert again.status_code == 409
    assert "SUCCESS" in again.json()["error"]


def test_a_failed_run_reads_failed(http: httpx.Client, unique: str) -> None:
    deployment_id = http.post(
        "/start", json={"url": f"git://127.0.0.1/{unique}.git", "branch": "dev"}
    ).json()["id"]
    assert (
        http.post("/update", json={"id": deployment_id, "new_results": "Failed"}).status_code == 200
    )
    assert http.get(f"/info/{deployment_id}").json()["status"] == "Failed"


def test_missing_results_data_is_400(http: httpx.Client, unique: str) -> None:
    deployment_id = http.post(
        "/start", json={"url": f"git://127.0.0.1/{unique}.git", "branch": "main"}
    ).json()["id"]
    for body in ({}, {"results": ""}, {"results": None}):
        answer = http.post(f"/add_results/{deployment_id}", json=body)
        assert answer.status_code == 400
        assert answer.json() == {"error": "Missing results data"}
    assert http.post(f"/add_results/{deployment_id}", content=b"not json").status_code == 400


def test_unknown_deployments_are_404(http: httpx.Client) -> None:
    not_found = {"error": "Deployment not found"}
    for answer in (
        http.get("/info/987654"),
        http.get("/results/987654"),
        http.get("/info/abc"),
        http.post("/add_results/987654", json={"results": "x"}),
        http.post("/update", json={"id": 987654, "new_results": "Running"}),
    ):
        assert answer.status_code == 404
        assert answer.json() == not_found


def test_bad_start_and_update_bodies_are_400(http: httpx.Client) -> None:
    for body in ({}, {"url": "git://127.0.0.1/x.git"}, {"branch": "main"}):
        answer = http.post("/start", json=body)
        assert answer.status_code == 400
        assert "error" in answer.json()
    assert http.post("/start", content=b"{").status_code == 400
    assert http.post("/update", json={"id": "one", "new_results": "x"}).status_code == 400


def test_no_request_above_was_an_unhandled_error(rest_server: ServerProcess) -> None:
    """Bad input is answered, never a 500 with a traceback in the server's log."""
    assert "Traceback" not in rest_server.log()
