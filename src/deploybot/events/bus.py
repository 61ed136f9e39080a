"""In-process event bus.

The core publishes each deployment change; the runner loop listens for new
work and (later) subscriptions read from it. Subscribers get bounded queues so
a slow one can never hold up the publisher: on overflow it is told so and
must re-read from the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class DeploymentEvent:
    """A deployment was created or changed (`state` is its state afterwards), or got log
    lines up to `sequence`."""

    deployment_id: int
    state: str | None
    kind: str = "changed"  # created | changed | log
    sequence: int | None = None


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[DeploymentEvent] = field(
        default_factory=lambda: asyncio.Queue(maxsize=1000)
    )
    overflowed: bool = False


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def publish(self, event: DeploymentEvent) -> None:
        for sub in self._subscribers:
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.overflowed = True

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        sub = Subscription()
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
