"""Queries and mutations of deployments."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from strawberry.types.nodes import SelectedField, Selection

from deploybot.domain import DeploymentTrigger
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.ids import InvalidId
from deploybot.inputs import DeploymentRef, PageRequest
from deploybot.records import DeploymentRecord
from deploybot.schema.common import PageInfo, PublicError, UserError
from deploybot.schema.context import Info
from deploybot.schema.deployments import (
    DeployInput,
    Deployment,
    DeploymentConnection,
    DeploymentEdge,
    DeploymentFilter,
    DeploymentId,
    DeploymentOrder,
    DeployPayload,
)
from deploybot.schema.enums import OrderDirection
from deploybot.schema.rollout import camel, plain


def deployment_ref(value: str) -> DeploymentRef | None:
    """A global ID or a bare number; None for another type's ID; bad input is a PublicError."""
    try:
        return DeploymentRef.parse(value)
    except InvalidId as exc:
        raise PublicError(str(exc), ErrorCode.INVALID_INPUT.value) from exc


def field_ref(value: str, field: str, missing: str) -> DeploymentRef:
    """A reference in a mutation's input: bad input and another type's ID are field errors."""
    try:
        ref = DeploymentRef.parse(value)
    except InvalidId as exc:
        raise DeploybotError(ErrorCode.INVALID_INPUT, str(exc), field=field) from exc
    if ref is None:
        raise DeploybotError(ErrorCode.DEPLOYMENT_NOT_FOUND, missing, field=field)
    return ref


async def deployment(info: Info, id: DeploymentId) -> Deployment | None:
    ref = deployment_ref(id)
    if ref is None:
        return None
    found = await info.context.backend.deployment(ref)
    return Deployment.from_record(found, info.context.base_url) if found else None


#: GraphQL fields of Deployment computed from other columns (or none: loaded separately).
_DERIVED: dict[str, tuple[str, ...]] = {
    "id": (),
    "number": (),
    "logsUrl": (),
    "steps": (),
    "services": (),
    "logs": (),
    "results": (),
    "release": ("release_id",),
    "__typename": (),
    "duration": ("started_at", "finished_at"),
    "rollbackOnFailure": ("rollout_options",),
    "rolloutOptions": ("rollout_options",),
    "rollbackOf": ("rollback_of_id",),
    "rollbackTo": ("rollback_to_id",),
}
_COLUMN_OF = {
    name.split("_")[0] + "".join(p.title() for p in name.split("_")[1:]): name
    for name in DeploymentRecord.__dataclass_fields__
}


def _flatten(selections: list[Selection]) -> Iterator[SelectedField]:
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        else:
            yield from _flatten(selection.selections)


def selected_columns(info: Info) -> set[str] | None:
    """The columns a `deployments` selection shows (None: all, when it can't tell)."""
    columns: set[str] = set()
    for part in _flatten([s for f in info.selected_fields for s in f.selections]):
        if part.name == "nodes":
            nodes = part.selections
        elif part.name == "edges":
            nodes = [s for e in _flatten(part.selections) if e.name == "node" for s in e.selections]
        else:
            continue
        for field in _flatten(nodes):
            if field.name in _DERIVED:
                columns.update(_DERIVED[field.name])
            elif field.name in _COLUMN_OF:
                columns.add(_COLUMN_OF[field.name])
            else:
                return None
    return columns


async def deployments(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    filter: DeploymentFilter | None = None,
    order_by: DeploymentOrder | None = None,
) -> DeploymentConnection:
    flt = filter.to_core() if filter else None
    descending = order_by is None or order_by.direction is OrderDirection.DESC
    try:
        page = await info.context.backend.deployments(
            flt,
            PageRequest(first, after, last, before, descending=descending),
            fields=selected_columns(info),
        )
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc
    base_url = info.context.base_url
    edges = [
        DeploymentEdge(cursor=edge.cursor, node=Deployment.from_record(edge.node, base_url))
        for edge in page.edges
    ]
    nodes = [edge.node for edge in edges]
    return DeploymentConnection(
        edges=edges,
        nodes=nodes,
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        filter=flt,
    )


def _original_request(input: DeployInput) -> dict[str, Any]:
    raw = {
        k: plain(v)
        for k, v in dataclasses.asdict(input).items()  # type: ignore[call-overload]
        if v is not None
    }
    return {camel(k): v for k, v in raw.items()}


async def deploy(info: Info, input: DeployInput) -> DeployPayload:
    try:
        request = input.to_core(_original_request(input))
        if info.context.via_cli:
            request.trigger = DeploymentTrigger.CLI
        record = await info.context.backend.deploy(request)
    except (DeploybotError, ValidationFailed) as exc:
        return DeployPayload(
            deployment=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return DeployPayload(
        deployment=Deployment.from_record(record, info.context.base_url),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )
