"""The runner loop: claim queued deployments and execute them, a few at a time.

It runs inside `deploybot serve` (embedded mode) or alone as `deploybot runner`
against the same database. It wakes on the event bus when this process queued
something and polls otherwise (another process may have queued it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from deploybot.config import Settings
from deploybot.core import lifecycle, log_retention, queue
from deploybot.db.engine import Database
from deploybot.domain import DeploymentState
from deploybot.errors import ErrorCode
from deploybot.events.bus import DeploymentEvent, EventBus
from deploybot.runner.pipeline import execute
from deploybot.runner.preflight import mirror_cache
from deploybot.runner.run import RunnerContext
from deploybot.runner.swarm import Swarm

logger = logging.getLogger(__name__)


class Runner:
    def __init__(self, db: Database, bus: EventBus, settings: Settings, swarm: Swarm) -> None:
        self.ctx = RunnerContext(db, bus, settings, mirror_cache(settings), swarm)
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._running: set[asyncio.Task[object]] = set()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def recover(self) -> None:
        """End what a dead runner left IN_PROGRESS, so its applications can deploy again."""
        settings = self.ctx.settings
        lost = await queue.abandoned(
            self.ctx.db,
            settings.environment,
            socket.gethostname(),
            stale_after=settings.runner_stale_after,
        )
        for deployment_id in lost:
            logger.warning("deployment %s was abandoned by its runner", deployment_id)
            await lifecycle.finish_deployment(
                self.ctx.db,
                self.ctx.bus,
                deployment_id,
                DeploymentState.ERROR,
                error_code=ErrorCode.RUNNER_LOST,
                error_message="the runner executing this deployment stopped before it ended",
            )

    async def run(self) -> None:
        settings = self.ctx.settings
        logger.info("runner %s started for environment %s", self.id, settings.environment)
        try:
            await self.recover()
        except Exception:
            logger.exception("could not recover abandoned deployments")
        pruning = asyncio.create_task(
            log_retention.prune_periodically(self.ctx.db, settings, self._stop)
        )
        async with self.ctx.bus.subscribe() as sub:
            while not self._stop.is_set():
                await self._fill()
                waiters = [
                    asyncio.ensure_future(sub.queue.get()),
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
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _fill(self) -> None:
        settings = self.ctx.settings
        while len(self._running) < settings.runner_concurrency:
            try:
                claimed = await queue.claim_next(self.ctx.db, settings.environment, self.id)
            except Exception:
                logger.exception("runner could not claim work")
                return
            if claimed is None:
                return
            self.ctx.bus.publish(DeploymentEvent(claimed, DeploymentState.IN_PROGRESS.value))
            task: asyncio.Task[object] = asyncio.create_task(self._execute(claimed))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _execute(self, deployment_id: int) -> object:
        try:
            return await execute(self.ctx, deployment_id)
        except Exception:
            logger.exception("runner lost deployment %s", deployment_id)
            return None
