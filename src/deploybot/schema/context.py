"""What every resolver gets: the backend to call, this request's base URL, and per-request
DataLoaders that batch the backend calls of sibling objects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TypeAlias, TypeVar

from strawberry.dataloader import DataLoader
from strawberry.types import Info as StrawberryInfo

from deploybot.access import Principal
from deploybot.backend import Backend
from deploybot.inputs import DeploymentRef, ReleaseRef
from deploybot.records import (
    DeploymentRecord,
    ReleaseRecord,
    ResultRecord,
    ServiceRolloutRecord,
    StepRecord,
)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _lists(fetch: Callable[[Sequence[K]], Awaitable[dict[K, list[V]]]]) -> DataLoader[K, list[V]]:
    """Batches `fetch`; a key it left out has none."""

    async def load(keys: Sequence[K]) -> list[list[V]]:
        found = await fetch(keys)
        return [found.get(k, []) for k in keys]

    return DataLoader(load_fn=load)


def _objects(fetch: Callable[[Sequence[K]], Awaitable[dict[K, V]]]) -> DataLoader[K, V | None]:
    """Batches `fetch`; a key it left out is None (missing, or not the caller's to see)."""

    async def load(keys: Sequence[K]) -> list[V | None]:
        found = await fetch(keys)
        return [found.get(k) for k in keys]

    return DataLoader(load_fn=load)


@dataclass
class Context:
    backend: Backend
    """The backend bound to the caller: every call it makes is checked against them."""
    base_url: str
    principal: Principal
    """Who is calling (the root fields' permission classes look at it)."""
    via_cli: bool = False
    """The request came from the `deploybot` client commands (its deploys: trigger CLI)."""

    @cached_property
    def steps(self) -> DataLoader[DeploymentRef, list[StepRecord]]:
        return _lists(self.backend.steps)

    @cached_property
    def service_rollouts(self) -> DataLoader[DeploymentRef, list[ServiceRolloutRecord]]:
        return _lists(self.backend.service_rollouts)

    @cached_property
    def deployment_results(self) -> DataLoader[DeploymentRef, list[ResultRecord]]:
        return _lists(self.backend.results)

    @cached_property
    def deployments(self) -> DataLoader[DeploymentRef, DeploymentRecord | None]:
        """Deployments linked from other objects (releases, versions, rollbacks), batched."""
        return _objects(self.backend.deployments_by_ref)

    @cached_property
    def releases(self) -> DataLoader[ReleaseRef, ReleaseRecord | None]:
        return _objects(self.backend.releases_by_ref)


Info: TypeAlias = StrawberryInfo[Context, None]
