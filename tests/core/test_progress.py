"""Seed 002's progress message computed from recorded steps (a pure function)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from deploybot.core.progress import progress_of
from deploybot.domain import DeploymentState, ProgressStatus, StepStatus

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def deployment(state: DeploymentState, error: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        id=1,
        state=state,
        error_message=error,
        created_at=T0,
        started_at=T0,
        updated_at=T0,
        finished_at=T0 + timedelta(minutes=1) if state.is_final else None,
    )


def step(name: str, status: StepStatus, minute: int | None = None, **extra: str) -> SimpleNamespace:
    finished = T0 + timedelta(minutes=minute) if minute is not None else None
    return SimpleNamespace(
        name=name,
        status=status,
        message=extra.get("message"),
        error=extra.get("error"),
        started_at=T0,
        finished_at=finished,
    )


def test_queued() -> None:
    p = progress_of(deployment(DeploymentState.QUEUED), [step("fetch", StepStatus.PENDING)])
    assert (p.step, p.status, p.percentage, p.message) == (
        None,
        ProgressStatus.RUNNING,
        0,
        "queued",
    )


def test_running_step_and_share_of_steps_done() -> None:
    steps = [
        step("fetch", StepStatus.COMPLETED, 1),
        step("build", StepStatus.COMPLETED, 2),
        step("push", StepStatus.RUNNING, message="pushing"),
        step("rollout", StepStatus.PENDING),
    ]
    p = progress_of(deployment(DeploymentState.IN_PROGRESS), steps)
    assert (p.step, p.status, p.percentage, p.message) == (
        "push",
        ProgressStatus.RUNNING,
        50,
        "pushing",
    )


def test_final_states_map_to_seed_statuses() -> None:
    steps = [step("build", StepStatus.FAILED, 1, error="exit 2")]
    failed = progress_of(deployment(DeploymentState.FAILURE, "build failed"), steps)
    assert (failed.status, failed.percentage, failed.message) == (
        ProgressStatus.FAILED,
        100,
        "build failed",
    )
    assert failed.final
    rolled = progress_of(deployment(DeploymentState.ROLLED_BACK), steps)
    assert rolled.status is ProgressStatus.WARNING
    ok = progress_of(deployment(DeploymentState.SUCCESS), [step("build", StepStatus.COMPLETED, 1)])
    assert (ok.status, ok.message) == (ProgressStatus.SUCCESS, "deployment success")
