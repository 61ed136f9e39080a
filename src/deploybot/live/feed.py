"""A live feed: one upstream (a deployment's log, its progress, the stream of deployment
changes, an application's service logs, or another instance's subscription) that emits
batches, shared by every subscriber with the same key.

A feed with exact cursors (`contiguous`: log sequence numbers) also answers
`backlog(cursor)` from storage, which is how a late subscriber, a reconnecting
one (`after:`) and one whose queue overflowed get exactly the lines they have not
seen: no gap, no duplicate.

A feed whose upstream fails for a passing reason (`retryable`: the database
restarting) is run again, with backoff, from where it was: `run` starts by
catching up from its position, so its subscribers lose nothing and see nothing twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Batch:
    """Items a feed produced; `start`/`end` are the cursors around them (None: no cursor).
    `final`: nothing follows, the stream ends after this batch."""

    items: Sequence[Any]
    start: int | None = None
    end: int | None = None
    final: bool = False


Emit = Callable[[Batch], Awaitable[None]]


class Feed(ABC):
    contiguous = False
    """True when cursors are exact positions a subscriber can resume from storage."""

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.position: int | None = None
        """The end cursor of the last live batch emitted (contiguous feeds)."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Check the feed can exist (raise DeploybotError) and set the live position."""

    @abstractmethod
    async def run(self, emit: Emit) -> None:
        """Emit live batches until the stream is final (then return) or cancelled."""

    def retryable(self, exc: BaseException) -> bool:
        """Whether a failure of `run` or `backlog` is passing (the database restarting):
        the feed is then run again from its position instead of failing its subscribers."""
        return False

    async def backlog(self, cursor: int | None) -> Batch | None:
        """What a subscriber at `cursor` gets before (or instead of) live batches."""
        return None
