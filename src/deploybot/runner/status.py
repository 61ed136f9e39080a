"""Read a stack's live state from the Swarm: services, tasks and container health checks.

A service is HEALTHY when it has all its desired tasks running and ready (ready: its
container's healthcheck passes, or it has none), DEGRADED when only some are, UNHEALTHY when
none are. A container's healthcheck log gives each check's outcome, duration and time; a task
on another node cannot be inspected from the manager and counts by its task state alone.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from aiodocker.exceptions import DockerError

from deploybot.domain import Health
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.namespaces import StackNamespaces
from deploybot.records import (
    ApplicationEvent,
    EventType,
    HealthCheckResult,
    LiveService,
    LiveStack,
    Replicas,
)
from deploybot.runner.swarm import NAMESPACE_LABEL, DockerUnavailable, Swarm
from deploybot.times import utcnow

TASK_EVENTS_PER_SERVICE = 20
_FRACTION = re.compile(r"\.(\d{6})\d*")
_CONTAINER_HEALTH = {
    "healthy": Health.HEALTHY,
    "unhealthy": Health.UNHEALTHY,
    "starting": Health.UNKNOWN,
}


def docker_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 times carry nanoseconds; Python reads microseconds."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = _FRACTION.sub(r".\1", value.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def _ports(spec: dict[str, Any]) -> list[str]:
    return [
        f"{p.get('PublishedPort', '')}:{p['TargetPort']}/{p.get('Protocol', 'tcp')}"
        f" {p.get('PublishMode', 'ingress')}"
        for p in (spec.get("EndpointSpec") or {}).get("Ports") or []
    ]


def task_events(service: str, tasks: list[dict[str, Any]]) -> list[ApplicationEvent]:
    events = []
    for task in tasks:
        status = task.get("Status") or {}
        when = docker_time(status.get("Timestamp"))
        if when is None:
            continue
        state = status.get("State", "?")
        kind = (
            EventType.ERROR
            if state in ("failed", "rejected")
            else EventType.WARNING
            if state == "shutdown" and task.get("DesiredState") == "running"
            else EventType.INFO
        )
        detail = status.get("Err") or status.get("Message") or ""
        slot = task.get("Slot")
        events.append(
            ApplicationEvent(
                when,
                kind,
                f"task {state}" + (f": {detail}" if detail else ""),
                f"{service}.{slot}" if slot else service,
            )
        )
    events.sort(key=lambda e: e.timestamp, reverse=True)
    return events[:TASK_EVENTS_PER_SERVICE]


def _check_of(name: str, health: dict[str, Any]) -> HealthCheckResult:
    status = _CONTAINER_HEALTH.get(str(health.get("Status")), Health.UNKNOWN)
    log = health.get("Log") or []
    if not log:
        return HealthCheckResult(name, status, "no healthcheck has run yet", None, None)
    last = log[-1]
    start, end = docker_time(last.get("Start")), docker_time(last.get("End"))
    output = str(last.get("Output") or "").strip()
    exit_code = last.get("ExitCode")
    message = f"exit {exit_code}" + (f": {output[-200:]}" if output else "")
    if health.get("FailingStreak"):
        message += f" (failing {health['FailingStreak']} times in a row)"
    duration = round((end - start).total_seconds(), 3) if start and end else None
    return HealthCheckResult(name, status, message, duration, end)


class SwarmStatus:
    """`SwarmInspector` over the Swarm manager's Engine API."""

    def __init__(self, swarm: Swarm, namespaces: StackNamespaces) -> None:
        self.swarm = swarm
        self.namespaces = namespaces

    async def stack(self, application: str) -> LiveStack:
        swarm = self.swarm
        namespace = self.namespaces.of(application)
        try:
            services = await swarm.stack_services(namespace)
            nodes = await swarm.ready_nodes() if services else 0
            live = [await self._service(swarm, namespace, s, nodes) for s in services]
        except DockerUnavailable as exc:
            raise DeploybotError(ErrorCode.DOCKER_UNAVAILABLE, str(exc)) from exc
        return LiveStack(sorted(live, key=lambda s: s.name), utcnow())

    async def stacks(self) -> list[str]:
        try:
            filters = json.dumps({"label": [NAMESPACE_LABEL]})
            services = await self.swarm.query("services", params={"filters": filters})
        except DockerUnavailable as exc:
            raise DeploybotError(ErrorCode.DOCKER_UNAVAILABLE, str(exc)) from exc
        found = {
            self.namespaces.application_of(s["Spec"]["Labels"][NAMESPACE_LABEL]) for s in services
        }
        return sorted(application for application in found if application is not None)

    async def _service(
        self, swarm: Swarm, namespace: str, service: dict[str, Any], nodes: int
    ) -> LiveService:
        spec = service["Spec"]
        swarm_name = str(spec["Name"])
        name = swarm_name.removeprefix(f"{namespace}_")
        image = spec.get("TaskTemplate", {}).get("ContainerSpec", {}).get("Image")
        mode = spec.get("Mode", {})
        if "Replicated" in mode:
            desired = int(mode["Replicated"].get("Replicas", 1))
        elif "Global" in mode:
            desired = nodes
        else:
            desired = 0  # jobs: nothing is meant to keep running
        has_healthcheck = bool(
            (spec.get("TaskTemplate", {}).get("ContainerSpec", {}).get("Healthcheck") or {}).get(
                "Test", ["NONE"]
            )[0]
            != "NONE"
        )
        tasks = await swarm.tasks(service["ID"])
        current = [t for t in tasks if t.get("DesiredState") == "running"]
        running = [t for t in current if t["Status"]["State"] == "running"]
        checks: list[HealthCheckResult] = []
        ready = 0
        for task in sorted(running, key=lambda t: t.get("Slot") or 0):
            check_name = f"{name}.{task.get('Slot')}" if task.get("Slot") else name
            container = (task["Status"].get("ContainerStatus") or {}).get("ContainerID")
            health = await self._container_health(swarm, container) if has_healthcheck else None
            if health is None:
                since = docker_time(task["Status"].get("Timestamp"))
                message = "task running" + ("" if not has_healthcheck else " (health not readable)")
                checks.append(HealthCheckResult(check_name, Health.HEALTHY, message, None, since))
                ready += 1
                continue
            check = _check_of(check_name, health)
            checks.append(check)
            ready += check.status is Health.HEALTHY
        for task in current:
            if task["Status"]["State"] != "running":
                slot = task.get("Slot")
                checks.append(
                    HealthCheckResult(
                        f"{name}.{slot}" if slot else name,
                        Health.UNHEALTHY,
                        f"task {task['Status']['State']}: "
                        + (task["Status"].get("Err") or task["Status"].get("Message") or ""),
                        None,
                        docker_time(task["Status"].get("Timestamp")),
                    )
                )
        updated = sum(
            1 for t in running if t["Spec"].get("ContainerSpec", {}).get("Image") == image
        )
        replicas = Replicas(desired, len(running), ready, updated)
        if ready >= desired:
            health_state, message = Health.HEALTHY, f"{ready}/{desired} ready"
        elif ready == 0:
            health_state, message = Health.UNHEALTHY, f"0/{desired} ready"
        else:
            health_state, message = Health.DEGRADED, f"{ready}/{desired} ready"
        failing = [c for c in checks if c.status is not Health.HEALTHY and c.message]
        if failing:
            message += f"; {failing[0].name}: {failing[0].message}"
        update = service.get("UpdateStatus") or {}
        labels = spec.get("Labels") or {}
        return LiveService(
            name=name,
            swarm_name=swarm_name,
            image=image,
            replicas=replicas,
            health=health_state,
            message=message,
            checks=checks,
            update_state=update.get("State"),
            configuration={
                "image": image,
                "mode": next(iter(mode), None),
                "replicas": desired,
                "ports": _ports(spec),
                "endpointMode": (spec.get("EndpointSpec") or {}).get("Mode"),
                "version": labels.get("com.deploybot.version"),
                "deployment": labels.get("com.deploybot.deployment"),
                "healthcheck": has_healthcheck,
            },
            events=task_events(name, tasks),
        )

    async def _container_health(
        self, swarm: Swarm, container_id: str | None
    ) -> dict[str, Any] | None:
        """The container's State.Health, if this node has the container."""
        if not container_id:
            return None
        try:
            container = await swarm.query(f"containers/{container_id}/json")
        except DockerError:
            return None
        health = (container.get("State") or {}).get("Health")
        return dict(health) if health else None
