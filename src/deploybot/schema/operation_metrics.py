"""Counts queries and mutations by operation name and type and observes how long each took
(`deploybot_graphql_operation_*`). Subscriptions over WebSocket are counted by the
WebSocket transport, which runs them itself.

`OperationChecks` is the schema's one per-operation extension: the query limits
(`schema.limits`) and these figures. One extension instead of two saves a generator and
its context manager per operation; the metric children are looked up once per label pair.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.metrics import Counter, Histogram
from strawberry.types import ExecutionContext

from deploybot.metrics import GRAPHQL_DURATION, GRAPHQL_OPERATIONS, operation_name
from deploybot.schema.limits import QueryLimitsExtension

_MAX_CHILDREN = 2000
_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}


def _metrics_of(name: str, kind: str) -> tuple[Counter, Histogram]:
    key = (name, kind)
    found = _children.get(key)
    if found is None:
        found = (GRAPHQL_OPERATIONS.labels(name, kind), GRAPHQL_DURATION.labels(name, kind))
        if len(_children) < _MAX_CHILDREN:
            _children[key] = found
    return found


def record_operation(context: ExecutionContext, started: float) -> None:
    """Count the operation of `context`, which began at `started` (perf_counter)."""
    try:
        kind = context.operation_type.value
        name = operation_name(context.operation_name)
    except (RuntimeError, ValueError):  # the document did not parse, or names no operation
        kind, name = "invalid", "invalid"
    counter, histogram = _metrics_of(name, kind)
    counter.inc()
    histogram.observe(time.perf_counter() - started)


class OperationChecks(QueryLimitsExtension):
    """The query limits, and each operation counted and timed."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield from super().on_operation()
        record_operation(self.execution_context, started)
