"""How a relay and an environment's instance talk: the `Backend` protocol's own methods,
their arguments and answers as JSON, checked against the protocol's type hints.

The public GraphQL schema does not carry everything a record holds (a deployment's
original request, its runner), and the relay serves the same schema from records; so the
relay calls the instance's backend methods (`POST /relay/rpc/<method>`) and builds the
records the schema's resolvers expect. Only the methods in `RELAYED` can be called, and the
instance's backend checks every call against the forwarded caller as for any other.
"""

from __future__ import annotations

import enum
import inspect
import typing
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from functools import cache
from typing import Any, Final

from pydantic import TypeAdapter

from deploybot.backend.protocol import Backend
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.records import DeploymentRecord, Edge, Page

RPC_PATH: Final = "/relay/rpc/"
ON_BEHALF_OF: Final = "x-deploybot-on-behalf-of"
"""Header: the caller the relay forwards (honoured only from a token with the relay grant)."""
FORWARDED_GRANTS: Final = "x-deploybot-forwarded-grants"
"""Header: the caller's grants at the relay, `;`-separated (capped by the relay token's)."""

RELAYED: Final = frozenset(
    {
        "deploy",
        "validate_deployment",
        "rollback",
        "cancel_deployment",
        "record_deployment",
        "report_deployment_status",
        "add_deployment_result",
        "add_recorded_services",
        "deployment",
        "deployments",
        "count_deployments",
        "deployments_by_ref",
        "steps",
        "service_rollouts",
        "results",
        "log_lines",
        "count_log_lines",
        "application",
        "applications",
        "current_versions",
        # aggregated (relay.aggregates)
        "delivery_samples",
        "release",
        "releases",
        "releases_by_ref",
        "release_keys",
        "releases_named",
        "latest_release",
        # routed by their environment argument
        "secrets",
        "set_secret",
        "delete_secret",
    }
)


class Method:
    """One relayed method: its parameters' and its answer's adapters."""

    def __init__(self, name: str) -> None:
        function = getattr(Backend, name)
        hints = typing.get_type_hints(function)
        self.name = name
        self.parameters = [p for p in inspect.signature(function).parameters if p != "self"]
        self.arguments = {p: TypeAdapter(_wire_type(hints[p])) for p in self.parameters}
        answer = hints["return"]
        self.keyed = typing.get_origin(answer) is dict
        """dict answers (by DeploymentRef) travel as [key, value] pairs: JSON keys are text."""
        if self.keyed:
            key, value = typing.get_args(answer)
            answer = list[tuple[key, value]]  # type: ignore[valid-type]
        self.answer: TypeAdapter[Any] = TypeAdapter(answer)
        self.fast = FAST_ANSWERS.get(name)
        """A hand-written codec for the hottest answers (a history page): the instance is
        trusted (a service token), so the relay skips validating every field of 50 rows."""

    def encode_arguments(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {
            name: self.arguments[name].dump_python(value, mode="json")
            for name, value in values.items()
        }

    def decode_arguments(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not set(body) <= set(self.parameters):
            raise DeploybotError(ErrorCode.INVALID_INPUT, f"bad arguments for {self.name}")
        return {name: self.arguments[name].validate_python(v) for name, v in body.items()}

    def encode_answer(self, value: Any) -> Any:
        """JSON-ready for orjson (which writes datetimes and enums itself)."""
        if self.fast is not None:
            return self.fast[0](value)
        if self.keyed:
            value = list(value.items())
        return self.answer.dump_python(value, mode="json")

    def decode_answer(self, body: Any) -> Any:
        if self.fast is not None:
            return self.fast[1](body)
        value = self.answer.validate_python(body)
        return dict(value) if self.keyed else value


def _field_decoders(cls: type) -> dict[str, Callable[[Any], Any]]:
    """How each datetime or enum field of a record is read back from its JSON form."""
    decoders: dict[str, Callable[[Any], Any]] = {}
    for name, hint in typing.get_type_hints(cls).items():
        for kind in (hint, *typing.get_args(hint)):
            if kind is datetime:
                decoders[name] = datetime.fromisoformat
            elif isinstance(kind, type) and issubclass(kind, enum.Enum):
                decoders[name] = {m.value: m for m in kind}.__getitem__  # not Enum.__call__
    return decoders


_DEPLOYMENT_DECODERS: Final = _field_decoders(DeploymentRecord)


def encode_deployment(record: DeploymentRecord) -> dict[str, Any]:
    """The fields that are set (None and empty lists are the defaults `of` restores)."""
    return {k: v for k, v in vars(record).items() if v is not None and v != []}


def decode_deployment(body: dict[str, Any]) -> DeploymentRecord:
    for name, decode in _DEPLOYMENT_DECODERS.items():
        value = body.get(name)
        if value is not None:
            body[name] = decode(value)
    return DeploymentRecord.of(body)


def _encode_deployment_page(page: Page[DeploymentRecord]) -> dict[str, Any]:
    return {
        "edges": [[e.cursor, encode_deployment(e.node)] for e in page.edges],
        "has_next": page.has_next,
        "has_previous": page.has_previous,
    }


def _decode_deployment_page(body: dict[str, Any]) -> Page[DeploymentRecord]:
    """Edges as [cursor, node]; also as {cursor, node}, an instance from before this codec."""
    edges = [(e["cursor"], e["node"]) if isinstance(e, dict) else e for e in body["edges"]]
    return Page(
        [Edge(cursor, decode_deployment(node)) for cursor, node in edges],
        has_next=bool(body["has_next"]),
        has_previous=bool(body["has_previous"]),
    )


FAST_ANSWERS: Final[dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]]] = {
    "deployments": (_encode_deployment_page, _decode_deployment_page),
}
"""Answers with their own codec (encode for orjson, decode from it)."""


def _wire_type(hint: Any) -> Any:
    """`Collection[str]` (which fields to read) travels as a list."""
    if hint == Collection[str] | None:
        return list[str] | None
    return hint


@cache
def method(name: str) -> Method:
    if name not in RELAYED:
        raise DeploybotError(ErrorCode.INVALID_INPUT, f"{name!r} is not relayed")
    return Method(name)


def error_body(error: DeploybotError) -> dict[str, Any]:
    return {"error": {"code": error.code.value, "message": error.message, "field": error.field}}


def error_of(body: Mapping[str, Any]) -> DeploybotError:
    error = body["error"]
    try:
        code = ErrorCode(error.get("code"))
    except ValueError:
        code = ErrorCode.INTERNAL_ERROR
    return DeploybotError(code, str(error.get("message")), field=error.get("field"))
