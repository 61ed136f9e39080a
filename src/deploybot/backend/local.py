"""`Backend` over this instance: its database, event bus, live hub and Swarm.

The one place every transport's call lands in this process, so the one place a
call's checks stand: references to another environment's objects are not found
here (a relay would route them there), and each call delegates to the core
module that owns the rule.

Longer than 600 lines on purpose: it is the whole `Backend` protocol for this instance, one
short delegating method per protocol method, kept in the protocol's order so the two read
side by side; the rules themselves live in `core/`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from deploybot.access import LOCAL_USER, Action, Grant, Principal
from deploybot.backend.guard import Guard
from deploybot.config import Settings
from deploybot.core import (
    admission,
    applications,
    audit,
    census,
    current_versions,
    delivery_metrics,
    external_deployments,
    feeds,
    history,
    logs,
    notifications,
    policy_store,
    releases,
    rollbacks,
    secrets,
    tokens,
    validation,
    webhooks,
)
from deploybot.core.inspectors import ServiceLogSource, SourceInspector, SwarmInspector
from deploybot.core.policy import PolicyChange, StoredPolicy
from deploybot.core.rate_limits import RateLimitKind, RateLimits
from deploybot.core.requests import application_of
from deploybot.db.engine import Database
from deploybot.domain import ApplicationState, DeploymentState, Interval
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.events.bus import EventBus
from deploybot.filters import DeploymentFilter, MetricsFilter, ReleaseFilter
from deploybot.inputs import (
    DeploymentRef,
    DeployRequest,
    NotificationTargetRequest,
    PageRequest,
    PublishRequest,
    RecordedService,
    RecordRequest,
    ReleaseRef,
    RollbackRequest,
    SecretRef,
    SetSecretRequest,
    WebhookRequest,
)
from deploybot.live.feed import Batch, Feed
from deploybot.live.hub import Hub, LiveSource
from deploybot.outages import is_database_unavailable
from deploybot.records import (
    ApplicationStatus,
    CreatedWebhook,
    DeliveryMetrics,
    DeliverySample,
    DeploymentChange,
    DeploymentRecord,
    DeploymentTally,
    EnvironmentVersion,
    LogLineRecord,
    NotificationDeliveryRecord,
    NotificationTargetRecord,
    Page,
    ReleaseRecord,
    ResultRecord,
    SecretRecord,
    ServiceRolloutRecord,
    StepRecord,
    ValidationReport,
    ViewerRecord,
    WebhookDeliveryRecord,
    WebhookOutcome,
    WebhookRecord,
)
from deploybot.secretbox import box_for
from deploybot.webhooks import HookRequest

MAX_LIST_LIMIT = 100
"""Largest page of the REST application list."""
MAX_LIST_WINDOW = 1_000
"""`offset + limit` of the REST application list: each listed application's live status
is read from the Swarm, so a deep offset must not turn into a slow request."""

T = TypeVar("T")

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
    token_cache: tokens.TokenCache | None = None
    """The instance's token cache (emptied when a token is revoked here)."""
    rate_limits: RateLimits = field(default_factory=RateLimits.off)
    """Per-caller limits of deploys, status reads and list reads (shared by the process)."""

    @property
    def environment(self) -> str:
        return self.settings.environment

    @property
    def guard(self) -> Guard:
        return Guard(self.principal, self.settings.environment)

    # --- who may do what --------------------------------------------------------------------

    def _readable(self, record: DeploymentRecord | None) -> DeploymentRecord | None:
        """The record if the caller may read it; None (as missing) otherwise."""
        if record is None or not self.guard.may(
            Action.READ, record.application, record.repository_url
        ):
            return None
        return record

    def _scoped(self, flt: DeploymentFilter | None) -> DeploymentFilter:
        """`flt` narrowed to what the caller may read."""
        self.guard.require_anywhere(Action.READ)
        scope = self.guard.scope(Action.READ)
        if flt is None:
            return DeploymentFilter(scope=scope)
        return dataclasses.replace(flt, scope=scope) if scope is not None else flt

    async def _visible(
        self, ref: DeploymentRef, message: str, action: Action = Action.READ
    ) -> DeploymentRecord:
        """One of this environment's deployments the caller may read (or `action` on), else
        DEPLOYMENT_NOT_FOUND (the same answer as a missing one: existence does not leak)."""
        number = self._number(ref, message)
        found = await history.get_deployment(self.db, number)
        if found is None or not (
            self.guard.may(Action.READ, found.application, found.repository_url)
            or self.guard.may(action, found.application, found.repository_url)
        ):
            raise DeploybotError(ErrorCode.DEPLOYMENT_NOT_FOUND, message, field="id")
        return found

    async def _audited(self, operation: str, target: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run a change and append its outcome (ok, or the error code) to the audit trail."""
        try:
            result = await call()
        except DeploybotError as exc:
            await audit.record(self.db, self.principal, operation, target, exc.code, exc.message)
            raise
        except ValidationFailed as exc:
            code = exc.errors[0].code if exc.errors else ErrorCode.INVALID_INPUT
            await audit.record(self.db, self.principal, operation, target, code, str(exc))
            raise
        except Exception as exc:
            if not is_database_unavailable(exc):  # then nothing can be recorded either
                await audit.record(self.db, self.principal, operation, target, "INTERNAL_ERROR")
            raise
        await audit.record(self.db, self.principal, operation, target, audit.OK)
        return result

    def _target(self, application: str) -> str:
        return f"{self.environment}/{application}"

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
        application = application_of(request)

        async def run() -> DeploymentRecord:
            await self._limit(RateLimitKind.DEPLOY, application)
            self.guard.require(
                Action.DEPLOY, application, request.repository_url, field="application"
            )
            asked = dataclasses.replace(request, requested_by=self.principal.label)
            return await admission.create_deployment(
                self.db, self.bus, self.settings, self.inspector, asked, swarm=self.swarm
            )

        return await self._audited("deploy", self._target(application), run)

    async def validate_deployment(self, request: DeployRequest) -> ValidationReport:
        self.guard.require(
            Action.DEPLOY, application_of(request), request.repository_url, field="application"
        )
        return await validation.validate_deployment(
            self.db, self.settings, self.inspector, self.swarm, request
        )

    async def rollback(self, request: RollbackRequest) -> DeploymentRecord:
        async def run() -> DeploymentRecord:
            await self._limit(RateLimitKind.DEPLOY, request.application)
            self.guard.require(Action.DEPLOY, request.application, field="application")
            asked = dataclasses.replace(request, requested_by=self.principal.label)
            return await rollbacks.create_rollback(
                self.db, self.bus, self.settings, self.inspector, asked
            )

        return await self._audited("rollback", self._target(request.application), run)

    async def cancel_deployment(self, ref: DeploymentRef) -> DeploymentRecord:
        async def run() -> DeploymentRecord:
            message = f"deployment {ref.number} is not one of this environment's"
            found = await self._visible(ref, message, Action.DEPLOY)
            self.guard.require(Action.DEPLOY, found.application, found.repository_url)
            await admission.cancel_deployment(self.db, self.bus, found.id)
            return await history.require_deployment(self.db, found.id)

        return await self._audited("cancelDeployment", f"deployment:{ref.number}", run)

    async def record_deployment(self, request: RecordRequest) -> DeploymentRecord:
        async def run() -> DeploymentRecord:
            self.guard.require(
                Action.RECORD, request.application, request.repository_url, field="application"
            )
            asked = dataclasses.replace(request, requested_by=self.principal.label)
            return await external_deployments.record_deployment(
                self.db, self.bus, self.settings, asked
            )

        target = self._target(request.application or "(none)")
        return await self._audited("recordDeployment", target, run)

    async def report_deployment_status(
        self, ref: DeploymentRef, state: DeploymentState, message: str | None
    ) -> DeploymentRecord:
        async def run() -> DeploymentRecord:
            found = await self._visible(ref, f"no deployment {ref.number} here", Action.RECORD)
            self.guard.require(Action.RECORD, found.application, found.repository_url)
            return await external_deployments.report_status(
                self.db, self.bus, self.settings, found.id, state, message
            )

        return await self._audited("reportDeploymentStatus", f"deployment:{ref.number}", run)

    async def add_deployment_result(
        self, ref: DeploymentRef, data: Any
    ) -> tuple[DeploymentRecord, ResultRecord]:
        async def run() -> tuple[DeploymentRecord, ResultRecord]:
            found = await self._visible(ref, f"no deployment {ref.number} here", Action.RECORD)
            self.guard.require(Action.RECORD, found.application, found.repository_url)
            return await external_deployments.add_result(self.db, self.bus, found.id, data)

        return await self._audited("addDeploymentResult", f"deployment:{ref.number}", run)

    async def add_recorded_services(
        self, ref: DeploymentRef, services: Sequence[RecordedService]
    ) -> list[ServiceRolloutRecord]:
        async def run() -> list[ServiceRolloutRecord]:
            found = await self._visible(ref, f"no deployment {ref.number} here", Action.RECORD)
            self.guard.require(Action.RECORD, found.application, found.repository_url, field="id")
            return await external_deployments.add_services(self.db, self.bus, found.id, services)

        return await self._audited("addDeploymentServices", f"deployment:{ref.number}", run)

    # --- deployments: reading them ----------------------------------------------------------

    async def deployment(self, ref: DeploymentRef) -> DeploymentRecord | None:
        self.guard.require_anywhere(Action.READ)
        await self._limit(RateLimitKind.STATUS)
        if not self._own(ref):
            return None
        return self._readable(await history.get_deployment(self.db, ref.number))

    async def deployments(
        self,
        filter: DeploymentFilter | None,
        page: PageRequest,
        *,
        fields: Collection[str] | None = None,
    ) -> Page[DeploymentRecord]:
        await self._limit(RateLimitKind.LIST)
        return await history.list_deployments(self.db, self._scoped(filter), page, fields=fields)

    async def count_deployments(self, filter: DeploymentFilter | None) -> int:
        return await history.count_deployments(self.db, self._scoped(filter))

    async def deployment_tallies(self) -> list[DeploymentTally]:
        self.guard.require(Action.READ)
        return await census.deployment_tallies(self.db, self.environment)

    def _numbers(self, refs: Sequence[DeploymentRef]) -> list[int]:
        return [ref.number for ref in refs if self._own(ref)]

    def _by_ref(self, refs: Sequence[DeploymentRef], found: dict[int, Any]) -> dict[Any, Any]:
        return {ref: found[ref.number] for ref in refs if self._own(ref) and ref.number in found}

    async def deployments_by_ref(
        self, refs: Sequence[DeploymentRef]
    ) -> dict[DeploymentRef, DeploymentRecord]:
        found = await history.get_deployments(self.db, self._numbers(refs))
        readable = {n: r for n, r in found.items() if self._readable(r) is not None}
        return self._by_ref(refs, readable)

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
        self.guard.require_anywhere(Action.READ)
        found = await self._visible(ref, f"deployment {ref.number} not found")
        return logs.raw_text(self.db, found.id)

    # --- releases ---------------------------------------------------------------------------

    def _release_readable(self, record: ReleaseRecord | None) -> ReleaseRecord | None:
        """Releases are scoped by component, as an application with no repository."""
        if record is None or not self.guard.may(Action.READ, record.component, None):
            return None
        return record

    def _release_scope(self, flt: ReleaseFilter | None) -> ReleaseFilter:
        self.guard.require_anywhere(Action.READ)
        scope = self.guard.scope(
            Action.READ, application_column="component", repository_column=None
        )
        if flt is None:
            return ReleaseFilter(scope=scope)
        return dataclasses.replace(flt, scope=scope) if scope is not None else flt

    async def publish_release(self, request: PublishRequest) -> ReleaseRecord:
        async def run() -> ReleaseRecord:
            self.guard.require(Action.RECORD, request.component, None, field="component")
            return await releases.publish_release(self.db, request, environment=self.environment)

        target = f"{request.component}/{request.train}/{request.version}"
        return await self._audited("publishRelease", target, run)

    async def release(self, ref: ReleaseRef) -> ReleaseRecord | None:
        self.guard.require_anywhere(Action.READ)
        if not self._own(ref):
            return None
        found = await releases.get_release(self.db, ref.number, environment=self.environment)
        return self._release_readable(found)

    async def releases_by_ref(self, refs: Sequence[ReleaseRef]) -> dict[ReleaseRef, ReleaseRecord]:
        found = await releases.releases_by_ids(
            self.db, [r.number for r in refs if self._own(r)], environment=self.environment
        )
        return {
            ref: found[ref.number]
            for ref in refs
            if self._own(ref) and self._release_readable(found.get(ref.number)) is not None
        }

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
            self._release_scope(filter),
            environment=self.environment,
            by_release_time=by_release_time,
            descending=descending,
            first=first,
            after=after,
        )

    async def count_releases(self, filter: ReleaseFilter | None) -> int:
        return await releases.count_releases(self.db, self._release_scope(filter))

    async def latest_release(
        self, component: str, train: str, *, by_semver: bool
    ) -> ReleaseRecord | None:
        self.guard.require_anywhere(Action.READ)
        if not self.guard.may(Action.READ, component, None):
            return None
        return await releases.latest_release(
            self.db, component, train, environment=self.environment, by_semver=by_semver
        )

    async def release_keys(self, filter: ReleaseFilter | None) -> list[tuple[str, str, str]]:
        return await releases.release_keys(self.db, self._release_scope(filter))

    async def releases_named(
        self, filter: ReleaseFilter | None, keys: Sequence[tuple[str, str, str]]
    ) -> list[ReleaseRecord]:
        return await releases.releases_named(
            self.db, self._release_scope(filter), keys, environment=self.environment
        )

    # --- applications and history's views ---------------------------------------------------

    async def application(self, name: str, environment: str | None) -> ApplicationStatus | None:
        await self._limit(RateLimitKind.STATUS)
        env = self._environment(environment)
        self.guard.require_anywhere(Action.READ)
        if not self.guard.may(Action.READ, name):
            return None
        return await applications.application_status(self.db, self.swarm, name, env)

    async def applications(self, environment: str | None) -> list[ApplicationStatus]:
        await self._limit(RateLimitKind.LIST)
        env = self._environment(environment)
        self.guard.require_anywhere(Action.READ)
        names = await applications.application_names(self.db, self.swarm, env)
        names = [n for n in names if self.guard.may(Action.READ, n)]
        found = [await applications.application_status(self.db, self.swarm, n, env) for n in names]
        return [status for status in found if status is not None]

    async def application_page(
        self,
        environment: str | None,
        *,
        state: ApplicationState | None,
        limit: int,
        offset: int,
    ) -> tuple[list[ApplicationStatus], int]:
        await self._limit(RateLimitKind.LIST)
        env = self._environment(environment)
        self.guard.require_anywhere(Action.READ)
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise DeploybotError(
                ErrorCode.INVALID_INPUT, f"limit must be 1..{MAX_LIST_LIMIT}", field="limit"
            )
        if offset < 0 or offset + limit > MAX_LIST_WINDOW:
            raise DeploybotError(
                ErrorCode.INVALID_INPUT,
                f"offset must be 0 or more and offset + limit at most {MAX_LIST_WINDOW}",
                field="offset",
            )
        names = [
            name
            for name in await applications.application_names(self.db, self.swarm, env)
            if self.guard.may(Action.READ, name)
        ]
        if state is None:  # only the page's live status is read
            window = names[offset : offset + limit]
            found = [
                await applications.application_status(self.db, self.swarm, n, env) for n in window
            ]
            return [s for s in found if s is not None], len(names)
        matching = []
        for name in names[:MAX_LIST_WINDOW]:
            status = await applications.application_status(self.db, self.swarm, name, env)
            if status is not None and status.state is state:
                matching.append(status)
        return matching[offset : offset + limit], len(matching)

    async def current_versions(
        self, application: str, environment: str | None
    ) -> list[EnvironmentVersion]:
        self.guard.require_anywhere(Action.READ)
        found = await current_versions.current_versions(self.db, application, environment)
        return [v for v in found if self.principal.allows(Action.READ, v.environment, application)]

    async def delivery_metrics(
        self,
        filter: MetricsFilter | None,
        *,
        since: datetime | None,
        until: datetime | None,
        interval: Interval,
    ) -> DeliveryMetrics:
        return await delivery_metrics.delivery_metrics(
            self.db, self._metrics_scope(filter), since=since, until=until, interval=interval
        )

    def _metrics_scope(self, filter: MetricsFilter | None) -> MetricsFilter | None:
        self.guard.require_anywhere(Action.READ)
        scope = self.guard.scope(Action.READ)
        if scope is not None:
            filter = dataclasses.replace(filter or MetricsFilter(), scope=scope)
        return filter

    async def delivery_samples(
        self, filter: MetricsFilter | None, *, since: datetime | None, until: datetime | None
    ) -> list[DeliverySample]:
        """The same reads, and the same permission, as `delivery_metrics`."""
        scoped = self._metrics_scope(filter)
        start, _ = delivery_metrics.window(since, until, Interval.MONTH)
        return await delivery_metrics.delivery_samples(self.db, scoped, since=start)

    # --- the caller -------------------------------------------------------------------------

    async def viewer(self) -> ViewerRecord:
        return ViewerRecord(
            name=self.principal.label,
            environment=self.environment,
            grants=[str(g) for g in self.principal.grants],
        )

    async def may(self, action: Action, application: str | None) -> bool:
        return self.guard.may(action, application)

    # --- the deploy policy (admin) ----------------------------------------------------------

    async def deploy_policy(self) -> StoredPolicy:
        self.guard.require(Action.ADMIN)
        return await policy_store.current_policy(self.db, self.settings)

    async def update_deploy_policy(self, change: PolicyChange) -> StoredPolicy:
        async def run() -> StoredPolicy:
            self.guard.require(Action.ADMIN)
            return await policy_store.update_policy(
                self.db, self.settings, change, by=self.principal.label
            )

        return await self._audited("updateDeployPolicy", self.environment, run)

    # --- secrets deploybot keeps -------------------------------------------------------------

    async def set_secret(self, request: SetSecretRequest) -> SecretRecord:
        """Audited by name only: the value never reaches the audit trail."""

        async def run() -> SecretRecord:
            env = self._environment(request.environment)
            self.guard.require(Action.SECRETS, request.application, field="application")
            return await secrets.set_secret(self.db, box_for(self.settings), env, request)

        target = f"{self._target(request.application)}/secret:{request.name}"
        return await self._audited("setSecret", target, run)

    async def delete_secret(self, ref: SecretRef) -> SecretRecord:
        async def run() -> SecretRecord:
            env = self._environment(ref.environment)
            self.guard.require(Action.SECRETS, ref.application, field="application")
            return await secrets.delete_secret(self.db, env, ref)

        target = f"{self._target(ref.application)}/secret:{ref.name}"
        return await self._audited("deleteSecret", target, run)

    async def secrets(self, application: str, environment: str | None) -> list[SecretRecord]:
        """Names, versions and times of an application's kept secrets (never values)."""
        env = self._environment(environment)
        self.guard.require(Action.SECRETS, application, field="application")
        return await secrets.list_secrets(self.db, env, application)

    # --- webhooks ----------------------------------------------------------------------------

    async def create_webhook(self, request: WebhookRequest) -> CreatedWebhook:
        async def run() -> CreatedWebhook:
            self.guard.require(Action.ADMIN)
            return await webhooks.create_webhook(self.db, self.settings, request)

        return await self._audited(
            "createWebhook", f"webhook:{request.provider}:{request.repository}", run
        )

    async def webhooks(self) -> list[WebhookRecord]:
        self.guard.require(Action.ADMIN)
        return await webhooks.list_webhooks(self.db, self.settings)

    async def webhook(self, hook_id: int) -> WebhookRecord | None:
        self.guard.require(Action.ADMIN)
        return await webhooks.get_webhook(self.db, self.settings, hook_id)

    async def update_webhook(
        self, hook_id: int, request: WebhookRequest
    ) -> tuple[WebhookRecord, str | None]:
        async def run() -> tuple[WebhookRecord, str | None]:
            self.guard.require(Action.ADMIN)
            return await webhooks.update_webhook(self.db, self.settings, hook_id, request)

        return await self._audited("updateWebhook", f"webhook:{hook_id}", run)

    async def delete_webhook(self, hook_id: int) -> WebhookRecord:
        async def run() -> WebhookRecord:
            self.guard.require(Action.ADMIN)
            return await webhooks.delete_webhook(self.db, self.settings, hook_id)

        return await self._audited("deleteWebhook", f"webhook:{hook_id}", run)

    async def webhook_deliveries(self, hook_id: int, *, first: int) -> list[WebhookDeliveryRecord]:
        self.guard.require(Action.ADMIN)
        return await webhooks.list_deliveries(self.db, self.settings, hook_id, first=first)

    async def receive_webhook(
        self, provider: str, hook_id: int, request: HookRequest
    ) -> WebhookOutcome:
        """No token: the request's signature (or URL token) is its credential. The deploy it
        makes runs as the hook's own principal, allowed to deploy its application only."""

        async def admit(
            deploy: DeployRequest,
            source: webhooks.PayloadSource,
            write_delivery: admission.WriteAlong,
        ) -> DeploymentRecord:
            principal = webhook_principal(hook_id, self.environment, deploy.application)
            as_hook = dataclasses.replace(self, principal=principal)
            as_hook.guard.require(Action.DEPLOY, deploy.application, deploy.repository_url)
            return await admission.admit_at_once(
                as_hook.db, as_hook.bus, as_hook.settings, source, deploy, write_delivery
            )

        async def deployment(number: int) -> DeploymentRecord | None:
            return await history.get_deployment(self.db, number)

        return await webhooks.receive(
            self.db, self.settings, provider, hook_id, request, admit, deployment
        )

    async def receive_repository_webhook(
        self, provider: str, repository: str, request: HookRequest
    ) -> WebhookOutcome:
        """As `receive_webhook`, to the provider's hook for `repository`."""
        hook_id = await webhooks.hook_for(self.db, self.settings, provider, repository)
        return await self.receive_webhook(provider, hook_id, request)

    # --- provider-scoped views (seed 000) ----------------------------------------------------

    def _may_read(self, record: DeploymentRecord) -> bool:
        return self.guard.may(
            Action.READ, record.application, record.repository_url or record.image
        )

    async def provider_deployments(
        self, provider: str, repository: str, page: PageRequest
    ) -> Page[DeploymentRecord]:
        await self._limit(RateLimitKind.LIST)
        self.guard.require_anywhere(Action.READ)
        flt = DeploymentFilter(providers=[provider], provider_repository=repository)
        found = await history.list_deployments(self.db, flt, page)
        edges = [edge for edge in found.edges if self._may_read(edge.node)]
        return Page(edges, has_next=found.has_next, has_previous=found.has_previous)

    async def provider_deployment(
        self, provider: str, repository: str, ref: DeploymentRef
    ) -> DeploymentRecord | None:
        """One of the deployments a provider's webhook made for that repository; None for
        any other (or one outside the caller's read scope)."""
        await self._limit(RateLimitKind.STATUS)
        self.guard.require_anywhere(Action.READ)
        record = await self.deployment(ref)
        if (
            record is None
            or record.provider != provider
            or record.provider_repository != repository
            or not self._may_read(record)
        ):
            return None
        return record

    # --- notifications -----------------------------------------------------------------------

    async def create_notification_target(
        self, request: NotificationTargetRequest
    ) -> NotificationTargetRecord:
        async def run() -> NotificationTargetRecord:
            self.guard.require(Action.ADMIN)
            return await notifications.create_target(self.db, self.settings, request)

        return await self._audited("createNotificationTarget", "notification-target", run)

    async def notification_targets(self) -> list[NotificationTargetRecord]:
        self.guard.require(Action.ADMIN)
        return await notifications.list_targets(self.db, self.settings)

    async def delete_notification_target(self, target_id: int) -> NotificationTargetRecord:
        async def run() -> NotificationTargetRecord:
            self.guard.require(Action.ADMIN)
            return await notifications.delete_target(self.db, self.settings, target_id)

        return await self._audited(
            "deleteNotificationTarget", f"notification-target:{target_id}", run
        )

    async def notification_deliveries(
        self, target_id: int, *, first: int
    ) -> list[NotificationDeliveryRecord]:
        self.guard.require(Action.ADMIN)
        return await notifications.list_deliveries(self.db, self.settings, target_id, first=first)

    # --- live -------------------------------------------------------------------------------

    async def _prepared(self, feed: Feed) -> None:
        """Check the feed can be followed (free when it already runs)."""
        await self.hub.prepare(feed)

    async def follow_deployment_logs(self, ref: DeploymentRef, *, after: int) -> LiveSource:
        self.guard.require_anywhere(Action.READ)
        number = (await self._visible(ref, f"deployment {ref.number} not found")).id
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
        self.guard.require_anywhere(Action.READ)
        number = (await self._visible(ref, f"deployment {ref.number} not found")).id
        feed = feeds.DeploymentProgressFeed(self.db, self.bus, number)
        await self._prepared(feed)
        return LiveSource(self.hub, feed, self.environment)

    async def follow_deployment_events(
        self, filter: DeploymentFilter | None, *, after: str | None = None
    ) -> LiveSource:
        scoped = self._scoped(filter)
        scoped.check()
        since = feeds.parse_event_cursor(after) if after is not None else None
        feed = feeds.DeploymentEventFeed(self.db, self.bus, self.environment)
        await self._prepared(feed)

        def keep(change: DeploymentChange) -> bool:
            return scoped.matches(change.deployment)

        async def missed(_cursor: int | None) -> Batch | None:
            assert since is not None
            return await feeds.changes_since(self.db, self.environment, since)

        return LiveSource(
            self.hub,
            feed,
            self.environment,
            initial=missed if since is not None else None,
            keep=keep,
            view=scoped.scope,
            resume=lambda: feeds.resume_cursor(self.db, self.environment),
        )

    async def follow_application_logs(
        self,
        application: str,
        environment: str | None,
        *,
        tail: int | None,
        since: datetime | None,
    ) -> LiveSource:
        env = self._environment(environment)
        self.guard.require(Action.READ, application, field="application")
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

    # --- tokens and audit (admin) ---------------------------------------------------------

    async def create_api_token(
        self, name: str, scopes: Sequence[str], expires_at: datetime | None
    ) -> tokens.CreatedToken:
        async def run() -> tokens.CreatedToken:
            self.guard.require(Action.ADMIN)
            return await tokens.create_token(
                self.db, name, scopes, expires_at=expires_at, created_by=self.principal.label
            )

        return await self._audited("createApiToken", f"token:{name}", run)

    async def api_tokens(self) -> list[tokens.TokenRecord]:
        self.guard.require(Action.ADMIN)
        return await tokens.list_tokens(self.db)

    async def revoke_api_token(self, token_id: int) -> tokens.TokenRecord:
        async def run() -> tokens.TokenRecord:
            self.guard.require(Action.ADMIN)
            revoked = await tokens.revoke_token(self.db, token_id)
            if self.token_cache is not None:
                self.token_cache.clear()
            return revoked

        return await self._audited("revokeApiToken", f"token:{token_id}", run)

    async def audit_refusal(self, operation: str, message: str) -> None:
        """A call refused before it reached the backend (the schema's permission check)."""
        await audit.record(self.db, self.principal, operation, None, ErrorCode.FORBIDDEN, message)

    async def audit_events(
        self, filter: audit.AuditFilter | None, *, first: int, after: str | None
    ) -> Page[audit.AuditRecord]:
        self.guard.require(Action.ADMIN)
        return await audit.list_events(self.db, filter, first=first, after=after)


def webhook_principal(hook_id: int, environment: str, application: str | None = None) -> Principal:
    """Who a webhook's deploys run as: its hook, allowed to deploy its one application."""
    grants = (
        (Grant(frozenset({Action.DEPLOY}), (environment,), (application,)),) if application else ()
    )
    return Principal(name=f"webhook:{hook_id}", grants=grants, key=f"webhook:{hook_id}")
