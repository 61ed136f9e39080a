"""Deis Workflow Manager versions (seed 003) through HTTP: the seed's own example body, the
URL/body mismatch 400s, `data: {}`, and the read routes."""

from __future__ import annotations

import httpx

# The seed's curl example, verbatim (its release time has a zone after the `Z`).
CURL_BODY = (
    '{"component": {"name": "deis-builder"}, "version": {"train": "beta", "version":'
    ' "2.0.0-beta2", "released": "2016-04-16T23:54:39Z07:00"}}'
)
CURL_URL = "/v2/versions/beta/deis-builder/2.0.0-beta2"


def test_the_seed_example_publishes(http: httpx.Client, unique: str) -> None:
    answer = http.post(
        CURL_URL.replace("deis-builder", f"{unique}-builder"),
        content=CURL_BODY.replace("deis-builder", f"{unique}-builder"),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "component": {"name": f"{unique}-builder"},
        "version": {
            "train": "beta",
            "version": "2.0.0-beta2",
            "released": "2016-04-16T23:54:39Z",  # the zone after Z is ignored, as the seed says
            "data": {},
        },
    }
    again = http.post(
        CURL_URL.replace("deis-builder", f"{unique}-builder"),
        content=CURL_BODY.replace("deis-builder", f"{unique}-builder"),
        headers={"Content-Type": "application/json"},
    )
    assert again.status_code == 409
    assert "already published" in again.text


def test_the_documented_representation_with_data_and_reads(http: httpx.Client, unique: str) -> None:
    component = f"{unique}-builder"
    # The seed's JSON representation (comments removed): release time without a zone, data.
    documented = {
        "component": {"name": component},
        "version": {
            "train": "beta",
            "version": "2.0.0-beta2",
            "released": "2016-04-16T23:54:39",
            "data": {"notes": "here's beta2!"},
        },
    }
    first = http.post(f"/v2/versions/beta/{component}/2.0.0-beta2", json=documented)
    assert first.status_code == 200, first.text
    assert first.json()["version"]["data"] == {"notes": "here's beta2!"}
    later = {
        "component": {"name": component},
        "version": {
            "train": "beta",
            "version": "2.0.0-beta3",
            "released": "2016-04-20T10:00:00+02:00",
            "data": {},
        },
    }
    second = http.post(f"/v2/versions/beta/{component}/2.0.0-beta3", json=later)
    assert second.status_code == 200
    assert second.json()["version"]["released"] == "2016-04-20T08:00:00Z"

    listed = http.get(f"/v2/versions/beta/{component}")
    assert listed.status_code == 200
    assert [v["version"]["version"] for v in listed.json()] == ["2.0.0-beta3", "2.0.0-beta2"]
    latest = http.get(f"/v2/versions/beta/{component}/latest")
    assert latest.status_code == 200
    assert latest.json()["version"]["version"] == "2.0.0-beta3"
    one = http.get(f"/v2/versions/beta/{component}/2.0.0-beta2")
    assert one.status_code == 200
    assert one.json() == first.json()

    many = http.post(
        "/v2/versions/latest",
        json={
            "data": [
                {"component": {"name": component}, "version": {"train": "beta"}},
                {"component": {"name": component}, "version": {"train": "stable"}},
            ]
        },
    )
    assert many.status_code == 200
    assert many.json() == {"data": [latest.json()]}  # none on stable: left out
    assert http.post("/v2/versions/latest", json={"data": [{}]}).status_code == 400

    assert http.get(f"/v2/versions/beta/{component}/9.9.9").status_code == 404
    assert http.get(f"/v2/versions/stable/{component}/latest").status_code == 404
    assert http.get(f"/v2/versions/stable/{component}").json() == []
    assert http.get(f"/v3/versions/beta/{component}").status_code == 404


def test_url_segments_that_disagree_with_the_body_are_400(http: httpx.Client, unique: str) -> None:
    body = {
        "component": {"name": f"{unique}-router"},
        "version": {"train": "beta", "version": "1.0.0", "released": "2016-04-16T23:54:39Z"},
    }
    cases = {
        f"/v2/versions/stable/{unique}-router/1.0.0": "train",
        f"/v2/versions/beta/{unique}-other/1.0.0": "component",
        f"/v2/versions/beta/{unique}-router/1.0.1": "version",
    }
    for url, segment in cases.items():
        answer = http.post(url, json=body)
        assert answer.status_code == 400, url
        assert f"URL segment {segment}" in answer.text
        assert answer.headers["content-type"].startswith("text/plain")
    # Nothing was published by the refused requests.
    assert http.get(f"/v2/versions/beta/{unique}-router").json() == []


def test_missing_or_malformed_fields_are_400(http: httpx.Client, unique: str) -> None:
    url = f"/v2/versions/beta/{unique}-x/1.0.0"
    no_time = {
        "component": {"name": f"{unique}-x"},
        "version": {"train": "beta", "version": "1.0.0"},
    }
    assert http.post(url, json=no_time).status_code == 400
    assert http.post(url, json={"version": {}}).status_code == 400
    assert http.post(url, content=b"[1, 2").status_code == 400
    bad_time = {
        "component": {"name": f"{unique}-x"},
        "version": {"train": "beta", "version": "1.0.0", "released": "yesterday"},
    }
    answer = http.post(url, json=bad_time)
    assert answer.status_code == 400
    assert "RFC 3339" in answer.text
