"""Delivery metrics over several environments' samples (what a relay computes): the same
function as one instance's, over the union, with numbers read per environment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deploybot.core.delivery_metrics import compute
from deploybot.domain import DeploymentState, DeploymentTrigger, Interval
from deploybot.records import DeliverySample

SINCE = datetime(2026, 3, 2, tzinfo=UTC)
UNTIL = SINCE + timedelta(days=7)


def sample(
    env: str,
    number: int,
    hours: float,
    *,
    lead: float | None = None,
    state: DeploymentState = DeploymentState.SUCCESS,
    trigger: DeploymentTrigger = DeploymentTrigger.API,
    rollback_of: int | None = None,
) -> DeliverySample:
    finished = SINCE + timedelta(hours=hours)
    return DeliverySample(
        id=number,
        environment=env,
        application="web",
        state=state,
        trigger=trigger,
        committed_at=None if lead is None else finished - timedelta(hours=lead),
        finished_at=finished,
        rollback_of_id=rollback_of,
    )


def test_union_of_environments() -> None:
    staging = [
        sample("staging", 1, 1, lead=1),
        sample("staging", 2, 2, lead=2),
        sample("staging", 3, 3, lead=3),
    ]
    # production's #1 is rolled back by its #2; staging's #1 (same number) is not
    production = [
        sample("production", 1, 10, lead=30),
        sample("production", 2, 11, trigger=DeploymentTrigger.ROLLBACK, rollback_of=1),
    ]
    union = compute(staging + production, since=SINCE, until=UNTIL, interval=Interval.WEEK)
    total = union.total
    assert (total.deployments, total.successful_deployments) == (4, 4)
    assert total.lead_time_median == 2.5 * 3600  # of 1, 2, 3, 30 hours
    assert total.lead_time_p90 == 30 * 3600
    assert (total.change_failures, total.restores) == (1, 1)
    assert total.time_to_restore_median == 1 * 3600

    one = compute(staging, since=SINCE, until=UNTIL, interval=Interval.WEEK).total
    other = compute(production, since=SINCE, until=UNTIL, interval=Interval.WEEK).total
    assert one.lead_time_median == 2 * 3600 and other.lead_time_median == 30 * 3600
    assert one.change_failures == 0  # staging's #1 is not production's #1
