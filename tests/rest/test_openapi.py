"""/openapi.json: generated from the routes (SpecTree over their pydantic models)."""

from __future__ import annotations

import httpx


def test_the_document_describes_every_seed(http: httpx.Client) -> None:
    answer = http.get("/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path, method in (
        ("/start", "post"),
        ("/info/{deployment_id}", "get"),
        ("/update", "post"),
        ("/add_results/{deployment_id}", "post"),
        ("/results/{deployment_id}", "get"),
        ("/api/v1/deployments", "post"),
        ("/api/v1/deployments", "get"),
        ("/api/v1/deployments/validate", "post"),
        ("/api/v1/deployments/{name}", "get"),
        ("/api/v1/deployments/{name}/rollback", "post"),
        ("/api/v1/deployments/{name}/health", "get"),
        ("/{api_version}/versions/{train}/{component}/{version}", "post"),
        ("/{api_version}/versions/{train}/{component}", "get"),
        ("/{api_version}/versions/{train}/{component}/latest", "get"),
        ("/{api_version}/versions/latest", "post"),
        ("/release", "post"),
        ("/release/{release_id}/packages", "post"),
        ("/results", "post"),
        ("/releases", "get"),
        ("/package/{name}/version", "get"),
    ):
        assert method in paths[path], (path, method)
    deploy = paths["/api/v1/deployments"]["post"]
    assert {"201", "400", "409", "500"} <= set(deploy["responses"])
    assert "422" not in deploy["responses"]  # the routes answer bad input with 400s
    schemas = document["components"]["schemas"]
    spec = next(v for k, v in schemas.items() if k.startswith("DeploySpec"))
    assert "working_directory" in spec["properties"]
    assert spec["properties"]["strategy"]["enum"] == ["rolling", "blue-green", "canary", "recreate"]
    listing = {p["name"] for p in paths["/api/v1/deployments"]["get"]["parameters"]}
    assert {"environment", "state", "limit", "offset"} <= listing
