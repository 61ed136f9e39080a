"""`deploybot serve` under uvicorn, with a SIGTERM that lets the embedded runner hand over.

uvicorn stops listening as soon as a signal arrives. On SIGTERM this server first drains the
runner (no new claims; running deployments go to the end of their current step, for at most
`runner_stop_grace` seconds, and are then left to the next runner), answering requests all
the while, and only then shuts down as uvicorn does. SIGINT (and a second signal) stop at
once: the deployments are left the same way, the next runner takes them over.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from deploybot.runner.worker import Runner

logger = logging.getLogger(__name__)


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Starlette, grace: float) -> None:
        super().__init__(config)
        self.app = app
        self.grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: concurrent.futures.Future[None] | None = None

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        runner: Runner | None = getattr(self.app.state, "runner", None)
        if sig != signal.SIGTERM or runner is None or self._loop is None or self._draining:
            super().handle_exit(sig, frame)
            return
        logger.info("SIGTERM: the runner hands its deployments over, the API goes on meanwhile")
        self._draining = asyncio.run_coroutine_threadsafe(
            self._drain_then_exit(runner, sig, frame), self._loop
        )

    async def _drain_then_exit(self, runner: Runner, sig: int, frame: FrameType | None) -> None:
        try:
            await runner.drain(self.grace)
        except Exception:
            logger.exception("the runner did not drain")
        super().handle_exit(sig, frame)
