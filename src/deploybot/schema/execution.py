"""The graphql-core executor deploybot runs every operation with.

graphql-core 3.3.2's `build_per_event_executor` makes a shallow copy of the
subscription's executor, so the `_relevant_sub_fields` memo (keyed by the
identity of per-event field lists) is shared by every event of a subscription
and grows by about 1 KB per delivered event, with long garbage-collection
pauses as a result. Each per-event executor here starts with its own memo.

`build` is where the operation and its variables meet before anything runs: there the
request's node estimate is checked (`schema.limits`), over HTTP and WebSocket alike.
"""

from __future__ import annotations

from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from deploybot.schema.limits import node_limit_error


class Executor(StrawberryGraphQLCoreExecutionContext):
    @classmethod
    def build(  # type: ignore[override]
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        root_value: Any = None,
        context_value: Any = None,
        raw_variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> list[GraphQLError] | Executor:
        built = super().build(
            schema,
            document,
            root_value,
            context_value,
            raw_variable_values,
            operation_name,
            *args,
            **kwargs,
        )
        if isinstance(built, list):
            return built
        error = node_limit_error(schema, document, built.operation, raw_variable_values)
        if error is not None:
            return [error]
        return built  # type: ignore[return-value]

    def build_per_event_executor(self, payload: Any) -> Executor:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        return executor  # type: ignore[return-value]
