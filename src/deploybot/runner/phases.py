"""The phases a deployment's options add around the rollout: hooks, the canary, RECREATE's
stop of the old tasks, and the health check after convergence."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import Any

from deploybot.domain import LogSource, StepName
from deploybot.errors import ErrorCode
from deploybot.inputs import HealthCheck, Hook
from deploybot.runner import health
from deploybot.runner.converge import (
    ConvergeFailed,
    ConvergeTimeout,
    ServiceWatch,
    wait_converged,
)
from deploybot.runner.hooks import HOOK_LABEL, HookResult, hook_service, run_hook
from deploybot.runner.run import DeploymentRun, StepFailure
from deploybot.runner.strategies import canary_spec, green_spec, replicated
from deploybot.runner.swarm import image_of

#: Task states of a container that exists (or is about to): what RECREATE waits to end.
ACTIVE_TASK_STATES = frozenset(
    {"assigned", "accepted", "preparing", "ready", "starting", "running"}
)
HOLD_LABEL = "com.deploybot.recreate"


async def hooks_step(
    run: DeploymentRun, step: StepName, hooks: list[Hook], specs: dict[str, dict[str, Any]]
) -> None:
    """Run each hook in a one-off job of its service's new image; the first failure stops."""
    async with run.step(step) as result:
        results: list[HookResult] = []
        for index, hook in enumerate(hooks, start=1):
            service = hook_service(hook, specs, run.record.service)
            if service not in specs:
                raise StepFailure(
                    ErrorCode.INVALID_DEPLOYMENT_SPEC,
                    f"{step.value} hook {index}: service {service!r} is not in the stack",
                )
            run.say(f"{step.value} hook {index}: {hook.command} (image of {service})")

            def output(line: str, service: str = service) -> None:
                run.log.write(line, source=LogSource.HOOK, source_name=f"{step.value}:{service}")

            code, error = await run_hook(
                run.swarm,
                name=f"{run.namespace}_{step.value}-{run.id}-{index}",
                spec=specs[service],
                command=hook.command,
                labels={
                    HOOK_LABEL: step.value,
                    "com.deploybot.application": run.record.named_application,
                    "com.deploybot.deployment": str(run.id),
                },
                timeout=run.ctx.settings.converge_timeout,
                output=output,
            )
            outcome = HookResult(hook.command, service, code, error)
            results.append(outcome)
            run.say(f"{step.value} hook {index}: {outcome.describe()}")
            if not outcome.ok:
                raise StepFailure(
                    ErrorCode.HOOK_FAILED,
                    f"{step.value} hook failed: " + "; ".join(r.describe() for r in results),
                )
        result["message"] = "; ".join(r.describe() for r in results)


async def canary_step(
    run: DeploymentRun, specs: dict[str, dict[str, Any]], period: float
) -> list[str]:
    """One task of each changed service's new spec beside its old tasks for `period` seconds.

    Returns the canary services (the caller removes them once the rest has rolled out);
    a failing canary is removed here and fails the deployment with nothing else changed.
    """
    return await _twin_step(run, specs, StepName.CANARY, canary_spec, period)


async def green_step(run: DeploymentRun, specs: dict[str, dict[str, Any]]) -> list[str]:
    """BLUE_GREEN: the whole new version beside the old until every task runs healthy.

    Returns the green services (removed once the service itself runs the new version);
    a failing green version is removed here and fails the deployment, nothing changed.
    """
    period = run.ctx.settings.converge_stable_seconds
    return await _twin_step(run, specs, StepName.GREEN, green_spec, period)


async def _twin_step(
    run: DeploymentRun,
    specs: dict[str, dict[str, Any]],
    step: StepName,
    make: Callable[[dict[str, Any], str], dict[str, Any]],
    period: float,
) -> list[str]:
    swarm = run.swarm
    twins: list[str] = []
    async with run.step(step) as result:
        watches: list[ServiceWatch] = []
        for service, body in sorted(specs.items()):
            existing = await swarm.find_service(body["Name"])
            if existing is None or not replicated(body):
                continue
            if image_of(existing["Spec"]) == image_of(body):
                continue
            twin = make(body, body["Name"])
            stale = await swarm.find_service(twin["Name"])
            if stale is not None:
                await swarm.remove_service(stale["ID"])
            service_id, _ = await swarm.deploy_service(twin)
            twins.append(service_id)
            replicas = twin["Mode"]["Replicated"]["Replicas"]
            run.say(f"{step.value} {twin['Name']}: {replicas} task(s) of {image_of(body)}")
            watches.append(ServiceWatch(f"{service}-{step.value}", service_id))
        if not watches:
            result["message"] = f"no running service changes its image: no {step.value}"
            return twins
        try:
            await wait_converged(
                swarm,
                watches,
                timeout=run.ctx.settings.converge_timeout + period,
                stable=period,
                max_failures=1,
                on_change=run.progress,
            )
        except (ConvergeFailed, ConvergeTimeout) as exc:
            await remove_services(run, twins)
            raise StepFailure(
                ErrorCode.HEALTH_CHECK_FAILED,
                f"{step.value} failed, the old version keeps running: {exc}",
            ) from exc
        result["message"] = f"{len(watches)} {step.value} service(s) ran healthy for {period:g}s"
    return twins


async def remove_services(run: DeploymentRun, service_ids: list[str]) -> None:
    """Remove canary or green services (and forget them: the list is emptied)."""
    while service_ids:
        service_id = service_ids.pop()
        await run.swarm.remove_service(service_id)
        run.say(f"removed temporary service {service_id[:12]}")


def held(spec: dict[str, Any], deployment_id: int) -> dict[str, Any]:
    """The running spec, updated all at once, stop-first, onto no node: its tasks stop and
    their replacements wait in `pending`, so the old tasks stay in Swarm's task history."""
    body = copy.deepcopy(spec)
    placement = body["TaskTemplate"].setdefault("Placement", {})
    constraints = list(placement.get("Constraints") or [])
    constraints.append(f"node.labels.{HOLD_LABEL}=={deployment_id}")
    placement["Constraints"] = constraints
    update = dict(body.get("UpdateConfig") or {})
    update.update({"Parallelism": 0, "Order": "stop-first", "FailureAction": "continue"})
    update.pop("Delay", None)
    body["UpdateConfig"] = update
    return body


async def stop_old_tasks(run: DeploymentRun, specs: dict[str, dict[str, Any]]) -> None:
    """RECREATE's first half: every old task of the stack ends before any new one starts."""
    swarm = run.swarm
    stopping: dict[str, str] = {}
    for body in specs.values():
        existing = await swarm.find_service(body["Name"])
        if existing is None or not replicated(existing["Spec"]):
            continue
        await swarm.deploy_service(held(existing["Spec"], run.id))
        run.swarm_changed = True
        stopping[existing["ID"]] = body["Name"]
    if not stopping:
        return
    run.say(f"recreate: stopping every task of {', '.join(sorted(stopping.values()))}")
    deadline = time.monotonic() + run.ctx.settings.converge_timeout
    while True:
        active = 0
        for service_id in stopping:
            tasks = await swarm.tasks(service_id)
            active += sum(1 for t in tasks if t["Status"]["State"] in ACTIVE_TASK_STATES)
        if active == 0:
            break
        if time.monotonic() > deadline:
            raise StepFailure(
                ErrorCode.CONVERGE_TIMEOUT, f"recreate: {active} old task(s) still run"
            )
        await asyncio.sleep(0.3)
    run.say("recreate: no old task runs any more")


async def health_step(
    run: DeploymentRun,
    check: HealthCheck,
    specs: dict[str, dict[str, Any]],
    watches: list[ServiceWatch],
) -> None:
    """The health URL, then the Docker healthchecks: no task of the new spec failed since."""
    async with run.step(StepName.HEALTH) as result:
        try:
            url = health.resolve_url(check.url, specs, run.record.service)
            answer = await health.poll(url, check, run.say)
            fresh = [
                ServiceWatch(w.service, w.service_id, known_tasks=set(w.known_tasks))
                for w in watches
            ]
            await wait_converged(run.swarm, fresh, timeout=check.timeout, stable=0, max_failures=1)
        except health.HealthCheckFailed as exc:
            raise StepFailure(ErrorCode.HEALTH_CHECK_FAILED, str(exc)) from exc
        except (ConvergeFailed, ConvergeTimeout) as exc:
            raise StepFailure(ErrorCode.HEALTH_CHECK_FAILED, f"Docker healthcheck: {exc}") from exc
        running = ", ".join(f"{w.service} {w.running}/{w.desired}" for w in fresh)
        result["message"] = f"{url}: {answer}; tasks running and healthy: {running}"
