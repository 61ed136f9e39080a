"""Queries and mutations of the release catalogue."""

from __future__ import annotations

from deploybot.errors import DeploybotError, ValidationFailed
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
        record = await info.context.backend.publish_release(input.to_core())
    except (DeploybotError, ValidationFailed) as exc:
        return PublishReleasePayload(
            release=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return PublishReleasePayload(
        release=Release.from_record(record),
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
    flt = filter.to_core() if filter else None
    try:
        page = await info.context.backend.releases(
            flt,
            first=first,
            after=after,
            by_release_time=order.field is ReleaseOrderField.RELEASED_AT,
            descending=order.direction is OrderDirection.DESC,
        )
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc
    edges = [ReleaseEdge(cursor=e.cursor, node=Release.from_record(e.node)) for e in page.edges]
    return ReleaseConnection(
        edges=edges,
        nodes=[e.node for e in edges],
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        filter=flt,
    )


async def latest_release(
    info: Info, component: str, train: str, by: LatestReleaseBy = LatestReleaseBy.RELEASED_AT
) -> Release | None:
    record = await info.context.backend.latest_release(
        component, train, by_semver=by is LatestReleaseBy.SEMANTIC_VERSION
    )
    return Release.from_record(record) if record else None
