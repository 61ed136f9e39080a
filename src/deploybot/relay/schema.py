"""The relay's schema: the instances' schema (same types, same SDL), plus the errors that
name the environments a request's answer had to leave out."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from deploybot.schema import build_schema


class UnavailableEnvironments(SchemaExtension):
    """Adds one ENVIRONMENT_UNAVAILABLE error per environment left out of the answer."""

    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context.context
        missing = getattr(getattr(context, "backend", None), "unavailable", None)
        result = self.execution_context.result
        if not missing or result is None or not hasattr(result, "errors"):
            return
        errors = list(result.errors or [])
        for environment, message in sorted(missing.items()):
            extensions = {"code": "ENVIRONMENT_UNAVAILABLE", "environment": environment}
            errors.append(GraphQLError(message, extensions=extensions))
        result.errors = errors


relay_schema = build_schema(UnavailableEnvironments)
