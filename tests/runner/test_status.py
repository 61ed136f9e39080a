"""Reading Swarm's answers: nanosecond times, task events, healthcheck logs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploybot.core.applications import EventType
from deploybot.domain import Health
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.namespaces import StackNamespaces
from deploybot.runner.status import SwarmStatus, _check_of, docker_time, task_events
from deploybot.runner.swarm import Swarm


def test_docker_times_with_nanoseconds() -> None:
    assert docker_time("2026-11-22T17:51:51.123456789Z") == datetime(
        2026, 11, 22, 17, 51, 51, 123456, tzinfo=UTC
    )
    assert docker_time("2026-11-22T17:51:51Z") == datetime(2026, 11, 22, 17, 51, 51, tzinfo=UTC)
    assert docker_time("0001-01-01T00:00:00Z") is None  # Go's zero time: never
    assert docker_time(None) is None


def test_task_events_newest_first_with_their_kind() -> None:
    tasks = [
        {
            "Slot": 1,
            "DesiredState": "shutdown",
            "Status": {
                "Timestamp": "2026-11-22T10:00:00Z",
                "State": "failed",
                "Err": "task: non-zero exit (3)",
            },
        },
        {
            "Slot": 1,
            "DesiredState": "running",
            "Status": {
                "Timestamp": "2026-11-22T10:00:05Z",
                "State": "running",
                "Message": "started",
            },
        },
    ]
    events = task_events("web", tasks)
    assert [(e.type, e.message, e.source) for e in events] == [
        (EventType.INFO, "task running: started", "web.1"),
        (EventType.ERROR, "task failed: task: non-zero exit (3)", "web.1"),
    ]


def test_healthcheck_log_becomes_a_check() -> None:
    check = _check_of(
        "sick.1",
        {
            "Status": "unhealthy",
            "FailingStreak": 4,
            "Log": [
                {
                    "Start": "2026-11-22T10:00:00.000000000Z",
                    "End": "2026-11-22T10:00:00.250000000Z",
                    "ExitCode": 1,
                    "Output": "wget: can't connect to remote host\n",
                }
            ],
        },
    )
    assert check.status is Health.UNHEALTHY
    assert check.message == (
        "exit 1: wget: can't connect to remote host (failing 4 times in a row)"
    )
    assert check.duration == 0.25
    assert check.last_run == datetime(2026, 11, 22, 10, 0, 0, 250000, tzinfo=UTC)
    assert _check_of("web.1", {"Status": "starting"}).status is Health.UNKNOWN


async def test_unreachable_docker_is_a_typed_error(tmp_path: object) -> None:
    unreachable = Swarm(f"unix://{tmp_path}/no-docker.sock")
    status = SwarmStatus(unreachable, StackNamespaces())
    with pytest.raises(DeploybotError) as failed:
        await status.stack("ad-anything")
    await unreachable.close()
    assert failed.value.code is ErrorCode.DOCKER_UNAVAILABLE


async def test_a_stack_that_does_not_run_has_no_services(swarm_client: Swarm) -> None:
    live = await SwarmStatus(swarm_client, StackNamespaces()).stack("ad-not-running")
    assert live.services == []
