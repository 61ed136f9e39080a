"""What every resolver gets: the process's services and per-request DataLoaders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeAlias

from sqlalchemy import Row
from strawberry.dataloader import DataLoader
from strawberry.types import Info as StrawberryInfo

from deploybot.config import Settings
from deploybot.core import deployments, external_deployments, releases
from deploybot.core.applications import SwarmInspector
from deploybot.core.deployments import SourceInspector
from deploybot.core.feeds import ServiceLogSource
from deploybot.db.engine import Database
from deploybot.events.bus import EventBus
from deploybot.subscriptions.multiplex import Hub


@dataclass
class Services:
    """Process-wide: built once by the app and shared by every request."""

    db: Database
    bus: EventBus
    settings: Settings
    inspector: SourceInspector
    swarm: SwarmInspector
    hub: Hub = field(default_factory=Hub)
    service_logs: ServiceLogSource | None = None


def _loader(services: Services, fn: Any) -> DataLoader[int, list[Row[Any]]]:
    async def load(keys: Sequence[int]) -> list[list[Row[Any]]]:
        found = await fn(services.db, keys)
        return [found.get(k, []) for k in keys]

    return DataLoader(load_fn=load)


@dataclass
class Context:
    services: Services
    base_url: str

    @cached_property
    def steps(self) -> DataLoader[int, list[Row[Any]]]:
        return _loader(self.services, deployments.steps_for)

    @cached_property
    def service_rollouts(self) -> DataLoader[int, list[Row[Any]]]:
        return _loader(self.services, deployments.services_for)

    @cached_property
    def deployment_results(self) -> DataLoader[int, list[Row[Any]]]:
        return _loader(self.services, external_deployments.results_for)

    @cached_property
    def deployments(self) -> DataLoader[int, Row[Any] | None]:
        """Deployments linked from other objects (releases, versions, rollbacks), batched."""

        async def load(keys: Sequence[int]) -> list[Row[Any] | None]:
            found = await deployments.get_deployments(self.services.db, keys)
            return [found.get(k) for k in keys]

        return DataLoader(load_fn=load)

    @cached_property
    def releases(self) -> DataLoader[int, Row[Any] | None]:
        async def load(keys: Sequence[int]) -> list[Row[Any] | None]:
            found = await releases.releases_by_ids(self.services.db, keys)
            return [found.get(k) for k in keys]

        return DataLoader(load_fn=load)

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def settings(self) -> Settings:
        return self.services.settings


Info: TypeAlias = StrawberryInfo[Context, None]
