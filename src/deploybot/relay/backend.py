"""`RelayBackend`: the backend protocol over the environments' instances (`relay.wire`).

Lists are asked of every selected environment at once and k-way merged; one object is
asked of the environment its ID names; a change is sent to the environment its input
names. An environment that does not answer within its timeout is left out of lists (the
request gets an ENVIRONMENT_UNAVAILABLE error naming it) and fails what is routed to it.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

import aiohttp
import httpx
import orjson

from deploybot.access import Action, Principal
from deploybot.core.audit import AuditFilter, AuditRecord
from deploybot.core.history import page_bounds
from deploybot.core.tokens import CreatedToken, TokenCache, TokenRecord
from deploybot.db.engine import Database
from deploybot.domain import Interval
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.filters import DeploymentFilter, MetricsFilter, ReleaseFilter
from deploybot.inputs import (
    DeploymentRef,
    DeployRequest,
    PageRequest,
    RecordRequest,
    ReleaseRef,
    RollbackRequest,
    SecretRef,
    SetSecretRequest,
)
from deploybot.records import (
    DeliveryMetrics,
    DeliverySample,
    DeploymentRecord,
    Edge,
    EnvironmentVersion,
    Page,
    ReleaseRecord,
    SecretRecord,
    ViewerRecord,
)
from deploybot.relay import aggregates, elsewhere, paging, wire
from deploybot.relay.config import Upstream

if TYPE_CHECKING:
    from deploybot.live.hub import LiveSource
    from deploybot.relay.streams import RelayLive


class EnvironmentUnavailable(DeploybotError):
    def __init__(self, environment: str, why: str) -> None:
        super().__init__(
            ErrorCode.ENVIRONMENT_UNAVAILABLE,
            f"environment {environment!r} is unavailable: {why}",
            field="environment",
        )
        self.environment = environment


class RpcPool:
    """The relay's keep-alive connections for `/relay/rpc` calls, shared by every request.

    aiohttp rather than httpx here: an httpx call cost the relay about three times the CPU
    (bench/relay.py), and a list makes one call per environment. The session is made on
    first use, inside the server's event loop."""

    def __init__(self, connections: int = 100, per_environment: int = 64) -> None:
        self.connections = connections
        self.per_environment = per_environment
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.connections, limit_per_host=self.per_environment
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass
class RelayBackend:
    upstreams: dict[str, Upstream]
    clients: dict[str, httpx.AsyncClient]
    principal: Principal
    unavailable: dict[str, str] = field(default_factory=dict)
    """Environments left out of this request's answers, and why (reported as errors)."""
    live: RelayLive | None = None
    """The subscriptions' shared upstream streams (`relay.streams`)."""
    db: Database | None = None
    """The relay's own database: its tokens and audit trail (`relay.elsewhere`)."""
    token_cache: TokenCache | None = None
    """The relay's token cache (emptied when a token is revoked here)."""
    rpc: RpcPool = field(default_factory=RpcPool)
    """The `/relay/rpc` connections (the streams use `clients`)."""

    def bound(self, principal: Principal) -> RelayBackend:
        return dataclasses.replace(self, principal=principal, unavailable={})

    # --- calling one environment ---------------------------------------------------------------

    def _upstream(self, environment: str | None, name: str = "environment") -> Upstream:
        if not environment:
            raise DeploybotError(
                ErrorCode.INVALID_INPUT, "the relay needs an environment", field=name
            )
        upstream = self.upstreams.get(environment)
        if upstream is None:
            raise DeploybotError(
                ErrorCode.INVALID_INPUT,
                f"unknown environment {environment!r} (known: {', '.join(sorted(self.upstreams))})",
                field=name,
            )
        return upstream

    async def _call(self, environment: str | None, name: str, /, **arguments: Any) -> Any:
        upstream = self._upstream(environment)
        call = wire.method(name)
        headers = {
            "authorization": f"Bearer {upstream.token.get_secret_value()}",
            wire.ON_BEHALF_OF: self.principal.label,
            wire.FORWARDED_GRANTS: ";".join(str(g) for g in self.principal.grants),
        }
        try:
            async with self.rpc.session().post(
                f"{upstream.url}{wire.RPC_PATH}{name}",
                data=orjson.dumps(call.encode_arguments(arguments)),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=upstream.timeout),
            ) as response:
                status = response.status
                content = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EnvironmentUnavailable(upstream.name, type(exc).__name__) from None
        if status in (401, 403) or status >= 500:
            raise EnvironmentUnavailable(upstream.name, f"HTTP {status}")
        body = orjson.loads(content)
        if "error" in body:
            raise wire.error_of(body)
        return call.decode_answer(body["answer"])

    async def _each(
        self, environments: Sequence[str], name: str, /, **arguments: Any
    ) -> dict[str, Any]:
        """Ask every environment at once; one that fails to answer is noted, not fatal."""
        return await aggregates._ask(self, name, {env: arguments for env in environments})

    def _readable(self, wanted: Sequence[str] | None) -> list[str]:
        """The environments a list asks: those selected that the caller may read."""
        names = (
            sorted(self.upstreams)
            if not wanted
            else [e for e in sorted(set(wanted)) if e in self.upstreams]
        )
        return [e for e in names if self.principal.scopes(Action.READ, e)]

    # --- routed by the input's environment ------------------------------------------------------

    async def deploy(self, request: DeployRequest) -> Any:
        return await self._call(request.environment, "deploy", request=request)

    async def validate_deployment(self, request: DeployRequest) -> Any:
        return await self._call(request.environment, "validate_deployment", request=request)

    async def rollback(self, request: RollbackRequest) -> Any:
        return await self._call(request.environment, "rollback", request=request)

    async def record_deployment(self, request: RecordRequest) -> Any:
        return await self._call(request.environment, "record_deployment", request=request)

    async def application(self, name: str, environment: str | None) -> Any:
        return await self._call(environment, "application", name=name, environment=environment)

    async def applications(self, environment: str | None) -> Any:
        if environment is not None:
            return await self._call(environment, "applications", environment=environment)
        found = await self._each(self._readable(None), "applications", environment=None)
        return [app for env in sorted(found) for app in found[env]]

    # --- routed by the ID's environment ---------------------------------------------------------

    async def deployment(self, ref: DeploymentRef) -> DeploymentRecord | None:
        if ref.environment not in self.upstreams:
            return None
        record: DeploymentRecord | None = await self._call(ref.environment, "deployment", ref=ref)
        return record

    async def cancel_deployment(self, ref: DeploymentRef) -> Any:
        return await self._call(_env_of(ref), "cancel_deployment", ref=ref)

    async def report_deployment_status(
        self, ref: DeploymentRef, state: Any, message: str | None
    ) -> Any:
        return await self._call(
            _env_of(ref), "report_deployment_status", ref=ref, state=state, message=message
        )

    async def add_deployment_result(self, ref: DeploymentRef, data: Any) -> Any:
        return await self._call(_env_of(ref), "add_deployment_result", ref=ref, data=data)

    async def add_recorded_services(self, ref: DeploymentRef, services: Any) -> Any:
        return await self._call(_env_of(ref), "add_recorded_services", ref=ref, services=services)

    async def log_lines(self, ref: DeploymentRef, *, after: int, first: int) -> Any:
        return await self._call(_env_of(ref), "log_lines", ref=ref, after=after, first=first)

    async def count_log_lines(self, ref: DeploymentRef) -> Any:
        return await self._call(_env_of(ref), "count_log_lines", ref=ref)

    async def _by_ref(self, name: str, refs: Sequence[DeploymentRef]) -> dict[Any, Any]:
        groups: dict[str, list[DeploymentRef]] = defaultdict(list)
        for ref in refs:
            if ref.environment in self.upstreams:
                groups[ref.environment].append(ref)
        found: dict[Any, Any] = {}
        for answer in (
            await aggregates._ask(self, name, {e: {"refs": g} for e, g in groups.items()})
        ).values():
            found.update(answer)
        return found

    async def deployments_by_ref(self, refs: Sequence[DeploymentRef]) -> dict[Any, Any]:
        return await self._by_ref("deployments_by_ref", refs)

    async def steps(self, refs: Sequence[DeploymentRef]) -> dict[Any, Any]:
        return await self._by_ref("steps", refs)

    async def service_rollouts(self, refs: Sequence[DeploymentRef]) -> dict[Any, Any]:
        return await self._by_ref("service_rollouts", refs)

    async def results(self, refs: Sequence[DeploymentRef]) -> dict[Any, Any]:
        return await self._by_ref("results", refs)

    # --- live: subscriptions and the raw log (relay.streams) -----------------------------------

    def _live(self) -> RelayLive:
        if self.live is None:
            raise DeploybotError(ErrorCode.INTERNAL_ERROR, "this relay serves no subscriptions")
        return self.live

    async def raw_log(self, ref: DeploymentRef) -> AsyncIterator[str]:
        return await self._live().raw_log(self, ref)

    async def follow_deployment_logs(self, ref: DeploymentRef, *, after: int) -> LiveSource:
        return await self._live().follow_deployment_logs(self, ref, after=after)

    async def follow_deployment_logs_text(self, ref: DeploymentRef) -> AsyncIterator[str]:
        return await self._live().follow_deployment_logs_text(self, ref)

    async def follow_deployment_progress(self, ref: DeploymentRef) -> LiveSource:
        return await self._live().follow_deployment_progress(self, ref)

    async def follow_deployment_events(
        self, filter: DeploymentFilter | None, *, after: str | None = None
    ) -> LiveSource:
        return await self._live().follow_deployment_events(self, filter, after=after)

    async def follow_application_logs(
        self, application: str, environment: str | None, *, tail: int | None, since: datetime | None
    ) -> LiveSource:
        live = self._live()
        return await live.follow_application_logs(
            self, application, environment, tail=tail, since=since
        )

    # --- aggregated -------------------------------------------------------------------------

    async def count_deployments(self, filter: DeploymentFilter | None) -> int:
        wanted = filter.environments if filter else None
        found = await self._each(self._readable(wanted), "count_deployments", filter=filter)
        return sum(found.values())

    async def deployments(
        self,
        filter: DeploymentFilter | None,
        page: PageRequest,
        *,
        fields: Collection[str] | None = None,
    ) -> Page[DeploymentRecord]:
        """Each environment's page after (or before) its own position, k-way merged."""
        wanted = filter.environments if filter else None
        backwards = page.last is not None and page.first is None
        size = (page.last if backwards else page.first) or 50
        marker = page.before if backwards else page.after
        position, own = paging.decode_relay_cursor(marker) if marker else ({}, None)
        columns = None if fields is None else sorted({*fields, *RECORD_COLUMNS})
        if not backwards:
            page_bounds(page.first, page.last)  # each environment is asked for less
            return await self._forward_page(
                filter, page.descending, size, position, columns, self._readable(wanted), marker
            )
        asks = {
            env: paging.env_page(env, position, own, page, size, backwards)
            for env in self._readable(wanted)
        }
        asks = {env: ask for env, ask in asks.items() if ask is not None}
        calls = {
            env: {"filter": filter, "page": ask, "fields": columns} for env, ask in asks.items()
        }
        pages: dict[str, Page[DeploymentRecord]] = await aggregates._ask(self, "deployments", calls)
        return paging.merge_pages(
            pages, position, page.descending, size, backwards, marker is not None
        )

    async def _forward_page(
        self,
        filter: DeploymentFilter | None,
        descending: bool,
        size: int,
        start: dict[str, int],
        columns: list[str] | None,
        environments: list[str],
        marker: str | None,
    ) -> Page[DeploymentRecord]:
        """`first: size` over k environments: each is asked for its share (size/k and a
        margin), and asked again, after what it sent, only when the merge has used up its
        share while it has more (uneven data). The merge never guesses: the next edge is
        taken only when every environment that may hold it has a row in hand."""
        share = min(size, -(-size // max(len(environments), 1)) + paging.SHARE_MARGIN)
        buffers: dict[str, deque[DeploymentRecord]] = {}
        more: dict[str, bool] = {}
        last: dict[str, int | None] = {env: start.get(env) for env in environments}
        asking = {env: share for env in environments}
        taken: list[DeploymentRecord] = []
        while True:
            if asking:
                calls = {
                    env: {
                        "filter": filter,
                        "page": PageRequest(
                            first=first,
                            after=paging.cursor_after(last[env]),
                            descending=descending,
                        ),
                        "fields": columns,
                    }
                    for env, first in asking.items()
                }
                pages: dict[str, Page[DeploymentRecord]] = await aggregates._ask(
                    self, "deployments", calls
                )
                for env in asking:
                    answered = pages.get(env)
                    nodes = [] if answered is None else [e.node for e in answered.edges]
                    buffers.setdefault(env, deque()).extend(nodes)
                    more[env] = answered is not None and answered.has_next and bool(nodes)
                    if nodes:
                        last[env] = nodes[-1].id
            if len(taken) == size:
                break
            asking = {env: size - len(taken) for env in buffers if not buffers[env] and more[env]}
            if asking:
                continue
            heads = [env for env in buffers if buffers[env]]
            if not heads:
                break
            pick = max if descending else min
            env = pick(heads, key=lambda e: paging.merge_key(buffers[e][0]))
            taken.append(buffers[env].popleft())
        has_next = any(buffers[env] or more[env] for env in buffers)
        position = dict(start)
        edges: list[Edge[DeploymentRecord]] = []
        for record in taken:
            position[record.environment] = record.id
            edges.append(Edge(paging.encode_relay_cursor(position, record.environment), record))
        return Page(edges, has_next=has_next, has_previous=marker is not None)

    # --- aggregated over the environments (relay.aggregates) ----------------------------------

    async def releases(
        self,
        filter: ReleaseFilter | None,
        *,
        first: int | None,
        after: str | None,
        by_release_time: bool,
        descending: bool,
    ) -> Page[ReleaseRecord]:
        return await aggregates.releases(
            self,
            filter,
            first=first,
            after=after,
            by_release_time=by_release_time,
            descending=descending,
        )

    async def count_releases(self, filter: ReleaseFilter | None) -> int:
        return await aggregates.count_releases(self, filter)

    async def latest_release(
        self, component: str, train: str, *, by_semver: bool
    ) -> ReleaseRecord | None:
        return await aggregates.latest_release(self, component, train, by_semver=by_semver)

    async def release(self, ref: ReleaseRef) -> ReleaseRecord | None:
        return await aggregates.release(self, ref)

    async def releases_by_ref(self, refs: Sequence[ReleaseRef]) -> dict[ReleaseRef, ReleaseRecord]:
        return await aggregates.releases_by_ref(self, list(refs))

    async def current_versions(
        self, application: str, environment: str | None
    ) -> list[EnvironmentVersion]:
        return await aggregates.current_versions(self, application, environment)

    async def delivery_metrics(
        self,
        filter: MetricsFilter | None,
        *,
        since: datetime | None,
        until: datetime | None,
        interval: Interval,
    ) -> DeliveryMetrics:
        return await aggregates.delivery_metrics(
            self, filter, since=since, until=until, interval=interval
        )

    async def delivery_samples(
        self, filter: MetricsFilter | None, *, since: datetime | None, until: datetime | None
    ) -> list[DeliverySample]:
        return await aggregates.delivery_samples(self, filter, since=since, until=until)

    async def release_keys(self, filter: ReleaseFilter | None) -> list[tuple[str, str, str]]:
        return await aggregates.release_keys(self, filter)

    async def releases_named(
        self, filter: ReleaseFilter | None, keys: Sequence[tuple[str, str, str]]
    ) -> list[ReleaseRecord]:
        found = await self._each(self._readable(None), "releases_named", filter=filter, keys=keys)
        return [record for env in sorted(found) for record in found[env]]

    # --- routed by their environment argument -----------------------------------------------

    async def secrets(self, application: str, environment: str | None) -> list[SecretRecord]:
        found: list[SecretRecord] = await self._call(
            environment, "secrets", application=application, environment=environment
        )
        return found

    async def set_secret(self, request: SetSecretRequest) -> SecretRecord:
        record: SecretRecord = await self._call(request.environment, "set_secret", request=request)
        return record

    async def delete_secret(self, ref: SecretRef) -> SecretRecord:
        record: SecretRecord = await self._call(ref.environment, "delete_secret", ref=ref)
        return record

    # --- the relay's own: the caller, tokens, audit (relay.elsewhere) ---------------------------

    async def viewer(self) -> ViewerRecord:
        return elsewhere.viewer(self)

    async def may(self, action: Action, application: str | None) -> bool:
        return elsewhere.may(self, action, application)

    async def create_api_token(
        self, name: str, scopes: Sequence[str], expires_at: datetime | None
    ) -> CreatedToken:
        return await elsewhere.create_api_token(self, name, scopes, expires_at)

    async def api_tokens(self) -> list[TokenRecord]:
        return await elsewhere.api_tokens(self)

    async def revoke_api_token(self, token_id: int) -> TokenRecord:
        return await elsewhere.revoke_api_token(self, token_id)

    async def audit_refusal(self, operation: str, message: str) -> None:
        await elsewhere.audit_refusal(self, operation, message)

    async def audit_events(
        self, filter: AuditFilter | None, *, first: int, after: str | None
    ) -> Page[AuditRecord]:
        return await elsewhere.audit_events(self, filter, first=first, after=after)

    # --- kept by each environment's instance: WRONG_ENVIRONMENT (relay.elsewhere) ---------------

    async def deploy_policy(self) -> NoReturn:
        elsewhere.elsewhere(self, "the deploy policy")

    async def update_deploy_policy(self, change: object) -> NoReturn:
        elsewhere.elsewhere(self, "the deploy policy")

    async def publish_release(self, request: object) -> NoReturn:
        elsewhere.elsewhere(self, "publishing a release (to an environment's catalogue)")

    async def create_webhook(self, request: object) -> NoReturn:
        elsewhere.elsewhere(self, "a provider webhook")

    async def webhooks(self) -> NoReturn:
        elsewhere.elsewhere(self, "a provider webhook")

    async def webhook(self, hook_id: int) -> NoReturn:
        elsewhere.elsewhere(self, "a provider webhook")

    async def update_webhook(self, hook_id: int, request: object) -> NoReturn:
        elsewhere.elsewhere(self, "a provider webhook")

    async def delete_webhook(self, hook_id: int) -> NoReturn:
        elsewhere.elsewhere(self, "a provider webhook")

    async def webhook_deliveries(self, hook_id: int, *, first: int) -> NoReturn:
        elsewhere.elsewhere(self, "a provider webhook")

    async def receive_webhook(self, provider: str, hook_id: int, request: object) -> NoReturn:
        elsewhere.elsewhere(self, "a provider webhook")

    async def receive_repository_webhook(
        self, provider: str, repository: str, request: object
    ) -> NoReturn:
        elsewhere.elsewhere(self, "a provider webhook")

    async def provider_deployments(
        self, provider: str, repository: str, page: PageRequest
    ) -> NoReturn:
        elsewhere.elsewhere(self, "a provider's view of its deployments")

    async def provider_deployment(
        self, provider: str, repository: str, ref: DeploymentRef
    ) -> NoReturn:
        elsewhere.elsewhere(self, "a provider's view of its deployments")

    async def create_notification_target(self, request: object) -> NoReturn:
        elsewhere.elsewhere(self, "a notification target")

    async def notification_targets(self) -> NoReturn:
        elsewhere.elsewhere(self, "a notification target")

    async def delete_notification_target(self, target_id: int) -> NoReturn:
        elsewhere.elsewhere(self, "a notification target")

    async def notification_deliveries(self, target_id: int, *, first: int) -> NoReturn:
        elsewhere.elsewhere(self, "a notification target")

    async def deployment_tallies(self) -> NoReturn:
        elsewhere.elsewhere(self, "the Prometheus tallies (/metrics)")

    async def application_page(
        self, environment: str | None, *, state: object, limit: int, offset: int
    ) -> NoReturn:
        elsewhere.elsewhere(self, "the REST application list")


RECORD_COLUMNS = ("state", "strategy", "trigger", "created_at", "updated_at")
"""Read whatever the caller shows: a record's required fields (the merge orders by
`created_at`) travel with the columns the selection names, and nothing else does."""


def _env_of(ref: DeploymentRef) -> str:
    if ref.environment is None:
        raise DeploybotError(
            ErrorCode.INVALID_INPUT, "the relay needs a global ID, not a bare number", field="id"
        )
    return ref.environment
