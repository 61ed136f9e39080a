"""A runner played by the test process: it records a deployment, writes its log lines
through the real LogWriter and announces everything on its bus and, on PostgreSQL,
through NOTIFY, exactly as a `deploybot runner` process does for the API processes."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType

from deploybot.core import lifecycle
from deploybot.core.logs import LogWriter
from deploybot.db import migrate
from deploybot.db.engine import Database
from deploybot.db.models import Deployment, DeploymentStep
from deploybot.domain import DeploymentState, StepName, StepStatus
from deploybot.events.bus import DeploymentEvent, EventBus
from deploybot.events.postgres import PostgresRelay
from deploybot.times import utcnow


class LogProducer:
    def __init__(self, database_url: str, environment: str = "test") -> None:
        self.database_url = database_url
        self.environment = environment
        self.db = Database(database_url)
        self.bus = EventBus()
        self.relay = None if self.db.is_sqlite else PostgresRelay(database_url, self.bus)

    async def __aenter__(self) -> LogProducer:
        await migrate.upgrade(self.db)
        if self.relay is not None:
            await self.relay.start()
        return self

    async def __aexit__(
        self, *exc: type[BaseException] | BaseException | TracebackType | None
    ) -> None:
        if self.relay is not None:
            await asyncio.sleep(0.2)  # let the last notifications leave
            await self.relay.stop()
        await self.db.dispose()

    async def create(self, application: str = "produced") -> int:
        now = utcnow()
        async with self.db.transaction() as session:
            row = Deployment(
                environment=self.environment,
                application=application,
                version="v1",
                state=DeploymentState.IN_PROGRESS,
                created_at=now,
                updated_at=now,
                started_at=now,
            )
            session.add(row)
            await session.flush()
            assert row.id is not None
            for position, step in enumerate((StepName.BUILD, StepName.ROLLOUT)):
                step_row = DeploymentStep(deployment_id=row.id, position=position, name=step.value)
                session.add(step_row)
            deployment_id = row.id
        state = DeploymentState.IN_PROGRESS.value
        self.bus.publish(DeploymentEvent(deployment_id, state, "created"))
        return deployment_id

    async def step(self, deployment_id: int, name: StepName, status: StepStatus) -> None:
        await lifecycle.set_step(self.db, deployment_id, name, status, bus=self.bus)

    async def write(
        self, deployment_id: int, count: int, *, rate: float | None = None, prefix: str = "line"
    ) -> None:
        """`count` lines, `rate` per second (as fast as possible if None); each line's text
        carries its send time (`prefix n t`) so readers can measure delivery latency."""
        async with LogWriter(self.db, self.bus, deployment_id) as log:
            started = time.monotonic()
            for n in range(1, count + 1):
                log.write(f"{prefix} {n} {time.time():.6f}")
                if rate:
                    delay = started + n / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif n % 1000 == 0:
                    await asyncio.sleep(0)

    async def finish(
        self, deployment_id: int, state: DeploymentState = DeploymentState.SUCCESS
    ) -> None:
        await lifecycle.finish_deployment(self.db, self.bus, deployment_id, state)
