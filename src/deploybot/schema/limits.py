"""What one GraphQL request may cost, checked before anything runs: tokens (parsing stops
there), selection depth and aliases (Strawberry's `MaxTokensLimiter`, `QueryDepthLimiter`
and `MaxAliasesLimiter`), and the nodes it may ask for, estimated as GitHub does: every
connection asks for `first` (or `last`) nodes for each node of the connections around it,
and the sum over the connections may not exceed `max_nodes`. Each refusal is a GraphQL
error with `extensions.code` QUERY_TOO_COMPLEX.

The limits come from the settings (`configure` at start-up); the same rules serve
GraphQL over HTTP (the schema's extension) and over WebSocket.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    VariableNode,
    get_named_type,
    parse,
)
from graphql.type.definition import GraphQLInterfaceType
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension

from deploybot.config import Settings
from deploybot.errors import ErrorCode

TOO_COMPLEX = ErrorCode.QUERY_TOO_COMPLEX.value
DEFAULT_PAGE = 100
"""Nodes a connection is counted for when its size is not given and has no default."""


def _coded(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
    """`rule`, whose errors carry `extensions.code` QUERY_TOO_COMPLEX. (Strawberry's rules
    report from their constructor, while the context's report_error is swapped here.)"""

    class Coded(rule):  # type: ignore[valid-type,misc]
        def __init__(self, context: ValidationContext) -> None:
            report = context.report_error

            def tagged(error: GraphQLError) -> None:
                error.extensions = {**(error.extensions or {}), "code": TOO_COMPLEX}
                report(error)

            context.report_error = tagged  # type: ignore[method-assign]
            try:
                super().__init__(context)
            finally:
                del context.report_error

    Coded.__name__ = Coded.__qualname__ = rule.__name__
    return Coded


@dataclass(frozen=True)
class QueryLimits:
    max_depth: int = 12
    max_aliases: int = 100
    max_tokens: int = 2000
    max_nodes: int = 50_000
    rules: tuple[type[ASTValidationRule], ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        built = [
            *QueryDepthLimiter(max_depth=self.max_depth).validation_rules,
            *MaxAliasesLimiter(max_alias_count=self.max_aliases).validation_rules,
        ]
        object.__setattr__(self, "rules", tuple(_coded(rule) for rule in built))

    @classmethod
    def from_settings(cls, settings: Settings) -> QueryLimits:
        return cls(
            max_depth=settings.graphql_max_depth,
            max_aliases=settings.graphql_max_aliases,
            max_tokens=settings.graphql_max_tokens,
            max_nodes=settings.graphql_max_nodes,
        )


_current = QueryLimits()


def configure(limits: QueryLimits) -> None:
    """Set the limits of this process (`create_app` does, from the settings)."""
    global _current
    _current = limits


def current() -> QueryLimits:
    return _current


_TOKEN = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*"|#[^\n\r]*|\.\.\.'
    r"|[_A-Za-z][_0-9A-Za-z]*|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[!$&()\[\]{}:=@|]"
)
"""GraphQL's tokens, roughly (comments are matched to be skipped)."""


def exceeds_tokens(query: str, limit: int) -> bool:
    """Whether `query` has more than `limit` tokens, by a regular expression that stops at
    the limit: graphql-core's lexer takes ~10 µs a token, this ~1 µs, so an oversized
    document is refused before the parser sees it (the parser's own limit stays). A token
    is at least one character: a shorter document is not scanned at all."""
    if len(query) <= limit:
        return False
    count = 0
    for match in _TOKEN.finditer(query):
        if query[match.start()] != "#":
            count += 1
            if count > limit:
                return True
    return False


def token_limit_error(limit: int) -> GraphQLError:
    return GraphQLError(
        f"Document contains more than {limit} tokens. Parsing aborted.",
        extensions={"code": TOO_COMPLEX, "maxTokens": limit},
    )


class QueryLimitsExtension(SchemaExtension):
    """Strawberry's token limit (a parse option, as `MaxTokensLimiter` sets it, after a
    quicker count) and the depth and alias rules, with the limits of this process."""

    def on_operation(self) -> Iterator[None]:
        limits = _current
        context = self.execution_context
        context.parse_options["max_tokens"] = limits.max_tokens
        context.validation_rules = context.validation_rules + limits.rules
        yield

    def on_parse(self) -> Iterator[None]:
        query = self.execution_context.query
        limit = _current.max_tokens
        parsed = self.execution_context.graphql_document is not None
        if query is not None and not parsed and exceeds_tokens(query, limit):
            raise token_limit_error(limit)
        yield


def is_token_limit(error: GraphQLError) -> bool:
    return isinstance(error, GraphQLSyntaxError) and "tokens. Parsing aborted" in error.message


_BAD_VALUE = (
    "cannot represent",
    "got invalid value",
    "has invalid value",
    "Expected value of type",
)


def tag_request_error(error: GraphQLError) -> GraphQLError:
    """GraphQL's own request errors, with a code where one applies: the token limit
    (QUERY_TOO_COMPLEX) and values out of their type's range, such as an Int above
    2**31-1 (INVALID_INPUT)."""
    if error.extensions and "code" in error.extensions:
        return error
    if is_token_limit(error):
        error.extensions = {**(error.extensions or {}), "code": TOO_COMPLEX}
    elif any(part in error.message for part in _BAD_VALUE):
        error.extensions = {**(error.extensions or {}), "code": ErrorCode.INVALID_INPUT.value}
    return error


def parse_limited(query: str) -> DocumentNode:
    """`parse` with this process's token limit; the refusal carries its code."""
    limit = _current.max_tokens
    if exceeds_tokens(query, limit):
        raise token_limit_error(limit)
    try:
        return parse(query, max_tokens=limit)
    except GraphQLError as exc:
        raise tag_request_error(exc) from None


# --- the node estimate ------------------------------------------------------------------


class _Estimate:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def _size(self, node: FieldNode, arguments: Mapping[str, Any]) -> int | None:
        """How many nodes a connection field asks for (None: not a connection)."""
        if "first" not in arguments and "last" not in arguments:
            return None
        given: list[int] = []
        for argument in node.arguments or ():
            if argument.name.value not in ("first", "last"):
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                given.append(int(value.value))
            elif isinstance(value, VariableNode):
                raw = self.variables.get(value.name.value)
                if isinstance(raw, int):
                    given.append(raw)
        if given:
            return max(0, *given)
        defaults = [
            arguments[name].default_value
            for name in ("first", "last")
            if name in arguments and isinstance(arguments[name].default_value, int)
        ]
        return max(defaults) if defaults else DEFAULT_PAGE

    def _fields(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType, seen: frozenset[str]
    ) -> Iterator[tuple[FieldNode, GraphQLNamedType, frozenset[str]]]:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection, parent, seen
            elif isinstance(selection, InlineFragmentNode):
                on = selection.type_condition
                scope = self.schema.get_type(on.name.value) if on else parent
                yield from self._fields(selection.selection_set, scope or parent, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:
                    continue
                scope = self.schema.get_type(fragment.type_condition.name.value) or parent
                yield from self._fields(fragment.selection_set, scope, seen | {name})

    def nodes(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType, multiplier: int
    ) -> int:
        total = 0
        for node, scope, _seen in self._fields(selection_set, parent, frozenset()):
            if not isinstance(scope, GraphQLObjectType | GraphQLInterfaceType):
                continue
            definition = scope.fields.get(node.name.value)
            if definition is None:
                continue
            size = self._size(node, definition.args)
            inner = multiplier
            if size is not None:
                inner = multiplier * size
                total += inner
            if node.selection_set is not None:
                total += self.nodes(node.selection_set, get_named_type(definition.type), inner)
        return total


def estimated_nodes(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
) -> int:
    """GitHub's estimate: the sum over connections of the product of `first`/`last` along
    the path to them (a variable counts at its value, a missing size at its default)."""
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return _Estimate(schema, fragments, variables or {}).nodes(operation.selection_set, root, 1)


_ESTIMATES_MAX = 1000
_estimates: dict[tuple[int, int, int, tuple[tuple[str, int], ...]], tuple[DocumentNode, int]] = {}
"""Node estimates by (schema, document, operation, the integer variables): a document
comes back as the same object from the parser cache for every request of the same text,
so the walk runs once per document and page size, not once per request. The document is
kept in the value, so the identity in the key cannot be reused while the entry lives."""


def _cached_estimate(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
) -> int:
    # Only integer variables can change the estimate (`first`/`last` given as $variables).
    sizes = tuple(sorted((k, v) for k, v in (variables or {}).items() if isinstance(v, int)))
    key = (id(schema), id(document), id(operation), sizes)
    found = _estimates.get(key)
    if found is not None and found[0] is document:
        return found[1]
    count = estimated_nodes(schema, document, operation, variables)
    if len(_estimates) >= _ESTIMATES_MAX:
        _estimates.clear()
    _estimates[key] = (document, count)
    return count


def node_limit_error(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
) -> GraphQLError | None:
    limit = _current.max_nodes
    count = _cached_estimate(schema, document, operation, variables)
    if count <= limit:
        return None
    return GraphQLError(
        f"this request may ask for {count} nodes (the product of `first`/`last` along "
        f"nested connections, summed); at most {limit} are allowed",
        extensions={"code": TOO_COMPLEX, "nodes": count, "maxNodes": limit},
    )
