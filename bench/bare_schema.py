"""The yardstick: a bare Strawberry schema returning 50 deployments from memory.

`BARE_CACHES=1` adds Strawberry's parser and validation caches; otherwise it
runs with Strawberry's defaults. Served by `uvicorn bench.bare_schema:app`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import strawberry
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache


@strawberry.type
class Deployment:
    id: strawberry.ID
    number: int
    environment: str
    application: str
    repository_url: str | None
    ref: str | None
    commit_sha: str | None
    version: str | None
    state: str
    created_at: datetime
    finished_at: datetime | None


@strawberry.type
class DeploymentConnection:
    nodes: list[Deployment]


T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROWS = [
    Deployment(
        id=strawberry.ID(f"RGVwbG95bWVudDpwcm9kdWN0aW9uOj{i}"),
        number=1_000_000 - i,
        environment="production",
        application=f"app-{i % 50}",
        repository_url=f"git://git.example/team/app-{i % 50}.git",
        ref="main",
        commit_sha=f"{i:040x}",
        version=f"1.0.{i}",
        state="SUCCESS",
        created_at=T0 + timedelta(minutes=i),
        finished_at=T0 + timedelta(minutes=i, seconds=30),
    )
    for i in range(50)
]


@strawberry.type
class Query:
    @strawberry.field
    def deployments(
        self, first: int = 50, filter: strawberry.scalars.JSON | None = None
    ) -> DeploymentConnection:
        return DeploymentConnection(nodes=ROWS[:first])


extensions = (
    [lambda: ParserCache(maxsize=100), lambda: ValidationCache(maxsize=100)]
    if os.environ.get("BARE_CACHES") == "1"
    else []
)
schema = strawberry.Schema(query=Query, extensions=extensions)
app = GraphQL(schema)
