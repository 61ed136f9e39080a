"""One deployment as it runs: what the pipeline's steps, the phases around the rollout and
a restore all work on, and the moves they share.

A `DeploymentRun` holds the deployment's record, its log, the runner's Swarm and what the
run has changed so far; it records steps, deploys a service, follows its logs and saves
what the watched services became. `StepFailure` is how any of them fails the deployment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from deploybot.config import Settings
from deploybot.core import lifecycle
from deploybot.core.logs import LogWriter
from deploybot.db.engine import Database
from deploybot.db.retry import retry_unavailable
from deploybot.domain import DeploymentState, LogSource, LogStream, StepName, StepStatus
from deploybot.errors import ErrorCode
from deploybot.events.bus import EventBus
from deploybot.records import DeploymentRecord
from deploybot.runner.cancellation import CancelWatch, DeploymentCancelled
from deploybot.runner.converge import ServiceWatch
from deploybot.runner.git import MirrorCache
from deploybot.runner.stack import NetworkSpec
from deploybot.runner.swarm import DockerUnavailable, Swarm
from deploybot.times import utcnow

logger = logging.getLogger(__name__)


class StepFailure(Exception):
    """A step failed in a way the deployment is to blame for (or, with ERROR, the platform)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        state: DeploymentState = DeploymentState.FAILURE,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.state = state


class HandedOver(Exception):
    """The runner is stopping: the deployment is left, between two steps, to the next one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class RunnerContext:
    db: Database
    bus: EventBus
    settings: Settings
    mirrors: MirrorCache
    swarm: Swarm
    """The process's one Docker client: deployments share it and never close it."""
    runner_id: str = ""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the runner stops gracefully: deployments go no further than their step."""


@dataclass
class DeploymentRun:
    ctx: RunnerContext
    record: DeploymentRecord
    log: LogWriter
    images: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    swarm_changed: bool = False
    cancel: CancelWatch | None = None
    canaries: list[str] = field(default_factory=list)
    """Temporary services beside the stack (a canary, a green version): removed at the end."""
    done_before: set[StepName] = field(default_factory=set)
    """Steps a replaced runner completed: repeated for their result, not recorded again."""
    claim_lost: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when another runner took the deployment over: this one records nothing more."""

    @property
    def id(self) -> int:
        return int(self.record.id)

    @property
    def swarm(self) -> Swarm:
        return self.ctx.swarm

    @property
    def namespace(self) -> str:
        """The stack namespace of this deployment's application on the Swarm."""
        return self.ctx.settings.namespaces.of(self.record.named_application)

    def say(self, text: str, stream: LogStream = LogStream.STDOUT) -> None:
        self.log.write(text, source=LogSource.SYSTEM, stream=stream)

    @asynccontextmanager
    async def step(self, name: StepName) -> AsyncIterator[dict[str, str]]:
        """Record a step's start, end and outcome; `result["message"]` becomes its message."""
        result: dict[str, str] = {}
        if self.ctx.stopping.is_set():
            raise HandedOver(f"the runner stopped before {name.value}")
        if name in self.done_before:
            self.say(
                f"==> {name.value} (completed by the replaced runner; repeated for its result)"
            )
            yield result
            return
        if self.cancel is not None:
            # The rollout sends the whole stack: a cancel waits for it, never half of it.
            self.cancel.before(name.value, interruptible=name is not StepName.ROLLOUT)
        started = time.monotonic()
        self.say(f"==> {name.value}")
        await self.set_step(name, StepStatus.RUNNING)
        try:
            yield result
        except BaseException as exc:
            if self.cancel is not None:
                self.cancel.after()
            stopped = isinstance(exc, asyncio.CancelledError | DeploymentCancelled)
            requested = self.cancel is not None and self.cancel.requested
            if isinstance(exc, asyncio.CancelledError) and not requested:
                # The runner itself stops (or lost its claim): the step stays RUNNING for the
                # runner that takes the deployment over.
                self.say(f"{name.value} interrupted: runner {self.ctx.runner_id} stops")
                raise
            if stopped and requested:
                self.say(f"{name.value} cancelled", LogStream.STDERR)
                await self.set_step(name, StepStatus.CANCELLED, error="cancelled", announce=False)
                raise
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.say(f"{name.value} failed: {message}", LogStream.STDERR)
            await self.set_step(name, StepStatus.FAILED, error=message)
            raise
        took = time.monotonic() - started
        self.say(f"{name.value} done in {took:.1f}s")
        await self.set_step(name, StepStatus.COMPLETED, message=result.get("message"))
        if self.cancel is not None:
            self.cancel.after()

    async def set_step(
        self,
        name: StepName,
        status: StepStatus,
        *,
        message: str | None = None,
        error: str | None = None,
        announce: bool = True,
    ) -> None:
        """Record a step's status, waiting out a database restart (see `db.retry`).
        `announce`: publish the change to the bus (live progress)."""
        await retry_unavailable(
            lambda: lifecycle.set_step(
                self.ctx.db,
                self.id,
                name,
                status,
                message=message,
                error=error,
                bus=self.ctx.bus if announce else None,
            ),
            what=f"deployment {self.id}: step {name.value} {status.value}",
        )

    async def save_service_rollout(self, service: str, **values: Any) -> None:
        """Record what a service of the stack became, waiting out a database restart.
        Not once the deployment was taken over: a runner woken from a long pause, whose
        watch was cut short, would overwrite what the runner that ended it recorded."""
        if self.claim_lost.is_set():
            return
        await retry_unavailable(
            lambda: lifecycle.save_service_rollout(self.ctx.db, self.id, service, **values),
            what=f"deployment {self.id}: service {service}",
        )

    async def save_watches(self, watches: list[ServiceWatch]) -> None:
        """Record what each watched service became (replicas, nodes, outcome)."""
        for watch in watches:
            await self.save_service_rollout(
                watch.service,
                replicas_desired=watch.desired,
                replicas_running=watch.running,
                replicas_healthy=watch.running,
                nodes=watch.nodes,
                state="converged" if watch.converged else "failed",
                error="; ".join(watch.errors[-3:]) or None,
                finished_at=utcnow(),
            )

    async def ensure_networks(
        self, networks: list[NetworkSpec], *, trust_listing: bool = True
    ) -> None:
        for network in networks:
            if network.external:
                if not await self.swarm.network_exists(network.name):
                    raise StepFailure(
                        ErrorCode.INVALID_DEPLOYMENT_SPEC,
                        f"external network {network.name} does not exist",
                    )
                continue
            await self.swarm.ensure_network(network.name, network.spec, trust_listing=trust_listing)

    async def deploy_service(
        self, name: str, body: dict[str, Any], networks: list[NetworkSpec]
    ) -> tuple[str, bool]:
        """Create or update one service. Swarm removes networks asynchronously: right after
        a stack was removed its network can still be listed, then vanish, and the service
        is refused with "network ... not found"; the network is made again and retried."""
        for attempt in range(4):
            try:
                return await self.swarm.deploy_service(body)
            except DockerUnavailable:
                raise
            except Exception as exc:
                message = str(getattr(exc, "message", None) or exc)
                if "network" in message and "not found" in message and attempt < 3:
                    self.say(f"{name}: {message}; making the network again")
                    await asyncio.sleep(0.5 * (attempt + 1))
                    await self.ensure_networks(networks, trust_listing=False)
                    continue
                raise StepFailure(
                    ErrorCode.ROLLOUT_FAILED, f"{name}: Docker refused the spec: {message}"
                ) from exc
        raise AssertionError("unreachable")

    async def progress(self, watch: ServiceWatch) -> None:
        self.say(
            f"{watch.service}: {watch.running}/{watch.desired} running"
            + (f" (update {watch.update_state})" if watch.update_state else "")
            + (f"; task error: {watch.errors[-1]}" if watch.errors else "")
        )

    async def follow(self, service_id: str, service: str, since: float) -> None:
        try:
            async for chunk in self.swarm.service_logs(service_id, since=since):
                for line in chunk.splitlines():
                    self.log.write(line, source=LogSource.SERVICE, source_name=service)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a log stream must never fail the deployment
            logger.debug("log stream of %s ended: %s", service, exc)
