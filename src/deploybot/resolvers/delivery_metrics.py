"""The delivery-metrics query."""

from __future__ import annotations

from datetime import datetime

from deploybot.domain import Interval
from deploybot.errors import DeploybotError
from deploybot.schema.common import PublicError
from deploybot.schema.context import Info
from deploybot.schema.delivery_metrics import DeliveryMetrics, DeliveryMetricsFilter


async def delivery_metrics(
    info: Info,
    filter: DeliveryMetricsFilter | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    interval: Interval = Interval.WEEK,
) -> DeliveryMetrics:
    try:
        metrics = await info.context.backend.delivery_metrics(
            filter.to_core() if filter else None, since=since, until=until, interval=interval
        )
    except DeploybotError as exc:
        raise PublicError(
            f"{exc.field}: {exc.message}" if exc.field else exc.message, exc.code.value
        ) from exc
    return DeliveryMetrics.from_record(metrics)
