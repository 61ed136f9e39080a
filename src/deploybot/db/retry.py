"""Riding out a restart of the database server.

A runner in the middle of a deployment cannot answer "retry shortly" the way the API does:
the Swarm goes on converging whatever the database does. So the runner's writes (log
lines, steps, the outcome) wait for the database to come back and are then made, instead
of failing the deployment into ERROR for a restart that takes a few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from deploybot.outages import is_database_unavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_FIRST = 0.2
RETRY_MAX = 1.0
"""Seconds between attempts: doubling, but short, so writes resume soon after a restart."""

PATIENCE = 300.0
"""Seconds an operation keeps waiting for the database before its failure is let through."""


async def retry_unavailable(
    operation: Callable[[], Awaitable[T]], *, what: str, patience: float = PATIENCE
) -> T:
    """Run `operation` until it succeeds while its failures mean "the database is
    unavailable right now"; any other failure, or one after `patience` seconds, is raised.

    `operation` is run again from its start: it must be one transaction (committed whole
    or not at all) and safe to repeat after a commit whose answer was lost.
    """
    delay = RETRY_FIRST
    deadline = time.monotonic() + patience
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_database_unavailable(exc) or time.monotonic() + delay > deadline:
                raise
            logger.warning(
                "%s: the database is unavailable (%s); retrying in %.1f s", what, exc, delay
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX)


def log_failure(log: logging.Logger, message: str, exc: BaseException) -> None:
    """Log a background loop's failure: one line while the database is unavailable (the
    loop tries again; a traceback per attempt would only bury the restart), else in full."""
    if is_database_unavailable(exc):
        log.warning("%s: the database is unavailable (%s)", message, exc)
    else:
        log.error(message, exc_info=exc)
