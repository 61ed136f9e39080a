"""A Strawberry extension that counts queries and mutations by operation name and type and
observes how long each took (`deploybot_graphql_operation_*`). Subscriptions over
WebSocket are counted by the WebSocket transport, which runs them itself."""

from __future__ import annotations

import time
from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from deploybot.metrics import GRAPHQL_DURATION, GRAPHQL_OPERATIONS, operation_name


class OperationMetrics(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        try:
            kind = context.operation_type.value
            name = operation_name(context.operation_name)
        except (RuntimeError, ValueError):  # the document did not parse, or names no operation
            kind, name = "invalid", "invalid"
        GRAPHQL_OPERATIONS.labels(name, kind).inc()
        GRAPHQL_DURATION.labels(name, kind).observe(time.perf_counter() - started)
