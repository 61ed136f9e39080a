"""The committed schema.graphql is exactly what the code builds."""

from __future__ import annotations

from pathlib import Path

from deploybot.schema import schema

ROOT = Path(__file__).resolve().parents[1]


def test_schema_graphql_is_up_to_date() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == schema.as_str() + "\n", (
        "schema.graphql differs from the code: run `deploybot export-schema schema.graphql`"
    )


def test_schema_follows_the_conventions() -> None:
    sdl = schema.as_str()
    assert "interface Node" in sdl
    assert "type Deployment implements Node" in sdl
    assert "deploy(input: DeployInput!): DeployPayload!" in sdl
    assert "userErrors: [UserError!]!" in sdl
    for code in ("DEPLOYMENT_NOT_FOUND", "INVALID_DEPLOYMENT_SPEC", "DOCKER_UNAVAILABLE"):
        assert code in sdl
