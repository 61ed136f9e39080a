"""Delivery metrics over GraphQL/HTTP on SQLite and PostgreSQL, on a fixed history whose
answers are worked out by hand below."""

from __future__ import annotations

from typing import Any

import pytest

from deploybot.core import lifecycle
from deploybot.core.delivery_metrics import median, p90
from deploybot.db.engine import Database
from deploybot.domain import DeploymentTrigger
from tests.conftest import both_databases
from tests.servers import Client

RECORD = """
mutation($input: RecordDeploymentInput!) {
  recordDeployment(input: $input) { userErrors { field message } deployment { number } }
}
"""

PERIOD = """
  start end deployments successfulDeployments deploymentsPerDay leadTimeMedian leadTimeP90
  changeFailures changeFailureRate restores unrestored timeToRestoreMedian
"""

METRICS = """
query($filter: DeliveryMetricsFilter, $since: DateTime, $until: DateTime,
      $interval: MetricsInterval!) {
  deliveryMetrics(filter: $filter, since: $since, until: $until, interval: $interval) {
    since until interval total { %s } periods { %s }
  }
}
""" % (PERIOD, PERIOD)

#: (name, state, committed, finished) of application rl-metrics on 4-6 May 2026 (UTC).
HISTORY = [
    ("d1", "SUCCESS", "05-04T08:00", "05-04T10:00"),  # lead 2 h
    ("d2", "FAILURE", None, "05-04T12:00"),  # restored by d3 after 1.5 h
    ("d3", "SUCCESS", "05-04T11:00", "05-04T13:30"),  # lead 2.5 h
    ("d4", "SUCCESS", "05-05T09:00", "05-05T09:30"),  # lead 0.5 h; rolled back by d5
    ("d5", "SUCCESS", None, "05-05T10:00"),  # the rollback of d4: a restore, not a change
    ("d6", "ERROR", None, "05-05T15:00"),  # restored by d7 after 11 h
    ("d7", "SUCCESS", "05-05T14:00", "05-06T02:00"),  # lead 12 h
    ("d8", "CANCELLED", None, "05-06T05:00"),  # doesn't count
    ("d9", "FAILURE", None, "05-06T20:00"),  # not restored yet
]
H = 3600


def test_percentiles() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert p90([float(v) for v in range(1, 11)]) == 9.0  # nearest rank: the 9th of 10
    assert p90([5.0]) == 5.0
    assert median([]) is None and p90([]) is None


async def seed(database: Database, api: Client) -> None:
    numbers: dict[str, int] = {}
    for name, state, committed, finished in HISTORY:
        input: dict[str, Any] = {
            "application": "rl-metrics",
            "version": name,
            "state": state,
            "finishedAt": f"2026-{finished}:00Z",
        }
        if committed:
            input["committedAt"] = f"2026-{committed}:00Z"
        payload = api.query(RECORD, {"input": input})["recordDeployment"]
        assert payload["userErrors"] == [], payload
        numbers[name] = payload["deployment"]["number"]
    # d5 was made by a rollback of d4 (what the rollback mutation records).
    await lifecycle.update_deployment(
        database, numbers["d5"], trigger=DeploymentTrigger.ROLLBACK, rollback_of_id=numbers["d4"]
    )
    # Another application's success must not count when filtering on rl-metrics.
    other = {"application": "rl-other", "version": "x", "finishedAt": "2026-05-04T10:00:00Z"}
    assert api.query(RECORD, {"input": other})["recordDeployment"]["userErrors"] == []


@both_databases
async def test_delivery_metrics_on_a_known_history(database: Database, api: Client) -> None:
    await seed(database, api)
    window = {
        "filter": {"applications": ["rl-metrics"], "environments": ["test"]},
        "since": "2026-05-04T00:00:00Z",
        "until": "2026-05-07T00:00:00Z",
    }
    daily = api.query(METRICS, {**window, "interval": "DAY"})["deliveryMetrics"]
    assert daily["interval"] == "DAY"
    day1, day2, day3 = daily["periods"]
    assert (day1["start"], day1["end"]) == (
        "2026-05-04T00:00:00+00:00",
        "2026-05-05T00:00:00+00:00",
    )
    # 4 May: d1, d2, d3 are changes; d1 and d3 succeeded; d2 failed and d3 restored it.
    assert day1 | {"start": None, "end": None} == {
        "start": None,
        "end": None,
        "deployments": 3,
        "successfulDeployments": 2,
        "deploymentsPerDay": 2.0,
        "leadTimeMedian": 2.25 * H,  # of 2 h and 2.5 h
        "leadTimeP90": 2.5 * H,
        "changeFailures": 1,
        "changeFailureRate": pytest.approx(1 / 3, abs=1e-6),
        "restores": 1,
        "unrestored": 0,
        "timeToRestoreMedian": 1.5 * H,
    }
    # 5 May: d4 and d6 are changes (d5 is the rollback); d4 was followed by a rollback and
    # d6 failed: both are failures; d5 restored d4 after 0.5 h, d7 restored d6 after 11 h.
    assert day2["deployments"] == 2
    assert day2["successfulDeployments"] == 1
    assert (day2["leadTimeMedian"], day2["leadTimeP90"]) == (0.5 * H, 0.5 * H)
    assert (day2["changeFailures"], day2["changeFailureRate"]) == (2, 1.0)
    assert (day2["restores"], day2["timeToRestoreMedian"]) == (2, (0.5 * H + 11 * H) / 2)
    # 6 May: d7 and d9 (d8 was cancelled); d9 has not been restored.
    assert (day3["deployments"], day3["successfulDeployments"]) == (2, 1)
    assert (day3["leadTimeMedian"], day3["leadTimeP90"]) == (12 * H, 12 * H)
    assert (day3["changeFailures"], day3["changeFailureRate"]) == (1, 0.5)
    assert (day3["restores"], day3["unrestored"], day3["timeToRestoreMedian"]) == (0, 1, None)
    # The three days at once: lead times 0.5, 2, 2.5, 12 h; restores 0.5, 1.5, 11 h.
    total = daily["total"]
    assert (total["deployments"], total["successfulDeployments"]) == (7, 4)
    assert total["deploymentsPerDay"] == pytest.approx(4 / 3, abs=1e-6)
    assert (total["leadTimeMedian"], total["leadTimeP90"]) == (2.25 * H, 12 * H)
    assert total["changeFailures"] == 4
    assert total["changeFailureRate"] == pytest.approx(4 / 7, abs=1e-6)
    assert (total["restores"], total["unrestored"]) == (3, 1)
    assert total["timeToRestoreMedian"] == 1.5 * H

    # 4 May 2026 is a Monday: one week, cut at `until`, is the same as the total.
    weekly = api.query(METRICS, {**window, "interval": "WEEK"})["deliveryMetrics"]
    assert [p["start"] for p in weekly["periods"]] == ["2026-05-04T00:00:00+00:00"]
    assert weekly["periods"][0] == total
    monthly = api.query(METRICS, {**window, "since": "2026-04-20T00:00:00", "interval": "MONTH"})[
        "deliveryMetrics"
    ]
    assert [(p["start"], p["deployments"]) for p in monthly["periods"]] == [
        ("2026-04-20T00:00:00+00:00", 0),
        ("2026-05-01T00:00:00+00:00", 7),
    ]
    assert monthly["periods"][0]["changeFailureRate"] is None

    everything = api.query(METRICS, {**window, "filter": None, "interval": "WEEK"})
    assert everything["deliveryMetrics"]["total"]["successfulDeployments"] == 5

    backwards = api.execute(
        METRICS, {**window, "since": window["until"], "until": window["since"], "interval": "DAY"}
    )
    assert backwards["errors"][0]["message"] == "since: since must be before until"
    too_long = api.execute(METRICS, {**window, "since": "2000-01-01T00:00:00Z", "interval": "DAY"})
    assert "at most 400 intervals" in too_long["errors"][0]["message"]
