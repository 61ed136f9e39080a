"""Pre- and post-deploy hooks: commands run once in the new image of a stack service.

A hook is a Swarm replicated job (`Mode.ReplicatedJob`, one completion, no
restart), not a plain container: a job gets the service's whole task template
(environment, secrets, configs, mounts, placement) and its overlay networks,
which a stack creates non-attachable, so a migration reaches the database
service exactly as the service would. The job's command is `sh -c <command>`
(the image needs a shell); its output goes to the deployment log as HOOK
lines, its exit code into the step's message, and the job service is removed
afterwards whatever happened.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiodocker.exceptions import DockerError

from deploybot.inputs import Hook
from deploybot.runner.swarm import Swarm

TERMINAL_STATES = frozenset({"complete", "failed", "rejected", "shutdown", "orphaned", "remove"})
HOOK_LABEL = "com.deploybot.hook"


@dataclass(frozen=True)
class HookResult:
    command: str
    service: str
    exit_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        outcome = f"exit {self.exit_code}" if self.exit_code is not None else self.error
        return f"`{self.command}` in {self.service}: {outcome}"


def job_spec(
    name: str, service_spec: dict[str, Any], command: str, labels: dict[str, str]
) -> dict[str, Any]:
    """A one-completion job with the service's task template and `sh -c command`."""
    template = copy.deepcopy(service_spec["TaskTemplate"])
    container = template["ContainerSpec"]
    container["Command"] = ["sh", "-c", command]
    container.pop("Args", None)
    container["Healthcheck"] = {"Test": ["NONE"]}
    template["RestartPolicy"] = {"Condition": "none"}
    return {
        "Name": name,
        "Labels": labels,
        "TaskTemplate": template,
        "Mode": {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}},
    }


def hook_service(hook: Hook, specs: dict[str, dict[str, Any]], default: str | None) -> str:
    """Which stack service's image runs the hook: the named one, the deployment's, the first."""
    if hook.service:
        return hook.service
    if default and default in specs:
        return default
    return sorted(specs)[0]


async def run_hook(
    swarm: Swarm,
    *,
    name: str,
    spec: dict[str, Any],
    command: str,
    labels: dict[str, str],
    timeout: float,
    output: Callable[[str], None],
) -> tuple[int | None, str | None]:
    """Run one job to its end; (exit code, error) — exit code None if it never ran."""
    stale = await swarm.find_service(name)  # left by a runner that died during a hook
    if stale is not None:
        await swarm.remove_service(stale["ID"])
    try:
        created = await swarm.query(
            "services/create", "POST", body=job_spec(name, spec, command, labels)
        )
    except DockerError as exc:
        return None, f"Docker refused the job: {exc.message}"
    service_id = str(created["ID"])
    try:
        deadline = time.monotonic() + timeout
        task: dict[str, Any] | None = None
        while True:
            tasks = await swarm.tasks(service_id)
            task = next((t for t in tasks if t["Status"]["State"] in TERMINAL_STATES), None)
            if task is not None:
                break
            if time.monotonic() > deadline:
                return None, f"did not finish within {timeout:.0f}s"
            await asyncio.sleep(0.3)
        pending: Any = swarm.docker.services.logs(service_id, stdout=True, stderr=True)
        logs = await pending  # not following: a coroutine of the lines
        text = "".join(logs) if isinstance(logs, list) else str(logs)
        for line in text.splitlines():
            output(line)
        status = task["Status"]
        code = status.get("ContainerStatus", {}).get("ExitCode")
        if status["State"] == "complete":
            return int(code or 0), None
        if code is None:
            return None, status.get("Err") or status.get("Message") or status["State"]
        return int(code), None
    finally:
        await swarm.remove_service(service_id)
