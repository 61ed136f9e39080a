"""graphql-core 3.3.2 shares one memo among all events of a subscription and it grows
with every event; deploybot's executor gives each event its own."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime
from typing import Any

import graphql
import strawberry
from graphql import parse
from graphql.execution import Executor as CoreExecutor
from graphql.execution import execute_subscription_event

from deploybot.domain import LogSource, LogStream
from deploybot.schema import schema
from deploybot.schema.deployments import LogLine
from deploybot.schema.execution import Executor
from deploybot.schema.subscriptions import DeploymentLogChunk

DOCUMENT = parse(
    'subscription { deploymentLogs(id: "1") { lastSequence lines { sequence text } } }'
)


def _root(n: int) -> Any:
    lines = [
        LogLine(
            sequence=n * 10 + i,
            timestamp=datetime.now(UTC),
            source=LogSource.SYSTEM,
            source_name=None,
            stream=LogStream.STDOUT,
            text="x",
        )
        for i in range(10)
    ]
    return DeploymentLogChunk(
        deployment_id=strawberry.ID("1"), lines=lines, last_sequence=n * 10 + 9
    )


def deliver(executor_class: type[CoreExecutor[Any]], events: int) -> tuple[CoreExecutor[Any], int]:
    """Execute `events` events the way a subscription does; bytes still held afterwards."""
    executor = executor_class.build(schema._schema, DOCUMENT)
    assert isinstance(executor, CoreExecutor)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for n in range(events):
        result = execute_subscription_event(executor.build_per_event_executor(_root(n)))
        assert isinstance(result, graphql.ExecutionResult) and not result.errors
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return executor, grown


def test_graphql_core_alone_grows_with_every_event() -> None:
    executor, grown = deliver(CoreExecutor, 2000)
    assert len(executor._relevant_sub_fields) >= 2000
    assert grown > 1_000_000


def test_deploybot_executor_does_not_grow_with_delivered_events() -> None:
    executor, grown = deliver(Executor, 2000)
    assert len(executor._relevant_sub_fields) == 0
    assert grown < 200_000
