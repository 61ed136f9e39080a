"""Wait until a rolled-out stack has converged on the Swarm, or say why it did not.

A service has converged when it runs its desired number of tasks, every one of
them on the new spec and in state `running` (Swarm keeps a task with a
healthcheck in `starting` until it is healthy) for at least `stable` seconds,
and Swarm's update, if any, has completed. The stability window is Swarm's own
update `monitor` idea applied to every service: a crash-looping container is
briefly `running` after each restart and must not pass for converged. It is
counted from the moment the task started running (its status timestamp), so it
runs alongside Swarm's monitor rather than after the runner noticed the task:
a service whose monitor is at least the window converges when Swarm says the
update completed, not a window later. An update Swarm has not picked up yet (its
`UpdateStatus` older than the spec) is not taken for a completed one. Tasks
of the new spec that fail (`non-zero exit`, `unhealthy container`) are
collected; an update that Swarm paused or rolled back, or
repeated task failures, end the wait early.

Docker out of reach (its daemon restarting) is waited for. A daemon restart stops the
node's containers and loses tasks that were starting ("No such container"): a task that
existed before Docker came back and failed during the outage or right after it is the
restart's casualty, not the deployment's fault; it is reported as such and not counted.
Swarm replaces it, and the replacement is judged like any other task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deploybot.runner.swarm import DockerUnavailable, Swarm, image_of

FAILED_TASK_STATES = frozenset({"failed", "rejected"})
BAD_UPDATE_STATES = frozenset(
    {"paused", "rollback_started", "rollback_paused", "rollback_completed"}
)


@dataclass
class ServiceWatch:
    """The progress of one service towards its new spec."""

    service: str
    service_id: str
    known_tasks: set[str] = field(default_factory=set)
    desired: int = 0
    running: int = 0
    nodes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    waiting: str | None = None
    update_state: str | None = None
    update_message: str | None = None
    running_since: dict[str, float] = field(default_factory=dict)
    converged: bool = False
    sent_at: float = field(default_factory=time.time)
    """When the spec was sent: until Swarm's update status is newer, it may be the last one's."""
    failure: str | None = None
    outages: list[tuple[float, float]] = field(default_factory=list)
    """Times (epoch seconds) Docker was out of reach: from the last answer before to the
    first after; the tasks lost in them are not failures of the deployment."""
    lost: list[str] = field(default_factory=list)
    """Tasks lost to a Docker outage, not yet reported."""


RESTART_SETTLE = 30.0
"""Seconds after Docker is back in which a failure of a task from before it was back is
still the restart's: the restarted daemon reports the tasks it lost as it takes them back."""


def lost_in_outage(task: dict[str, Any], outages: list[tuple[float, float]]) -> bool:
    """Whether a failed task is a casualty of a Docker outage: made before Docker was back
    and failed after the outage began, at most `RESTART_SETTLE` seconds after its end."""
    created = _timestamp(task.get("CreatedAt"))
    failed = _timestamp(task["Status"].get("Timestamp"))
    return any(
        created <= back and start <= failed <= back + RESTART_SETTLE for start, back in outages
    )


class ConvergeTimeout(Exception):
    pass


class ConvergeFailed(Exception):
    pass


async def snapshot_tasks(swarm: Swarm, service_id: str) -> set[str]:
    """Task ids that exist before a rollout, so that old failures are not blamed on it."""
    return {t["ID"] for t in await swarm.tasks(service_id)}


async def _observe(
    swarm: Swarm, watch: ServiceWatch, nodes: dict[str, str], max_failures: int, stable: float
) -> None:
    service = await swarm.service(watch.service_id)
    spec = service["Spec"]
    image = image_of(spec)
    mode = spec.get("Mode", {})
    is_job = "ReplicatedJob" in mode or "GlobalJob" in mode
    if "Replicated" in mode:
        watch.desired = int(mode["Replicated"].get("Replicas", 1))
    elif "Global" in mode or "GlobalJob" in mode:
        watch.desired = await swarm.ready_nodes()
    else:
        watch.desired = int(mode["ReplicatedJob"].get("TotalCompletions", 1))
    status = service.get("UpdateStatus") or {}
    watch.update_state = status.get("State")
    watch.update_message = status.get("Message")
    # Swarm starts the update asynchronously: a status older than the spec is the previous
    # update's. An update that changed nothing gets no status of its own: after a second the
    # old one stands.
    registered = _timestamp(status.get("StartedAt")) >= _timestamp(service.get("UpdatedAt"))
    pending_update = bool(status) and not registered and time.time() - watch.sent_at < 1.0

    tasks = await swarm.tasks(watch.service_id)
    current = [
        t
        for t in tasks
        if t.get("DesiredState") in ("running", "complete")
        and t["Spec"].get("ContainerSpec", {}).get("Image") == image
    ]
    stale = [
        t
        for t in tasks
        if t.get("DesiredState") == "running"
        and t["Spec"].get("ContainerSpec", {}).get("Image") != image
    ]
    done_state = "complete" if is_job else "running"
    ready = [t for t in current if t["Status"]["State"] == done_state]
    now = time.time()
    watch.running_since = {
        t["ID"]: watch.running_since.get(t["ID"])
        or min(now, _timestamp(t["Status"].get("Timestamp")) or now)
        for t in ready
    }
    settled = all(now - since >= stable for since in watch.running_since.values())
    watch.running = len(ready)
    watch.nodes = sorted({nodes.get(t.get("NodeID", ""), t.get("NodeID", "")) for t in ready})
    pending = [
        t["Status"].get("Err") or t["Status"].get("Message")
        for t in current
        if t["Status"]["State"] in ("pending", "assigned", "preparing") and t["Status"].get("Err")
    ]
    watch.waiting = pending[-1] if pending else None
    for task in tasks:
        if task["ID"] in watch.known_tasks or task["Status"]["State"] not in FAILED_TASK_STATES:
            continue
        message = task["Status"].get("Err") or task["Status"].get("Message") or "task failed"
        slot = task.get("Slot")
        label = f"{watch.service}{'.' + str(slot) if slot else ''}: {message}"
        if lost_in_outage(task, watch.outages):
            watch.lost.append(label)
        else:
            watch.errors.append(label)
        watch.known_tasks.add(task["ID"])

    if watch.update_state in BAD_UPDATE_STATES:
        detail = watch.update_message or "update did not complete"
        last = f"; last task error: {watch.errors[-1]}" if watch.errors else ""
        watch.failure = f"{watch.service}: Swarm update {watch.update_state}: {detail}{last}"
    elif len(watch.errors) >= max_failures:
        watch.failure = (
            f"{watch.service}: {len(watch.errors)} tasks failed, last: {watch.errors[-1]}"
        )
    watch.converged = (
        watch.failure is None
        and watch.running >= watch.desired
        and (settled or is_job)
        and not stale
        and not pending_update
        and watch.update_state in (None, "completed")
    )


def _timestamp(value: object) -> float:
    """A Docker timestamp (RFC 3339, nanoseconds) as seconds since the epoch; 0 if none."""
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return 0.0
    head, _, rest = value.removesuffix("Z").partition(".")
    fraction = "".join(ch for ch in rest if ch.isdigit())
    offset = rest[len(fraction) :] or "+00:00"
    moment = datetime.fromisoformat(f"{head}{offset}").timestamp()
    return moment + (float(f"0.{fraction}") if fraction else 0.0)


async def wait_converged(
    swarm: Swarm,
    watches: Iterable[ServiceWatch],
    *,
    timeout: float,
    poll: float = 0.2,
    stable: float = 2.0,
    max_failures: int = 3,
    on_change: Callable[[ServiceWatch], Awaitable[None]] | None = None,
    patience: float = 0.0,
    on_unavailable: Callable[[str], None] | None = None,
) -> list[ServiceWatch]:
    """Poll until every service converged; raise ConvergeFailed/ConvergeTimeout otherwise.

    Docker out of reach (its daemon restarting) is waited for up to `patience` seconds:
    Swarm goes on with the update meanwhile, and the watch resumes where it stands (tasks
    the outage cost are reported through `on_unavailable`, not counted); past that,
    DockerUnavailable."""
    watches = list(watches)
    deadline = time.monotonic() + timeout
    nodes: dict[str, str] | None = None
    seen: dict[str, tuple[Any, ...]] = {}
    away_since: float | None = None
    answered = time.time()  # the last moment Docker answered (epoch seconds)
    while True:
        try:
            if nodes is None:
                nodes = await swarm.node_names()
            if away_since is not None:
                # Back: the outage runs from the last answer before it to now.
                for watch in watches:
                    watch.outages.append((answered, time.time()))
            await _observe_all(swarm, watches, nodes, max_failures, stable, seen, on_change)
            answered = time.time()
        except DockerUnavailable as exc:
            now = time.monotonic()
            if away_since is None:
                away_since = now
                if on_unavailable is not None:
                    on_unavailable(f"Docker is unreachable ({exc}); waiting up to {patience:g}s")
            if now - away_since >= patience:
                raise DockerUnavailable(
                    f"{exc} (unreachable for {now - away_since:.0f}s while the rollout converged)"
                ) from exc
            await asyncio.sleep(poll)
            continue
        if away_since is not None and on_unavailable is not None:
            on_unavailable(f"Docker is back after {time.monotonic() - away_since:.1f}s")
        away_since = None
        for watch in watches:
            for label in watch.lost:
                if on_unavailable is not None:
                    on_unavailable(f"{label} (a task lost while Docker was away; not counted)")
            watch.lost.clear()
        if all(w.converged for w in watches):
            return watches
        if time.monotonic() > deadline:
            waiting = ", ".join(
                f"{w.service} ({w.running}/{w.desired} running"
                + (f", waiting: {w.waiting}" if w.waiting else "")
                + (f", last error: {w.errors[-1]}" if w.errors else "")
                + ")"
                for w in watches
                if not w.converged
            )
            raise ConvergeTimeout(f"not converged after {timeout:.0f}s: {waiting}")
        await asyncio.sleep(poll)


async def _observe_all(
    swarm: Swarm,
    watches: list[ServiceWatch],
    nodes: dict[str, str],
    max_failures: int,
    stable: float,
    seen: dict[str, tuple[Any, ...]],
    on_change: Callable[[ServiceWatch], Awaitable[None]] | None,
) -> None:
    for watch in watches:
        if watch.converged:
            continue
        errors_before = len(watch.errors)
        await _observe(swarm, watch, nodes, max_failures, stable)
        key = (watch.running, watch.desired, watch.update_state, watch.converged)
        if on_change and (seen.get(watch.service) != key or len(watch.errors) != errors_before):
            seen[watch.service] = key
            await on_change(watch)
        if watch.failure:
            raise ConvergeFailed(watch.failure)
