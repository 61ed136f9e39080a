"""Put an earlier deployment's recorded stack back on the Swarm: every service's whole spec
as it ran then (images by digest, nothing rebuilt); services it did not have are removed.

Two callers: a failed rollout with `rollbackOnFailure` restores the application's
last good deployment inside its own run (a `rollback` step; the deployment ends
ROLLED_BACK), and a `rollback` request runs as a deployment of its own
(trigger ROLLBACK: rollout, converge).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from typing import Any

from deploybot.core import rollbacks
from deploybot.core.policy import restore_violations
from deploybot.core.policy_store import current_policy
from deploybot.db.retry import retry_unavailable
from deploybot.domain import ApplicationState, DeploymentState, LogStream, StepName
from deploybot.errors import ErrorCode
from deploybot.inputs import RolloutOptions
from deploybot.records import ServiceRolloutRecord
from deploybot.runner.converge import (
    ConvergeFailed,
    ConvergeTimeout,
    ServiceWatch,
    snapshot_tasks,
    wait_converged,
)
from deploybot.runner.objects import prune_objects, refresh_object_ids
from deploybot.runner.run import DeploymentRun, StepFailure
from deploybot.runner.swarm import NAMESPACE_LABEL
from deploybot.times import utcnow

logger = logging.getLogger(__name__)

Outcome = tuple[DeploymentState, ErrorCode | None, str | None]


async def _networks(run: DeploymentRun, spec: dict[str, Any], namespace: str) -> None:
    """The overlay networks a recorded spec attaches to (a removed stack lost them)."""
    for attachment in spec.get("TaskTemplate", {}).get("Networks") or []:
        name = str(attachment.get("Target", ""))
        if name:  # ensure_network looks before it creates
            body = {
                "Name": name,
                "Driver": "overlay",
                "Attachable": False,
                "Labels": {NAMESPACE_LABEL: namespace},
            }
            await run.swarm.ensure_network(name, body)


async def apply_recorded(
    run: DeploymentRun, rows: list[Any], *, record: bool
) -> tuple[list[ServiceWatch], list[asyncio.Task[None]]]:
    """Deploy each recorded spec; remove the stack's other services. `record` saves them as
    this deployment's services (a rollback deployment), else they are only applied."""
    namespace = run.namespace
    kept: set[str] = set()
    watches: list[ServiceWatch] = []
    followers: list[asyncio.Task[None]] = []
    since = time.time() - 1
    ordered = sorted(rows, key=lambda r: str(r.service))
    specs = [copy.deepcopy(row.spec) for row in ordered]
    await refresh_object_ids(run, specs)  # the configs and secrets it used, by name
    for row, body in zip(ordered, specs, strict=True):
        if record:
            body.setdefault("Labels", {})["com.deploybot.deployment"] = str(run.id)
        await _networks(run, body, namespace)
        existing = await run.swarm.find_service(body["Name"])
        known = await snapshot_tasks(run.swarm, existing["ID"]) if existing else set()
        service_id, created = await run.deploy_service(body["Name"], body, [])
        run.swarm_changed = True
        kept.add(service_id)
        run.say(f"{'created' if created else 'restored'} service {body['Name']}: {row.image}")
        if record:
            await run.save_service_rollout(
                row.service,
                swarm_name=body["Name"],
                swarm_id=service_id,
                image=row.image,
                digest=row.digest,
                version=row.version,
                spec=body,
                state="updating",
                started_at=utcnow(),
            )
        watches.append(ServiceWatch(row.service, service_id, known_tasks=known))
        followers.append(asyncio.create_task(run.follow(service_id, row.service, since)))
    for service in await run.swarm.stack_services(namespace):
        if service["ID"] not in kept:
            await run.swarm.remove_service(service["ID"])
            run.say(f"removed service {service['Spec']['Name']} (not in the restored stack)")
    return watches, followers


async def converge(run: DeploymentRun, watches: list[ServiceWatch], *, record: bool) -> str:
    settings = run.ctx.settings
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
    finally:
        if record:
            await run.save_watches(watches)
    return ", ".join(f"{w.service} {w.running}/{w.desired}" for w in watches)


async def stop_following(followers: list[asyncio.Task[None]]) -> None:
    await asyncio.sleep(0.1)  # the last lines of the tasks (they reach us in about 1 ms)
    for task in followers:
        task.cancel()
    for task in followers:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def roll_back_on_failure(
    run: DeploymentRun, state: DeploymentState, code: ErrorCode | None, message: str | None
) -> Outcome:
    """After a failed rollout that changed the Swarm: put the last good deployment back
    (the whole stack), unless the request said `rollbackOnFailure: false`."""
    if state is not DeploymentState.FAILURE or not run.swarm_changed:
        return state, code, message
    db = run.ctx.db
    record = run.record
    if not RolloutOptions.from_json(record.rollout_options).rollback_on_failure:
        run.say("rollbackOnFailure is false: the stack stays as the failed rollout left it")
        return state, code, message
    good = await retry_unavailable(
        lambda: rollbacks.last_good_deployment(db, record.named_application, record.environment),
        what=f"deployment {run.id}: finding the last good deployment",
    )
    rows = await _restorable(run, int(good.id)) if good is not None else []
    if good is None or not rows:
        run.say("no earlier successful deployment to roll back to", LogStream.STDERR)
        return state, code, message
    await retry_unavailable(
        lambda: rollbacks.add_step(db, run.id, StepName.ROLLBACK),
        what=f"deployment {run.id}: adding the rollback step",
    )
    await _rolling_back(run)
    run.say(f"rolling the whole stack back to #{good.id} ({good.version}) after: {message}")
    followers: list[asyncio.Task[None]] = []
    try:
        async with run.step(StepName.ROLLBACK) as result:
            watches, followers = await apply_recorded(run, rows, record=False)
            replicas = await converge(run, watches, record=False)
            result["message"] = f"restored #{good.id} ({good.version}): {replicas}"
    except Exception as exc:  # whatever stopped the rollback, the deployment says so
        logger.warning("rollback of deployment %s failed: %s", run.id, exc)
        reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return (
            DeploymentState.FAILURE,
            ErrorCode.ROLLBACK_FAILED,
            f"{message}; rolling back to {good.version} failed: {reason}",
        )
    finally:
        await stop_following(followers)
    await retry_unavailable(
        lambda: rollbacks.record_restored(db, run.id, int(good.id)),
        what=f"deployment {run.id}: recording the rollback",
    )
    return (
        DeploymentState.ROLLED_BACK,
        code,
        f"{message}; rolled back to {good.version} (deployment #{good.id})",
    )


async def _rolling_back(run: DeploymentRun) -> None:
    """The application shows ROLLING_BACK (waiting out a database restart)."""
    record = run.record
    await retry_unavailable(
        lambda: rollbacks.set_application_state(
            run.ctx.db, record.named_application, record.environment, ApplicationState.ROLLING_BACK
        ),
        what=f"deployment {run.id}: marking the application rolling back",
    )


async def _restorable(run: DeploymentRun, deployment_id: int) -> list[ServiceRolloutRecord]:
    """A deployment's recorded services, waiting out a database restart."""
    return await retry_unavailable(
        lambda: rollbacks.restorable_services(run.ctx.db, deployment_id),
        what=f"deployment {run.id}: reading the services of #{deployment_id}",
    )


async def run_rollback(run: DeploymentRun) -> None:
    """A `rollback` request: its target's recorded stack, as a deployment of its own."""
    db = run.ctx.db
    record = run.record
    target = record.rollback_to_id
    rows = await _restorable(run, int(target)) if target is not None else []
    if not rows:
        raise StepFailure(ErrorCode.BACKUP_NOT_FOUND, f"deployment #{target} recorded no specs")
    assert target is not None  # rows were found for it
    policy = (
        await retry_unavailable(
            lambda: current_policy(db, run.ctx.settings),
            what=f"deployment {run.id}: reading the deploy policy",
        )
    ).policy
    violations = restore_violations(policy, int(target), {r.service: r.spec for r in rows})
    if violations:  # the policy may have been tightened since the target ran
        message = "; ".join(v.message for v in violations)
        run.say(f"refused by the deploy policy: {message}", LogStream.STDERR)
        raise StepFailure(ErrorCode.POLICY_VIOLATION, message)
    await _rolling_back(run)
    run.say(f"rollback to #{target} ({record.version}): {len(rows)} recorded service spec(s)")
    followers: list[asyncio.Task[None]] = []
    try:
        async with run.step(StepName.ROLLOUT) as result:
            watches, followers = await apply_recorded(run, rows, record=True)
            result["message"] = f"{len(rows)} service(s) of #{target} on stack {run.namespace}"
        async with run.step(StepName.CONVERGE) as result:
            try:
                result["message"] = await converge(run, watches, record=True)
            except (ConvergeFailed, ConvergeTimeout) as exc:
                raise StepFailure(ErrorCode.ROLLBACK_FAILED, str(exc)) from exc
    finally:
        await stop_following(followers)
    try:
        await prune_objects(run, run.namespace)
    except Exception as exc:  # clean-up never fails the rollback
        run.say(f"unused configs and secrets not removed: {exc}", LogStream.STDERR)
