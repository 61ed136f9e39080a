"""The graphql-core executor deploybot runs every operation with.

graphql-core 3.3.2's `build_per_event_executor` makes a shallow copy of the
subscription's executor, so the `_relevant_sub_fields` memo (keyed by the
identity of per-event field lists) is shared by every event of a subscription
and grows by about 1 KB per delivered event, with long garbage-collection
pauses as a result. Each per-event executor here starts with its own memo.
"""

from __future__ import annotations

from typing import Any

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class Executor(StrawberryGraphQLCoreExecutionContext):
    def build_per_event_executor(self, payload: Any) -> Executor:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        return executor  # type: ignore[return-value]
