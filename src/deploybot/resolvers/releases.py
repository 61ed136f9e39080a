"""Queries and mutations of the release catalogue."""

from __future__ import annotations

from deploybot.core import releases as core
from deploybot.errors import DeploybotError, ValidationFailed
from deploybot.ids import InvalidId, decode_keyset, encode_keyset
from deploybot.schema.common import PageInfo, PublicError, UserError
from deploybot.schema.context import Info
from deploybot.schema.enums import OrderDirection
from deploybot.schema.releases import (
    LatestReleaseBy,
    PublishReleaseInput,
    PublishReleasePayload,
    Release,
    ReleaseConnection,
    ReleaseEdge,
    ReleaseFilter,
    ReleaseOrder,
    ReleaseOrderField,
)


async def publish_release(info: Info, input: PublishReleaseInput) -> PublishReleasePayload:
    try:
        row = await core.publish_release(info.context.db, input.to_core())
    except (DeploybotError, ValidationFailed) as exc:
        return PublishReleasePayload(
            release=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return PublishReleasePayload(
        release=Release.from_row(row, info.context.settings.environment),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def releases(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    filter: ReleaseFilter | None = None,
    order_by: ReleaseOrder | None = None,
) -> ReleaseConnection:
    """Newest release first by default; keyset-paginated in the asked order."""
    order = order_by or ReleaseOrder()
    by_release_time = order.field is ReleaseOrderField.RELEASED_AT
    flt = filter.to_core() if filter else None
    try:
        position = decode_keyset(after, 2 if by_release_time else 1) if after else None
        page = await core.list_releases(
            info.context.db,
            flt,
            by_release_time=by_release_time,
            descending=order.direction is OrderDirection.DESC,
            first=first,
            after=position,
        )
    except InvalidId as exc:
        raise PublicError(f"after: {exc}") from exc
    except DeploybotError as exc:
        raise PublicError(exc.message) from exc
    environment = info.context.settings.environment
    edges = [
        ReleaseEdge(
            cursor=encode_keyset(*core.release_key(row, by_release_time)),
            node=Release.from_row(row, environment),
        )
        for row in page.rows
    ]
    return ReleaseConnection(
        edges=edges,
        nodes=[e.node for e in edges],
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        filter=flt,
    )


async def latest_release(
    info: Info, component: str, train: str, by: LatestReleaseBy = LatestReleaseBy.RELEASED_AT
) -> Release | None:
    row = await core.latest_release(
        info.context.db,
        component,
        train,
        by_semver=by is LatestReleaseBy.SEMANTIC_VERSION,
    )
    return Release.from_row(row, info.context.settings.environment) if row else None
