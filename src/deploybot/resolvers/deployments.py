"""Queries and mutations of deployments."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from strawberry.types.nodes import SelectedField, Selection

from deploybot.core import deployments as core
from deploybot.core.deployments import deployment_table
from deploybot.errors import DeploybotError, ValidationFailed
from deploybot.ids import InvalidId, decode_cursor, decode_id, encode_cursor
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


def deployment_number(value: str, environment: str) -> int | None:
    """A global ID of this environment, or a bare serial number; None if it can't be ours."""
    if value.isdigit():
        return int(value)
    try:
        gid = decode_id(value)
    except InvalidId as exc:
        raise PublicError(str(exc)) from exc
    if gid.type_name != "Deployment" or gid.environment != environment:
        return None
    return gid.key


async def deployment(info: Info, id: DeploymentId) -> Deployment | None:
    number = deployment_number(id, info.context.settings.environment)
    if number is None:
        return None
    row = await core.get_deployment(info.context.db, number)
    return Deployment.from_row(row, info.context.base_url) if row else None


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
    column.name.split("_")[0] + "".join(p.title() for p in column.name.split("_")[1:]): column.name
    for column in deployment_table.columns
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


def _cursor(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return decode_cursor(value)
    except InvalidId as exc:
        raise PublicError(f"{name}: {exc}") from exc


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
        page = await core.list_deployments(
            info.context.db,
            flt,
            descending=descending,
            first=first,
            after=_cursor(after, "after"),
            last=last,
            before=_cursor(before, "before"),
            columns=selected_columns(info),
        )
    except DeploybotError as exc:
        raise PublicError(exc.message) from exc
    base_url = info.context.base_url
    nodes = [Deployment.from_row(row, base_url) for row in page.rows]
    edges = [DeploymentEdge(cursor=encode_cursor(n.number), node=n) for n in nodes]
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
    services = info.context.services
    try:
        row = await core.create_deployment(
            services.db,
            services.bus,
            services.settings,
            services.inspector,
            input.to_core(_original_request(input)),
            swarm=services.swarm,
        )
    except (DeploybotError, ValidationFailed) as exc:
        return DeployPayload(
            deployment=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return DeployPayload(
        deployment=Deployment.from_row(row, info.context.base_url),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )
