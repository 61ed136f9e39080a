"""One deploybot instance: what a process builds once and shares, and its one start-up and
shutdown path (`deploybot serve`, `deploybot runner` and the tests all go through it).

It is where the layers are wired: the database, the event bus (and its PostgreSQL relay
across processes), the live hub of the subscriptions, the runner's Docker and git
inspectors, and the backend every transport calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import text

from deploybot.access import LOCAL_USER, Principal
from deploybot.backend.local import LocalBackend
from deploybot.config import Settings
from deploybot.core.rate_limits import RateLimits
from deploybot.core.tokens import TokenCache
from deploybot.db import migrate
from deploybot.db.engine import Database
from deploybot.events.bus import EventBus
from deploybot.events.postgres import PostgresRelay
from deploybot.live.hub import Hub
from deploybot.runner.preflight import Preflight
from deploybot.runner.service_logs import ServiceLogStreams
from deploybot.runner.status import SwarmStatus
from deploybot.runner.swarm import Swarm

READINESS_TIMEOUT = 5.0
"""Seconds a readiness check may take before it counts as failed."""


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    name: str
    ok: bool
    message: str


class Instance:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.bus = EventBus()
        self.hub = Hub()
        self.relay = None if self.db.is_sqlite else PostgresRelay(settings.database_url, self.bus)
        """On PostgreSQL, processes sharing the database hear each other's events."""
        self.swarm = Swarm(settings.docker_host)
        """The process's one Docker client (the runner's, the inspectors', the log streams')."""
        self.service_logs = ServiceLogStreams(self.swarm, settings.namespaces)
        self.tokens = TokenCache(self.db, ttl=settings.token_cache_ttl)
        """Token text → principal, cached a few seconds (no database round trip per call)."""

    @cached_property
    def backend(self) -> LocalBackend:
        """The backend of this instance, shared by every request."""
        return LocalBackend(
            settings=self.settings,
            db=self.db,
            bus=self.bus,
            hub=self.hub,
            inspector=Preflight(self.settings, self.swarm, db=self.db),
            swarm=SwarmStatus(self.swarm, self.settings.namespaces),
            service_logs=self.service_logs,
            token_cache=self.tokens,
            rate_limits=RateLimits.from_settings(self.settings, self.db),
        )

    def backend_for(self, principal: Principal) -> LocalBackend:
        """The backend bound to one caller: every call it makes is checked against them."""
        return dataclasses.replace(self.backend, principal=principal)

    async def authenticate(self, token: str | None) -> Principal | None:
        """The caller a token stands for (None: no, unknown, revoked or expired token).
        With `DEPLOYBOT_AUTH=off` everyone is the local user."""
        if not self.settings.auth:
            return LOCAL_USER
        if not token:
            return None
        return await self.tokens.authenticate(token)

    @cached_property
    def _migration_heads(self) -> list[str]:
        return migrate.heads()

    async def readiness(self, *, docker: bool) -> list[ReadinessCheck]:
        """What `/readyz` reports: the database answers and is at the head migration, and
        (where a runner runs, `docker`) the Docker Engine answers."""
        checks = [await self._database_ready()]
        if docker:
            checks.append(await self._docker_ready())
        return checks

    async def _database_ready(self) -> ReadinessCheck:
        try:
            async with asyncio.timeout(READINESS_TIMEOUT):
                async with self.db.connection() as conn:
                    versions = await conn.execute(text("SELECT version_num FROM alembic_version"))
                    current = versions.scalar_one_or_none()
        except Exception as exc:  # any failure to answer means not ready
            return ReadinessCheck("database", False, f"unreachable: {type(exc).__name__}")
        head = self._migration_heads
        if current not in head:
            return ReadinessCheck(
                "database", False, f"at migration {current}, not at the head {', '.join(head)}"
            )
        return ReadinessCheck("database", True, f"at the head migration {current}")

    async def _docker_ready(self) -> ReadinessCheck:
        try:
            async with asyncio.timeout(READINESS_TIMEOUT):
                version = await self.swarm.query("version")
        except Exception as exc:  # any failure to answer means not ready
            return ReadinessCheck("docker", False, f"unreachable: {exc}")
        return ReadinessCheck("docker", True, f"Docker {version.get('Version', '?')}")

    @contextlib.asynccontextmanager
    async def running(self, *, migrations: bool = True) -> AsyncIterator[Instance]:
        """Start (work directory, migrations, the event relay), then stop in reverse."""
        self.settings.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            if migrations:
                await migrate.upgrade(self.db)
            if self.relay is not None:
                await self.relay.start()
            yield self
        finally:
            await self.hub.close()
            if "backend" in self.__dict__:  # built: its rate limits may hold a connection
                await self.backend.rate_limits.close()
            await self.swarm.close()
            if self.relay is not None:
                await self.relay.stop()
            await self.db.dispose()
