"""Sponge (seed 004) through HTTP: the seed's example, releases with missing data, packages
added afterwards, results, and the reads the seed lists."""

from __future__ import annotations

import httpx

# The seed's curl example, verbatim.
EXAMPLE = """{
   "notes":    "My first milestone",
   "references":     ["ACBC-1234"],
   "platforms":     ["My_Platform"]
 }"""


def test_the_seed_example_is_recorded(http: httpx.Client) -> None:
    answer = http.post("/release", content=EXAMPLE, headers={"Content-Type": "application/json"})
    assert answer.status_code == 201, answer.text
    release = answer.json()
    assert release["notes"] == "My first milestone"
    assert release["references"] == ["ACBC-1234"]
    assert release["platforms"] == ["My_Platform"]
    assert release["application"] is None  # no application: shown as such
    assert release["version"] is None
    assert release["status"] == "complete"
    assert release["finished"] is not None  # recorded after the fact: finished by now
    assert http.get(f"/release/{release['id']}").json() == release


def test_releases_with_missing_data(http: httpx.Client) -> None:
    for body in ({}, {"user": "alice"}, {"packages": []}):
        answer = http.post("/release", json=body)
        assert answer.status_code == 201, answer.text
        assert answer.json()["application"] is None
    no_body = http.post("/release")
    assert no_body.status_code == 201
    assert no_body.json()["status"] == "complete"


def test_a_full_release_then_packages_results_and_reads(http: httpx.Client, unique: str) -> None:
    body = {
        "application": unique,
        "version": "2024.1",
        "user": "alice",
        "team": "checkout",
        "references": ["OPS-7"],
        "hosts": ["web-1"],
        "finished": "2024-01-01T10:05:00Z",
        "duration": 300,
        "packages": [{"name": "api", "version": "1.4.0", "hosts": ["api-1"], "duration": 42}],
        "logs": "deployed in 5 minutes",
        "tool": "fabric",  # unknown keys are kept, not refused
    }
    created = http.post("/release", json=body)
    assert created.status_code == 201, created.text
    release = created.json()
    assert release["user"] == "alice"
    assert release["team"] == "checkout"
    assert release["started"] == "2024-01-01T10:00:00Z"
    assert release["duration"] == 300
    assert release["packages"] == [
        {
            "name": "api",
            "version": "1.4.0",
            "hosts": ["api-1"],
            "started": "2024-01-01T10:04:18Z",
            "finished": "2024-01-01T10:05:00Z",
            "duration": 42,
        }
    ]
    release_id = release["id"]

    added = http.post(
        f"/release/{release_id}/packages",
        json={
            "packages": [{"name": "worker", "version": "1.4.1", "hosts": ["job-1"], "duration": 7}]
        },
    )
    assert added.status_code == 201, added.text
    assert sorted(p["name"] for p in added.json()["packages"]) == ["api", "worker"]
    # The seed's spelling of the route, and one package as the whole body.
    typo = http.post(f"/relase/{release_id}/packages", json={"name": "cron"})
    assert typo.status_code == 201
    packages = {p["name"]: p for p in typo.json()["packages"]}
    assert packages["cron"] == {
        "name": "cron",
        "version": "2024.1",  # a package without a version has the release's
        "hosts": [],
        "started": None,
        "finished": None,
        "duration": None,
    }
    duplicate = http.post(f"/release/{release_id}/packages", json=[{"name": "api"}])
    assert duplicate.status_code == 400
    assert duplicate.json()["field"] == "services[0].name"
    assert http.post("/release/987654/packages", json=[{"name": "x"}]).status_code == 404
    assert http.post(f"/release/{release_id}/packages", json={"packages": "x"}).status_code == 400

    hosts = http.get(f"/release/{release_id}/hosts")
    assert hosts.json() == {"id": release_id, "hosts": ["web-1", "job-1", "api-1"]}

    result = http.post("/results", json={"release": release_id, "results": {"smoke": "passed"}})
    assert result.status_code == 201
    assert http.post("/results", json={"results": "x"}).status_code == 400
    assert http.post("/results", json={"release": 987654, "results": "x"}).status_code == 404
    assert http.post("/results", json={"release": release_id}).status_code == 400

    version = http.get("/package/worker/version", params={"application": unique})
    assert version.status_code == 200
    assert version.json()["version"] == "1.4.1"
    assert version.json()["release"] == release_id
    assert http.get(f"/package/{unique}-none/version").status_code == 404
    assert http.get("/release/987654").status_code == 404
    assert http.get("/release/987654/hosts").status_code == 404


def test_ongoing_and_past_releases(http: httpx.Client, unique: str) -> None:
    ongoing = http.post(
        "/release", json={"application": unique, "started": "2024-01-01T10:00:00Z"}
    ).json()
    assert ongoing["status"] == "ongoing"
    past = http.post(
        "/release", json={"application": f"{unique}-b", "status": "failed", "platforms": [unique]}
    ).json()
    assert past["status"] == "failed"

    listed = http.get("/releases", params={"status": "ongoing", "application": unique}).json()
    assert [r["id"] for r in listed["releases"]] == [ongoing["id"]]
    by_platform = http.get("/releases", params={"status": "past", "platform": unique}).json()
    assert [r["id"] for r in by_platform["releases"]] == [past["id"]]
    assert http.get("/releases", params={"status": "past", "application": unique}).json() == {
        "releases": []
    }
    assert http.get("/releases", params={"status": "soon"}).status_code == 400
    assert http.get("/releases", params={"limit": "0"}).status_code == 400
    assert http.post("/release", json={"status": "maybe"}).status_code == 400
    assert http.post("/release", json={"references": "ACBC-1"}).status_code == 400
