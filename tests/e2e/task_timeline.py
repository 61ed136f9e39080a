"""Swarm's own task timeline of some services, recorded while a deployment runs.

A thread polls the Engine API's `GET /tasks` (what `docker service ps` shows)
and keeps, per task, the Swarm timestamps of its states: when it was created,
when it reached `running` and when it reached an end state. The tests judge
strategies from these timestamps, not from deploybot's own records.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime

import httpx

END_STATES = frozenset({"complete", "shutdown", "failed", "rejected", "orphaned", "remove"})


def swarm_time(text: str) -> float:
    """Docker's RFC 3339 timestamps carry nanoseconds; Python reads microseconds."""
    head, _, fraction = text.rstrip("Z").partition(".")
    fraction = (fraction + "000000")[:6]
    return datetime.fromisoformat(f"{head}.{fraction}+00:00").timestamp()


@dataclass
class TaskRecord:
    id: str
    service: str
    image: str
    slot: int | None
    created: float
    running_at: float | None = None
    ended_at: float | None = None

    def running(self, at: float) -> bool:
        if self.running_at is None or self.running_at > at:
            return False
        return self.ended_at is None or self.ended_at > at


class TaskTimeline:
    def __init__(self, services: list[str], interval: float = 0.15) -> None:
        self.services = services
        self.interval = interval
        self.tasks: dict[str, TaskRecord] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds="/var/run/docker.sock"), base_url="http://docker"
        )

    def __enter__(self) -> TaskTimeline:
        self.poll()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.poll()
        self._http.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except httpx.HTTPError:
                continue

    def poll(self) -> None:
        for service in self.services:
            filters = json.dumps({"service": [service]})
            response = self._http.get("/tasks", params={"filters": filters})
            if response.status_code != 200:
                continue
            for task in response.json():
                self._record(service, task)

    def _record(self, service: str, task: dict[str, object]) -> None:
        status: dict[str, str] = task["Status"]  # type: ignore[assignment]
        spec: dict[str, dict[str, str]] = task["Spec"]  # type: ignore[assignment]
        record = self.tasks.get(str(task["ID"]))
        if record is None:
            slot = task.get("Slot")
            record = TaskRecord(
                id=str(task["ID"]),
                service=service,
                image=spec["ContainerSpec"]["Image"],
                slot=int(str(slot)) if slot is not None else None,
                created=swarm_time(str(task["CreatedAt"])),
            )
            self.tasks[record.id] = record
        state = status["State"]
        stamp = swarm_time(status["Timestamp"])
        if state == "running" and record.running_at is None:
            record.running_at = stamp
        elif state in END_STATES and record.ended_at is None:
            record.ended_at = stamp

    def of(self, service: str, image_part: str) -> list[TaskRecord]:
        """The tasks of a service whose image reference contains `image_part` that ran."""
        return [
            t
            for t in self.tasks.values()
            if t.service == service and image_part in t.image and t.running_at is not None
        ]

    def running_at(self, at: float, tasks: list[TaskRecord]) -> int:
        return sum(1 for t in tasks if t.running(at))
