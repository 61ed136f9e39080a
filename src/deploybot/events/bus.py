"""In-process event bus.

The core publishes each deployment change and each batch of log lines; the
runner loop listens for new work and the live feeds of the subscriptions read
from it. Subscribers get bounded queues so a slow one can never hold up the
publisher: on overflow it is told so and must re-read from the database.

Relays (see `events.postgres`) carry local events to other processes and
publish theirs here, marked with their origin so they are not sent back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DeploymentEvent:
    """A deployment was created or changed, a step moved, or log lines were stored.

    `state` is the deployment's state afterwards (None when unknown). For `log`
    events, `first_sequence`..`sequence` are the stored lines' numbers and, in
    the process that wrote them, `lines` are the rows themselves, so local
    readers need not query the database; other processes get only the numbers.
    """

    deployment_id: int
    state: str | None
    kind: str = "changed"  # created | changed | step | log
    sequence: int | None = None
    first_sequence: int | None = None
    lines: Sequence[Mapping[str, Any]] | None = field(default=None, compare=False, repr=False)
    origin: str | None = None
    step: str | None = None
    """For `step` events: the step's name, new status and message (or error)."""
    step_status: str | None = None
    message: str | None = None


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[DeploymentEvent] = field(
        default_factory=lambda: asyncio.Queue(maxsize=1000)
    )
    overflowed: bool = False


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._forwarders: list[Callable[[DeploymentEvent], None]] = []

    def publish(self, event: DeploymentEvent) -> None:
        for sub in self._subscribers:
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.overflowed = True
        if event.origin is None:
            for forward in self._forwarders:
                forward(event)

    def forward_local(self, forward: Callable[[DeploymentEvent], None]) -> None:
        """Call `forward` with every event this process originates (not relayed ones)."""
        self._forwarders.append(forward)

    @asynccontextmanager
    async def subscribe(self, maxsize: int = 1000) -> AsyncIterator[Subscription]:
        sub = Subscription(asyncio.Queue(maxsize=maxsize))
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
