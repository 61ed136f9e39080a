"""`Backend` over this instance: its database, event bus, live hub and Swarm.

The one place every transport's call lands in this process, so the one place a
call's checks stand: references to another environment's objects are not found
here (a relay would route them there), and each call delegates to the core
module that owns the rule.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deploybot.access import LOCAL_USER, Principal
from deploybot.backend.guard import Guard
from deploybot.config import Settings
from deploybot.core import (
    admission,
    applications,
    current_versions,
    delivery_metrics,
    external_deployments,
    feeds,
    history,
    logs,
    releases,
    rollbacks,
    validation,
)
from deploybot.core.inspectors import ServiceLogSource, SourceInspector, SwarmInspector
from deploybot.core.rate_limits import RateLimitKind, RateLimits
from deploybot.core.requests import application_of
from deploybot.db.engine import Database
from deploybot.domain import DeploymentState, Interval
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.events.bus import EventBus
from deploybot.filters import DeploymentFilter, MetricsFilter, ReleaseFilter
from deploybot.inputs import (
    DeploymentRef,
    DeployRequest,
    PageRequest,
    PublishRequest,
    RecordRequest,
    ReleaseRef,
    RollbackRequest,
)
from deploybot.live.feed import Batch, Feed
from deploybot.live.hub import Hub, LiveSource
from deploybot.records import (
    ApplicationStatus,
    DeliveryMetrics,
    DeploymentChange,
    DeploymentRecord,
    EnvironmentVersion,
    LogLineRecord,
    Page,
    ReleaseRecord,
    ResultRecord,
    ServiceRolloutRecord,
    StepRecord,
    ValidationReport,
)

MAX_TAIL = 10_000
"""Recent service log lines an `applicationLogs` subscriber may ask for first."""


@dataclass(frozen=True)
class LocalBackend:
    """The backend of one instance; built once per process and shared by every request."""

    settings: Settings
    db: Database
    bus: EventBus
    hub: Hub
    inspector: SourceInspector
    swarm: SwarmInspector
    service_logs: ServiceLogSource | None = None
    principal: Principal = LOCAL_USER
    """Who is calling; `Instance.backend_for` binds one per request."""
    rate_limits: RateLimits = field(default_factory=RateLimits.off)
    """Per-caller limits of deploys, status reads and list reads (shared by the process)."""

    @property
    def environment(self) -> str:
        return self.settings.environment

    @property
    def guard(self) -> Guard:
        return Guard(self.principal, self.settings.environment)

    async def _limit(self, kind: RateLimitKind, *scope: str) -> None:
        """RATE_LIMITED when the caller made too many calls of this kind lately."""
        if self.rate_limits.enabled:
            caller = self.principal.key or self.principal.name
            await self.rate_limits.hit(kind, caller, *scope)

    def _own(self, ref: DeploymentRef | ReleaseRef) -> bool:
        return ref.environment is None or ref.environment == self.environment

    def _number(self, ref: DeploymentRef, message: str) -> int:
        """The serial number of one of this environment's deployments, or
        DEPLOYMENT_NOT_FOUND (field `id`) with `message`."""
        if not self._own(ref):
            raise DeploybotError(ErrorCode.DEPLOYMENT_NOT_FOUND, message, field="id")
        return ref.number

    def _environment(self, environment: str | None) -> str:
        if environment is not None and environment != self.environment:
            raise DeploybotError(
                ErrorCode.WRONG_ENVIRONMENT,
                f"this instance serves {self.environment!r}, not {environment!r}; ask the relay",
                field="environment",
            )
        return self.environment

    # --- deployments: changing them ---------------------------------------------------------

    async def deploy(self, request: DeployRequest) -> DeploymentRecord:
        await self._limit(RateLimitKind.DEPLOY, application_of(request))
        return await admission.create_deployment(
            self.db, self.bus, self.settings, self.inspector, request, swarm=self.swarm
        )

    async def validate_deployment(self, request: DeployRequest) -> ValidationReport:
        return await validation.validate_deployment(
            self.db, self.settings, self.inspector, self.swarm, request
        )

    async def rollback(self, request: RollbackRequest) -> DeploymentRecord:
        await self._limit(RateLimitKind.DEPLOY, request.application)
        return await rollbacks.create_rollback(
            self.db, self.bus, self.settings, self.inspector, request
        )

    async def cancel_deployment(self, ref: DeploymentRef) -> DeploymentRecord:
        number = self._number(ref, f"deployment {ref.number} is not one of this environment's")
        await admission.cancel_deployment(self.db, self.bus, number)
        return await history.require_deployment(self.db, number)

    async def record_deployment(self, request: RecordRequest) -> DeploymentRecord:
        return await external_deployments.record_deployment(
            self.db, self.bus, self.settings, request
        )

    async def report_deployment_status(
        self, ref: DeploymentRef, state: DeploymentState, message: str | None
    ) -> DeploymentRecord:
        number = self._number(ref, f"no deployment {ref.number} here")
        return await external_deployments.report_status(
            self.db, self.bus, self.settings, number, state, message
        )

    async def add_deployment_result(
        self, ref: DeploymentRef, data: Any
    ) -> tuple[DeploymentRecord, ResultRecord]:
        number = self._number(ref, f"no deployment {ref.number} here")
        return await external_deployments.add_result(self.db, self.bus, number, data)

    # --- deployments: reading them ----------------------------------------------------------

    async def deployment(self, ref: DeploymentRef) -> DeploymentRecord | None:
        await self._limit(RateLimitKind.STATUS)
        if not self._own(ref):
            return None
        return await history.get_deployment(self.db, ref.number)

    async def deployments(
        self,
        filter: DeploymentFilter | None,
        page: PageRequest,
        *,
        fields: Collection[str] | None = None,
    ) -> Page[DeploymentRecord]:
        await self._limit(RateLimitKind.LIST)
        return await history.list_deployments(self.db, filter, page, fields=fields)

    async def count_deployments(self, filter: DeploymentFilter | None) -> int:
        return await history.count_deployments(self.db, filter)

    def _numbers(self, refs: Sequence[DeploymentRef]) -> list[int]:
        return [ref.number for ref in refs if self._own(ref)]

    def _by_ref(self, refs: Sequence[DeploymentRef], found: dict[int, Any]) -> dict[Any, Any]:
        return {ref: found[ref.number] for ref in refs if self._own(ref) and ref.number in found}

    async def deployments_by_ref(
        self, refs: Sequence[DeploymentRef]
    ) -> dict[DeploymentRef, DeploymentRecord]:
        return self._by_ref(refs, await history.get_deployments(self.db, self._numbers(refs)))

    async def steps(self, refs: Sequence[DeploymentRef]) -> dict[DeploymentRef, list[StepRecord]]:
        return self._by_ref(refs, await history.steps_for(self.db, self._numbers(refs)))

    async def service_rollouts(
        self, refs: Sequence[DeploymentRef]
    ) -> dict[DeploymentRef, list[ServiceRolloutRecord]]:
        return self._by_ref(refs, await history.services_for(self.db, self._numbers(refs)))

    async def results(
        self, refs: Sequence[DeploymentRef]
    ) -> dict[DeploymentRef, list[ResultRecord]]:
        return self._by_ref(refs, await history.results_for(self.db, self._numbers(refs)))

    async def log_lines(self, ref: DeploymentRef, *, after: int, first: int) -> list[LogLineRecord]:
        if not self._own(ref):
            return []
        return await logs.list_lines(self.db, ref.number, after_seq=after, limit=first)

    async def count_log_lines(self, ref: DeploymentRef) -> int:
        return await logs.count_lines(self.db, ref.number) if self._own(ref) else 0

    async def raw_log(self, ref: DeploymentRef) -> AsyncIterator[str]:
        await self._limit(RateLimitKind.STATUS)
        number = self._number(ref, f"deployment {ref.number} not found")
        if await history.get_deployment(self.db, number) is None:
            raise DeploybotError(
                ErrorCode.DEPLOYMENT_NOT_FOUND, f"deployment {number} not found", field="id"
            )
        return logs.raw_text(self.db, number)

    # --- releases ---------------------------------------------------------------------------

    async def publish_release(self, request: PublishRequest) -> ReleaseRecord:
        return await releases.publish_release(self.db, request, environment=self.environment)

    async def release(self, ref: ReleaseRef) -> ReleaseRecord | None:
        if not self._own(ref):
            return None
        return await releases.get_release(self.db, ref.number, environment=self.environment)

    async def releases_by_ref(self, refs: Sequence[ReleaseRef]) -> dict[ReleaseRef, ReleaseRecord]:
        found = await releases.releases_by_ids(
            self.db, [r.number for r in refs if self._own(r)], environment=self.environment
        )
        return {ref: found[ref.number] for ref in refs if self._own(ref) and ref.number in found}

    async def releases(
        self,
        filter: ReleaseFilter | None,
        *,
        first: int | None,
        after: str | None,
        by_release_time: bool,
        descending: bool,
    ) -> Page[ReleaseRecord]:
        await self._limit(RateLimitKind.LIST)
        return await releases.list_releases(
            self.db,
            filter,
            environment=self.environment,
            by_release_time=by_release_time,
            descending=descending,
            first=first,
            after=after,
        )

    async def count_releases(self, filter: ReleaseFilter | None) -> int:
        return await releases.count_releases(self.db, filter)

    async def latest_release(
        self, component: str, train: str, *, by_semver: bool
    ) -> ReleaseRecord | None:
        return await releases.latest_release(
            self.db, component, train, environment=self.environment, by_semver=by_semver
        )

    # --- applications and history's views ---------------------------------------------------

    async def application(self, name: str, environment: str | None) -> ApplicationStatus | None:
        await self._limit(RateLimitKind.STATUS)
        env = self._environment(environment)
        return await applications.application_status(self.db, self.swarm, name, env)

    async def applications(self, environment: str | None) -> list[ApplicationStatus]:
        await self._limit(RateLimitKind.LIST)
        env = self._environment(environment)
        names = await applications.application_names(self.db, self.swarm, env)
        found = [await applications.application_status(self.db, self.swarm, n, env) for n in names]
        return [status for status in found if status is not None]

    async def current_versions(
        self, application: str, environment: str | None
    ) -> list[EnvironmentVersion]:
        return await current_versions.current_versions(self.db, application, environment)

    async def delivery_metrics(
        self,
        filter: MetricsFilter | None,
        *,
        since: datetime | None,
        until: datetime | None,
        interval: Interval,
    ) -> DeliveryMetrics:
        return await delivery_metrics.delivery_metrics(
            self.db, filter, since=since, until=until, interval=interval
        )

    # --- live -------------------------------------------------------------------------------

    async def _prepared(self, feed: Feed) -> None:
        """Check the feed can be followed (free when it already runs)."""
        await self.hub.prepare(feed)

    async def follow_deployment_logs(self, ref: DeploymentRef, *, after: int) -> LiveSource:
        number = self._number(ref, f"deployment {ref.number} not found")
        feed = feeds.DeploymentLogFeed(self.db, self.bus, number)
        await self._prepared(feed)
        return LiveSource(self.hub, feed, self.environment, cursor=after)

    async def follow_deployment_logs_text(self, ref: DeploymentRef) -> AsyncIterator[str]:
        source = await self.follow_deployment_logs(ref, after=0)

        async def text() -> AsyncIterator[str]:
            async for batch in source.batches():
                if batch.items:
                    yield "".join(logs.format_line(line) for line in batch.items)

        return text()

    async def follow_deployment_progress(self, ref: DeploymentRef) -> LiveSource:
        number = self._number(ref, f"deployment {ref.number} not found")
        feed = feeds.DeploymentProgressFeed(self.db, self.bus, number)
        await self._prepared(feed)
        return LiveSource(self.hub, feed, self.environment)

    async def follow_deployment_events(self, filter: DeploymentFilter | None) -> LiveSource:
        if filter is not None:
            filter.check()
        feed = feeds.DeploymentEventFeed(self.db, self.bus)
        await self._prepared(feed)

        def keep(change: DeploymentChange) -> bool:
            return filter is None or filter.matches(change.deployment)

        return LiveSource(self.hub, feed, self.environment, keep=keep)

    async def follow_application_logs(
        self,
        application: str,
        environment: str | None,
        *,
        tail: int | None,
        since: datetime | None,
    ) -> LiveSource:
        env = self._environment(environment)
        if tail is not None and not 0 <= tail <= MAX_TAIL:
            raise DeploybotError(
                ErrorCode.INVALID_INPUT, f"tail must be 0..{MAX_TAIL}", field="tail"
            )
        source = self.service_logs
        if source is None:
            raise DeploybotError(ErrorCode.DOCKER_UNAVAILABLE, "this server has no Docker access")
        feed = feeds.ApplicationLogFeed(source, application, env)
        await self._prepared(feed)
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)

        async def initial(_cursor: int | None) -> Batch | None:
            if not tail and since is None:
                return None
            lines = await source.tail(application, tail=tail, since=since)
            return Batch(lines) if lines else None

        return LiveSource(self.hub, feed, env, initial=initial)
