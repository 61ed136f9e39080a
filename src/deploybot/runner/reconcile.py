"""Take over a deployment whose runner died, stopped or went silent, and end it truthfully.

Swarm is declarative: what the replaced runner asked of it goes on without it. So the new
runner first removes what only the old one would have removed (canary, green and hook
services, a RECREATE hold), then looks at how far the deployment's steps got:

- the rollout had been sent (its step completed, or a later one started): the services'
  real state is watched as the converge step would have (stability window, task failures,
  Swarm's update state), then the remaining steps run; a failure rolls back by the usual
  rules. A hook the old runner was running is not repeated: ERROR naming the step.
- before that: the deployment starts again from its first unfinished step. Fetch, build,
  push, canary and green are repeatable, and so is a rollout left half-sent (every spec
  is sent again whole; an unchanged one is no change for Swarm). Completed steps are
  repeated for their result only. A pre-deploy hook that was running is not: ERROR.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

from deploybot.core import history, rollbacks
from deploybot.db.retry import retry_unavailable
from deploybot.domain import DeploymentState, DeploymentTrigger, StepName, StepStatus
from deploybot.errors import ErrorCode
from deploybot.inputs import RolloutOptions
from deploybot.records import ServiceRolloutRecord, StepRecord
from deploybot.runner.converge import ConvergeFailed, ConvergeTimeout, ServiceWatch, wait_converged
from deploybot.runner.hooks import HOOK_LABEL
from deploybot.runner.phases import HOLD_LABEL, health_step, hooks_step
from deploybot.runner.restore import stop_following
from deploybot.runner.run import DeploymentRun, StepFailure
from deploybot.runner.strategies import CANARY_LABEL, TWIN_LABEL

#: Steps whose work is done again when a new runner restarts a deployment.
REPEATABLE = frozenset(
    {StepName.FETCH, StepName.BUILD, StepName.PUSH, StepName.CANARY, StepName.GREEN}
)
#: Steps that exist only once the rollout has been sent: from them on, the new runner watches.
AFTER_ROLLOUT = frozenset(
    {StepName.CONVERGE, StepName.HEALTH, StepName.POST_DEPLOY, StepName.ROLLBACK}
)
#: Hooks run the application's own commands (a migration): never run twice.
NOT_REPEATABLE = frozenset({StepName.PRE_DEPLOY, StepName.POST_DEPLOY})


def _statuses(steps: list[StepRecord]) -> dict[StepName, StepStatus]:
    known = {step.value for step in StepName}
    return {StepName(s.name): s.status for s in steps if s.name in known}


def rollout_sent(statuses: dict[StepName, StepStatus]) -> bool:
    """Whether the replaced runner had sent the whole rollout to Swarm."""
    if statuses.get(StepName.ROLLOUT) is StepStatus.COMPLETED:
        return True
    return any(
        statuses.get(name, StepStatus.PENDING) is not StepStatus.PENDING for name in AFTER_ROLLOUT
    )


def unsafe_step(statuses: dict[StepName, StepStatus]) -> StepName | None:
    """A step that was running and must not run again (a hook), if any."""
    for name in NOT_REPEATABLE:
        if statuses.get(name) is StepStatus.RUNNING:
            return name
    return None


async def clean_up(run: DeploymentRun) -> None:
    """Remove the temporary services the replaced runner left, and undo a RECREATE hold."""
    swarm = run.swarm
    label = f"com.deploybot.deployment={run.id}"
    found = await swarm.query("services", params={"filters": json.dumps({"label": [label]})})
    for service in found:
        labels = service["Spec"].get("Labels") or {}
        if {CANARY_LABEL, TWIN_LABEL, HOOK_LABEL} & labels.keys():
            await swarm.remove_service(service["ID"])
            run.say(f"removed {service['Spec']['Name']}, left by the replaced runner")
    hold = f"node.labels.{HOLD_LABEL}=={run.id}"
    for service in await swarm.stack_services(run.namespace):
        placement = service["Spec"].get("TaskTemplate", {}).get("Placement") or {}
        if hold in (placement.get("Constraints") or []) and service.get("PreviousSpec"):
            await swarm.deploy_service(service["PreviousSpec"])
            run.say(f"{service['Spec']['Name']}: RECREATE hold undone, its earlier spec is back")


async def _watches(run: DeploymentRun, rows: list[ServiceRolloutRecord]) -> list[ServiceWatch]:
    """Watches of the services the rollout sent; a task older than the rollout is no
    failure of it."""
    watches = []
    for row in rows:
        assert row.swarm_id is not None
        started = row.started_at
        known = set()
        for task in await run.swarm.tasks(row.swarm_id):
            if started is not None and _created(task) < started:
                known.add(task["ID"])
        watches.append(ServiceWatch(row.service, row.swarm_id, known_tasks=known))
    return watches


def _created(task: dict[str, Any]) -> datetime:
    text = str(task.get("CreatedAt", ""))
    # Docker writes nanoseconds; Python reads microseconds.
    head, _, rest = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(rest + '000000')[:6]}+00:00")


async def _steps(run: DeploymentRun) -> list[StepRecord]:
    """The deployment's recorded steps, waiting out a database restart."""
    steps = await retry_unavailable(
        lambda: history.steps_for(run.ctx.db, [run.id]),
        what=f"deployment {run.id}: reading its steps",
    )
    return steps[run.id]


def _failed_message(steps: list[StepRecord]) -> str:
    failed = [s.error for s in steps if s.status is StepStatus.FAILED and s.error]
    return failed[-1] if failed else "the rollout failed"


async def watch_rollout(run: DeploymentRun, replaced: str) -> None:
    """The rollout had been sent: watch what Swarm made of it, then the remaining steps."""
    steps = await _steps(run)
    statuses = _statuses(steps)
    run.swarm_changed = True
    if statuses.get(StepName.ROLLBACK, StepStatus.PENDING) is not StepStatus.PENDING:
        # The replaced runner was rolling back: do it (again; the specs are whole).
        message = _failed_message(steps)
        raise StepFailure(ErrorCode.ROLLOUT_FAILED, message)
    recorded = await retry_unavailable(
        lambda: rollbacks.restorable_services(run.ctx.db, run.id),
        what=f"deployment {run.id}: reading its recorded services",
    )
    rows = [r for r in recorded if r.swarm_id]
    bodies = {row.service: dict(row.spec or {}) for row in rows}
    watches = await _watches(run, rows)
    options = RolloutOptions.from_json(run.record.rollout_options)
    if statuses.get(StepName.CONVERGE) is not StepStatus.COMPLETED:
        since = time.time() - 1
        followers = [
            asyncio.create_task(run.follow(w.service_id, w.service, since)) for w in watches
        ]
        try:
            await _converge(run, watches, replaced)
        finally:
            await stop_following(followers)
    else:
        for watch in watches:
            watch.converged = True
    if options.health_check and statuses.get(StepName.HEALTH) is not StepStatus.COMPLETED:
        await health_step(run, options.health_check, bodies, watches)
    if options.post_deploy_hooks and statuses.get(StepName.POST_DEPLOY) is StepStatus.PENDING:
        await hooks_step(run, StepName.POST_DEPLOY, options.post_deploy_hooks, bodies)


async def _converge(run: DeploymentRun, watches: list[ServiceWatch], replaced: str) -> None:
    settings = run.ctx.settings
    run.done_before.discard(StepName.CONVERGE)
    async with run.step(StepName.CONVERGE) as result:
        try:
            await wait_converged(
                run.swarm,
                watches,
                timeout=settings.converge_timeout,
                stable=settings.converge_stable_seconds,
                on_change=run.progress,
                patience=settings.docker_patience,
                on_unavailable=run.say,
            )
        except ConvergeFailed as exc:
            raise StepFailure(ErrorCode.ROLLOUT_FAILED, f"{exc} (runner replaced)") from exc
        except ConvergeTimeout as exc:
            raise StepFailure(ErrorCode.CONVERGE_TIMEOUT, f"{exc} (runner replaced)") from exc
        finally:
            await run.save_watches(watches)
        replicas = ", ".join(f"{w.service} {w.running}/{w.desired}" for w in watches)
        result["message"] = f"{replicas}; watched by a new runner after the previous {replaced}"


async def take_over(run: DeploymentRun, replaced: str) -> bool:
    """Prepare a deployment for the new runner; True when its rollout is only to be watched.

    Raises StepFailure (ERROR, RUNNER_LOST) when it stopped in a step that must not be
    repeated."""
    run.say(f"runner {run.ctx.runner_id} takes this deployment over: the previous {replaced}")
    steps = await _steps(run)
    statuses = _statuses(steps)
    await clean_up(run)
    unsafe = unsafe_step(statuses)
    if unsafe is not None:
        raise StepFailure(
            ErrorCode.RUNNER_LOST,
            f"the runner stopped during the {unsafe.value} step ({replaced}); a hook is not"
            " run twice: check what it did, then deploy again",
            state=DeploymentState.ERROR,
        )
    if rollout_sent(statuses):
        run.say("the rollout had been sent to Swarm: watching what it became")
        return True
    record = run.record
    runnable = (
        record.image
        or record.trigger is DeploymentTrigger.ROLLBACK
        or (record.repository_url and record.commit_sha and record.stack_file)
    )
    if not runnable:
        raise StepFailure(
            ErrorCode.RUNNER_LOST,
            f"the runner stopped ({replaced}) and the deployment records nothing to start"
            " again from",
            state=DeploymentState.ERROR,
        )
    done = {name for name, status in statuses.items() if status is StepStatus.COMPLETED}
    run.done_before = done & REPEATABLE
    first = next((StepName(s.name) for s in steps if s.status is not StepStatus.COMPLETED), None)
    run.say(f"starting again from the {first.value if first else 'first'} step")
    return False
