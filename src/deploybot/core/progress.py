"""A deployment's progress as seed 002's progress message: the current step, its status,
a message and a percentage, computed from the recorded steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deploybot.domain import DeploymentState, ProgressStatus, StepStatus
from deploybot.records import Progress

_DONE = (StepStatus.COMPLETED, StepStatus.SKIPPED, StepStatus.FAILED)
_FINAL_STATUS = {
    DeploymentState.SUCCESS: ProgressStatus.SUCCESS,
    DeploymentState.INACTIVE: ProgressStatus.SUCCESS,
    DeploymentState.FAILURE: ProgressStatus.FAILED,
    DeploymentState.ERROR: ProgressStatus.FAILED,
    DeploymentState.ROLLED_BACK: ProgressStatus.WARNING,
    DeploymentState.CANCELLED: ProgressStatus.WARNING,
}
_STEP_STATUS = {
    StepStatus.PENDING: ProgressStatus.RUNNING,
    StepStatus.RUNNING: ProgressStatus.RUNNING,
    StepStatus.COMPLETED: ProgressStatus.SUCCESS,
    StepStatus.SKIPPED: ProgressStatus.WARNING,
    StepStatus.FAILED: ProgressStatus.FAILED,
}


def progress_of(deployment: Any, steps: Sequence[Any]) -> Progress:
    """`deployment` and `steps` are rows (attribute access), steps in their order."""
    state: DeploymentState = deployment.state
    running = [s for s in steps if s.status is StepStatus.RUNNING]
    finished = [s for s in steps if s.finished_at is not None]
    current = (
        running[-1] if running else max(finished, key=lambda s: s.finished_at) if finished else None
    )
    done = sum(1 for s in steps if s.status in _DONE)
    if state.is_final:
        status = _FINAL_STATUS.get(state, ProgressStatus.SUCCESS)
        percentage = 100
        message = deployment.error_message or f"deployment {state.value.lower()}"
        timestamp = deployment.finished_at or deployment.updated_at
    elif current is None or state is DeploymentState.QUEUED:
        status, percentage = ProgressStatus.RUNNING, 0
        message = "queued" if state is DeploymentState.QUEUED else "starting"
        timestamp = deployment.started_at or deployment.created_at
    else:
        status = _STEP_STATUS[current.status]
        percentage = int(100 * done / len(steps)) if steps else 0
        message = current.error or current.message or f"{current.name} {status.value.lower()}"
        timestamp = current.finished_at or current.started_at or deployment.updated_at
    return Progress(
        deployment_id=int(deployment.id),
        state=state,
        step=current.name if current is not None else None,
        status=status,
        message=message,
        percentage=percentage,
        timestamp=timestamp,
    )
