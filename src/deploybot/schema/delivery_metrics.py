"""GraphQL types of the delivery metrics (deployment frequency, lead time, change failure rate,
time to restore)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from deploybot import filters, records
from deploybot.domain import Interval

strawberry.enum(Interval, name="MetricsInterval")


@strawberry.input(description="Which deployments count; lists match any of their values.")
class DeliveryMetricsFilter:
    environments: list[str] | None = None
    applications: list[str] | None = None

    def to_core(self) -> filters.MetricsFilter:
        return filters.MetricsFilter(environments=self.environments, applications=self.applications)


@strawberry.type(description="The four delivery metrics over one period (README: definitions).")
class DeliveryPeriod:
    start: datetime
    end: datetime
    deployments: int = strawberry.field(
        description="Changes deployed (finished, not cancelled, not made by a rollback)."
    )
    successful_deployments: int = strawberry.field(description="Deployment frequency.")
    deployments_per_day: float = strawberry.field(description="Successful changes per day.")
    lead_time_median: float | None = strawberry.field(
        description="Seconds from commit to successful deployment, median."
    )
    lead_time_p90: float | None = strawberry.field(
        description="Seconds from commit to successful deployment, 90th percentile."
    )
    change_failures: int = strawberry.field(
        description="Changes that failed, were rolled back, or were followed by a rollback."
    )
    change_failure_rate: float | None = strawberry.field(
        description="changeFailures / deployments (null without deployments)."
    )
    restores: int = strawberry.field(description="Failed changes a later success restored.")
    unrestored: int = strawberry.field(description="Failed changes not restored yet.")
    time_to_restore_median: float | None = strawberry.field(
        description="Seconds from a failed change to the next successful deployment, median."
    )

    @classmethod
    def from_record(cls, period: records.Period) -> DeliveryPeriod:
        return cls(**period.__dict__)


@strawberry.type
class DeliveryMetrics:
    since: datetime
    until: datetime
    interval: Interval
    total: DeliveryPeriod = strawberry.field(description="The whole range at once.")
    periods: list[DeliveryPeriod] = strawberry.field(description="One per interval, oldest first.")

    @classmethod
    def from_record(cls, metrics: records.DeliveryMetrics) -> DeliveryMetrics:
        return cls(
            since=metrics.since,
            until=metrics.until,
            interval=metrics.interval,
            total=DeliveryPeriod.from_record(metrics.total),
            periods=[DeliveryPeriod.from_record(p) for p in metrics.periods],
        )
