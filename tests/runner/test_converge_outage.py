"""Which failed tasks a Docker outage excuses (runner.converge.lost_in_outage): the tasks a
daemon restart cost, never those the deployment itself made fail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from deploybot.runner.converge import RESTART_SETTLE, lost_in_outage

AWAY = datetime(2026, 12, 1, 5, 48, 53, tzinfo=UTC).timestamp()
BACK = AWAY + 9.0


def task(created: float, failed: float) -> dict[str, Any]:
    def stamp(at: float) -> str:
        return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"

    return {
        "CreatedAt": stamp(created),
        "Status": {"State": "failed", "Timestamp": stamp(failed), "Err": "No such container"},
    }


def test_a_task_from_before_the_restart_that_failed_in_it_is_lost() -> None:
    assert lost_in_outage(task(AWAY - 1, AWAY + 3), [(AWAY, BACK)])
    # The restarted daemon reports its lost tasks as it takes them back.
    assert lost_in_outage(task(AWAY - 1, BACK + 2), [(AWAY, BACK)])


def test_failures_before_the_outage_after_its_settling_or_of_new_tasks_count() -> None:
    outages = [(AWAY, BACK)]
    assert not lost_in_outage(task(AWAY - 5, AWAY - 1), outages)
    assert not lost_in_outage(task(AWAY - 5, BACK + RESTART_SETTLE + 1), outages)
    assert not lost_in_outage(task(BACK + 1, BACK + 2), outages)
    assert not lost_in_outage(task(AWAY - 1, AWAY + 3), [])
