"""The runner loop: claim queued deployments and execute them, a few at a time.

It runs inside `deploybot serve` (embedded mode) or alone as `deploybot runner`
against the same database. It wakes on the event bus when this process queued
something and polls otherwise (another process may have queued it). Now and then it
looks for deployments whose runner is gone and takes them over (`reconcile`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid

from deploybot.config import Settings
from deploybot.core import log_retention, queue
from deploybot.db.engine import Database
from deploybot.db.retry import log_failure
from deploybot.domain import DeploymentState
from deploybot.events.bus import DeploymentEvent, EventBus, Subscription
from deploybot.runner.pipeline import execute
from deploybot.runner.preflight import mirror_cache
from deploybot.runner.run import RunnerContext
from deploybot.runner.swarm import Swarm

logger = logging.getLogger(__name__)


class Runner:
    def __init__(self, db: Database, bus: EventBus, settings: Settings, swarm: Swarm) -> None:
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.ctx = RunnerContext(
            db, bus, settings, mirror_cache(settings), swarm, runner_id=self.id
        )
        self._running: set[asyncio.Task[object]] = set()
        self._stop = asyncio.Event()
        self._next_recovery = 0.0

    def stop(self) -> None:
        """Stop at once: running deployments are cancelled (and handed over)."""
        self.ctx.stopping.set()
        self._stop.set()

    async def drain(self, grace: float) -> None:
        """Stop gracefully: claim nothing more; each running deployment goes on to the end
        of its current step, for at most `grace` seconds, and is then left to the next
        runner (released, so that one takes it over at once)."""
        self.ctx.stopping.set()
        running = list(self._running)
        logger.info("runner %s stopping: %d deployment(s) running", self.id, len(running))
        if running:
            await asyncio.wait(running, timeout=grace)
        self._stop.set()

    async def recover(self) -> None:
        """Take over what a gone runner left IN_PROGRESS (dead, stopped, or silent)."""
        settings = self.ctx.settings
        lost = await queue.abandoned(
            self.ctx.db,
            settings.environment,
            socket.gethostname(),
            stale_after=settings.runner_stale_after,
        )
        for gone in lost:
            if gone.runner_id == self.id:
                continue  # its own deployment, late with a heartbeat: still driven here
            if len(self._running) >= settings.runner_concurrency or self.ctx.stopping.is_set():
                return
            taken = await queue.take_over(
                self.ctx.db, gone, self.id, stale_after=settings.runner_stale_after
            )
            if not taken:
                continue  # another runner was faster, or the old one woke up
            logger.warning(
                "runner %s takes deployment %s over: %s", self.id, gone.deployment_id, gone.reason
            )
            self._start(gone.deployment_id, replaced=gone.reason)

    async def run(self) -> None:
        settings = self.ctx.settings
        logger.info("runner %s started for environment %s", self.id, settings.environment)
        pruning = asyncio.create_task(
            log_retention.prune_periodically(self.ctx.db, settings, self._stop)
        )
        async with self.ctx.bus.subscribe() as sub:
            while not self._stop.is_set():
                if not self.ctx.stopping.is_set():
                    await self._recover_now_and_then()
                    await self._fill()
                waiters = [
                    asyncio.ensure_future(_claimable_work(sub)),
                    asyncio.ensure_future(self._stop.wait()),
                ]
                await asyncio.wait(
                    [*waiters, *self._running],
                    timeout=settings.runner_poll_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for waiter in waiters:
                    waiter.cancel()
                while not sub.queue.empty():
                    sub.queue.get_nowait()
        pruning.cancel()
        self.ctx.stopping.set()
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _recover_now_and_then(self) -> None:
        """At start, then every few seconds (a silent runner is found by its heartbeat)."""
        now = time.monotonic()
        if now < self._next_recovery:
            return
        interval = min(10.0, self.ctx.settings.runner_stale_after / 3)
        self._next_recovery = now + interval
        try:
            await self.recover()
        except Exception as exc:
            log_failure(logger, "could not take over abandoned deployments", exc)

    async def _fill(self) -> None:
        settings = self.ctx.settings
        while len(self._running) < settings.runner_concurrency:
            try:
                claimed = await queue.claim_next(self.ctx.db, settings.environment, self.id)
            except Exception as exc:
                log_failure(logger, "runner could not claim work", exc)
                return
            if claimed is None:
                return
            self.ctx.bus.publish(DeploymentEvent(claimed, DeploymentState.IN_PROGRESS.value))
            self._start(claimed)

    def _start(self, deployment_id: int, *, replaced: str | None = None) -> None:
        task: asyncio.Task[object] = asyncio.create_task(self._execute(deployment_id, replaced))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _execute(self, deployment_id: int, replaced: str | None) -> object:
        try:
            return await execute(self.ctx, deployment_id, replaced=replaced)
        except Exception:
            logger.exception("runner lost deployment %s", deployment_id)
            return None


async def _claimable_work(sub: Subscription) -> None:
    """Until an event that may mean a deployment to claim: one queued, or one ended (its
    application is free). Step, log and IN_PROGRESS events (most of what a running
    deployment publishes) wake nothing: each wake-up costs a claim query on the loop and
    the database that the API's requests share."""
    while True:
        event = await sub.queue.get()
        if sub.overflowed or (event.kind not in _NO_WORK_KINDS and event.state != _RUNNING):
            return


_NO_WORK_KINDS = frozenset({"step", "log"})
_RUNNING = DeploymentState.IN_PROGRESS.value
