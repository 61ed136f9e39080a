"""What the core asks of the runner, the only part of deploybot that talks to git and Docker:
look at a deploy request's source, read a stack's live state, follow its services' logs.

The core depends on these protocols; `runner/` implements them (Preflight, SwarmStatus,
ServiceLogStreams), so nothing above the runner imports Docker or git.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from deploybot.core.policy import Claim
from deploybot.records import LiveStack, ServiceLogLine

DEFAULT_STACK_FILE = "docker-compose.stack.yml"


@dataclass(frozen=True)
class SourceInfo:
    """What the runner found at the requested commit, before anything is written."""

    commit_sha: str
    ref: str | None
    version: str
    commit_message: str | None
    commit_author: str | None
    committed_at: datetime | None
    stack_file: str
    services: list[str]
    builds: bool
    warnings: tuple[str, ...] = ()
    claims: tuple[Claim, ...] = ()
    """What the stack asks of the nodes, for the deploy policy."""


@dataclass(frozen=True)
class ImageInfo:
    image: str
    digest: str | None
    tag: str | None


class SourceInspector(Protocol):
    """The runner's side of a deploy request: look at the source without changing anything."""

    async def inspect_git(
        self,
        repository_url: str,
        *,
        sha: str | None,
        ref: str | None,
        stack_file: str,
        application: str,
        working_directory: str | None = None,
    ) -> SourceInfo:
        """`stack_file` and the build contexts are relative to `working_directory`."""
        ...

    async def inspect_image(self, image: str) -> ImageInfo: ...

    async def image_available(self, image: str) -> bool:
        """Whether a recorded image reference can still run (registry or the node)."""
        ...

    async def missing_objects(self, specs: list[dict[str, Any]]) -> list[str]:
        """The Swarm configs and secrets recorded specs mount that no longer exist."""
        ...


class SwarmInspector(Protocol):
    """The runner's live view of an application's stack (its namespace: `Settings.namespaces`)."""

    async def stack(self, application: str) -> LiveStack: ...

    async def stacks(self) -> list[str]: ...


class ServiceLogSource(Protocol):
    """The runner's side of application logs (by application: the source knows its stack)."""

    async def services(self, application: str) -> list[str]: ...

    async def tail(
        self, application: str, *, tail: int | None, since: datetime | None
    ) -> list[ServiceLogLine]: ...

    async def follow(
        self, application: str, emit: Callable[[list[ServiceLogLine]], Awaitable[None]]
    ) -> None: ...
