"""Stop a running deployment when someone cancels it (`cancelDeployment`).

The request is a column of the deployment, so a runner in another process sees it: the
watch polls it while the deployment runs. A deployment stops before its next step, or at
once while it waits (build, push, convergence); the rollout step itself, which sends the
services' new specs to the Swarm, is never interrupted half-way, so every service is left
either on its old spec or on its new one, and the next deploy takes over from there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from deploybot.core import queue
from deploybot.db.engine import Database


class DeploymentCancelled(Exception):
    """The deployment was cancelled; `message` says where it stopped."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CancelWatch:
    def __init__(self, db: Database, deployment_id: int, *, every: float = 0.5) -> None:
        self.db = db
        self.deployment_id = deployment_id
        self.every = every
        self.requested = False
        self.step: str | None = None
        self._interruptible = asyncio.Event()
        self._interruptible.set()

    def before(self, step: str, *, interruptible: bool = True) -> None:
        """Called as a step starts: a cancelled deployment goes no further. A step that is
        not interruptible is let finish; the deployment then stops before the next one."""
        if self.requested:
            raise DeploymentCancelled(f"cancelled before {step}")
        self.step = step
        if not interruptible:
            self._interruptible.clear()

    def after(self) -> None:
        self._interruptible.set()

    async def run(self, work: Coroutine[Any, Any, None]) -> None:
        """Run the deployment's work; raise DeploymentCancelled if a cancel stopped it."""
        task = asyncio.create_task(work)
        watch = asyncio.create_task(self._watch(task))
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not self.requested or (current is not None and current.cancelling()):
                raise  # the runner itself is stopping
            raise DeploymentCancelled(f"cancelled during {self.step}") from None
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _watch(self, task: asyncio.Task[None]) -> None:
        while True:
            if await self._asked():
                break
            await asyncio.sleep(self.every)
        self.requested = True
        await self._interruptible.wait()
        task.cancel()

    async def _asked(self) -> bool:
        try:
            return await queue.cancel_requested(self.db, self.deployment_id)
        except Exception:  # a database hiccup must not stop the deployment
            return False
