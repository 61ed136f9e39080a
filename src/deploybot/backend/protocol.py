"""The calls every transport makes: typed inputs in, typed records out.

GraphQL (over HTTP and WebSocket), the raw-log route, provider webhooks, the seeds'
REST routes and the CLI all reach deploybot through a `Backend`. `LocalBackend`
answers from this instance's database, event bus and Swarm; a relay answers the
same calls from the environments' own instances over the network, so no method
takes a session or hands back anything that lives on after the call.

Expected failures are raised as `DeploybotError` (one field) or `ValidationFailed`
(several); each transport turns them into its own shape (userErrors, a GraphQL
error with `extensions.code`, an HTTP 4xx with a JSON body).

Every implementation is bound to one caller (its `Principal`) and checks each call
against the caller's grants: FORBIDDEN for an action the caller lacks, and objects
outside the caller's read scope answer exactly as missing ones (lists leave them out).

References name their environment (`DeploymentRef`, `ReleaseRef`): a reference to
another environment's object is not found here, and a relay routes it there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime
from typing import Any, Protocol

from deploybot.access import Action
from deploybot.core.audit import AuditFilter, AuditRecord
from deploybot.core.policy import PolicyChange, StoredPolicy
from deploybot.core.tokens import CreatedToken, TokenRecord
from deploybot.domain import ApplicationState, DeploymentState, Interval
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
from deploybot.live.hub import LiveSource
from deploybot.records import (
    ApplicationStatus,
    CreatedWebhook,
    DeliveryMetrics,
    DeliverySample,
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
from deploybot.webhooks import HookRequest


class Backend(Protocol):
    # --- deployments: changing them ---------------------------------------------------------

    async def deploy(self, request: DeployRequest) -> DeploymentRecord:
        """Check everything, then queue the deployment (nothing is written on a failure)."""
        ...

    async def validate_deployment(self, request: DeployRequest) -> ValidationReport:
        """Every check of `deploy`, nothing written."""
        ...

    async def rollback(self, request: RollbackRequest) -> DeploymentRecord: ...

    async def cancel_deployment(self, ref: DeploymentRef) -> DeploymentRecord: ...

    async def record_deployment(self, request: RecordRequest) -> DeploymentRecord:
        """A deployment another tool made (trigger EXTERNAL)."""
        ...

    async def report_deployment_status(
        self, ref: DeploymentRef, state: DeploymentState, message: str | None
    ) -> DeploymentRecord: ...

    async def add_deployment_result(
        self, ref: DeploymentRef, data: Any
    ) -> tuple[DeploymentRecord, ResultRecord]: ...

    async def add_recorded_services(
        self, ref: DeploymentRef, services: Sequence[RecordedService]
    ) -> list[ServiceRolloutRecord]:
        """Services (Sponge's packages) added to a recorded deployment afterwards; answers
        all its services."""
        ...

    # --- deployments: reading them ----------------------------------------------------------

    async def deployment(self, ref: DeploymentRef) -> DeploymentRecord | None: ...

    async def deployments(
        self,
        filter: DeploymentFilter | None,
        page: PageRequest,
        *,
        fields: Collection[str] | None = None,
    ) -> Page[DeploymentRecord]:
        """Newest first (or `page.descending=False`), keyset-paginated; `fields` limits what
        is read to what the caller will show."""
        ...

    async def count_deployments(self, filter: DeploymentFilter | None) -> int: ...

    async def deployment_tallies(self) -> list[DeploymentTally]:
        """Deployments here by application, state and trigger (read on the environment)."""
        ...

    async def deployments_by_ref(
        self, refs: Sequence[DeploymentRef]
    ) -> dict[DeploymentRef, DeploymentRecord]:
        """Deployments other objects point at, in one batch (missing ones are left out)."""
        ...

    async def steps(
        self, refs: Sequence[DeploymentRef]
    ) -> dict[DeploymentRef, list[StepRecord]]: ...

    async def service_rollouts(
        self, refs: Sequence[DeploymentRef]
    ) -> dict[DeploymentRef, list[ServiceRolloutRecord]]: ...

    async def results(
        self, refs: Sequence[DeploymentRef]
    ) -> dict[DeploymentRef, list[ResultRecord]]: ...

    async def log_lines(
        self, ref: DeploymentRef, *, after: int, first: int
    ) -> list[LogLineRecord]: ...

    async def count_log_lines(self, ref: DeploymentRef) -> int: ...

    async def raw_log(self, ref: DeploymentRef) -> AsyncIterator[str]:
        """The whole log as text, in chunks (DEPLOYMENT_NOT_FOUND before the first one)."""
        ...

    # --- releases ---------------------------------------------------------------------------

    async def publish_release(self, request: PublishRequest) -> ReleaseRecord: ...

    async def release(self, ref: ReleaseRef) -> ReleaseRecord | None: ...

    async def releases_by_ref(
        self, refs: Sequence[ReleaseRef]
    ) -> dict[ReleaseRef, ReleaseRecord]: ...

    async def releases(
        self,
        filter: ReleaseFilter | None,
        *,
        first: int | None,
        after: str | None,
        by_release_time: bool,
        descending: bool,
    ) -> Page[ReleaseRecord]: ...

    async def count_releases(self, filter: ReleaseFilter | None) -> int: ...

    async def latest_release(
        self, component: str, train: str, *, by_semver: bool
    ) -> ReleaseRecord | None: ...

    async def release_keys(self, filter: ReleaseFilter | None) -> list[tuple[str, str, str]]:
        """(component, train, version) of every readable release matching (a relay counts
        its environments' union with them)."""
        ...

    async def releases_named(
        self, filter: ReleaseFilter | None, keys: Sequence[tuple[str, str, str]]
    ) -> list[ReleaseRecord]:
        """The readable releases among `keys` that match (a relay looks up a release's
        twins on its other environments with it)."""
        ...

    # --- applications and history's views ---------------------------------------------------

    async def application(self, name: str, environment: str | None) -> ApplicationStatus | None: ...

    async def applications(self, environment: str | None) -> list[ApplicationStatus]: ...

    async def application_page(
        self,
        environment: str | None,
        *,
        state: ApplicationState | None,
        limit: int,
        offset: int,
    ) -> tuple[list[ApplicationStatus], int]:
        """Applications by name, offset-paginated (the REST list only; `offset + limit` is
        capped at `MAX_LIST_WINDOW`), and how many match in all."""
        ...

    async def current_versions(
        self, application: str, environment: str | None
    ) -> list[EnvironmentVersion]: ...

    async def delivery_metrics(
        self,
        filter: MetricsFilter | None,
        *,
        since: datetime | None,
        until: datetime | None,
        interval: Interval,
    ) -> DeliveryMetrics: ...

    async def delivery_samples(
        self, filter: MetricsFilter | None, *, since: datetime | None, until: datetime | None
    ) -> list[DeliverySample]:
        """What `delivery_metrics` over the same range reads: a relay computes the metrics of
        its environments' union from them."""
        ...

    # --- the deploy policy (admin) ----------------------------------------------------------

    async def deploy_policy(self) -> StoredPolicy:
        """The policy in force (FORBIDDEN unless the caller is an admin)."""
        ...

    async def update_deploy_policy(self, change: PolicyChange) -> StoredPolicy:
        """Change the policy (FORBIDDEN unless admin; INVALID_INPUT naming the field)."""
        ...

    # --- webhooks (configuration is admin's) ----------------------------------------------

    async def create_webhook(self, request: WebhookRequest) -> CreatedWebhook:
        """The webhook and its secret (the only answer that carries it)."""
        ...

    async def webhooks(self) -> list[WebhookRecord]: ...

    async def webhook(self, hook_id: int) -> WebhookRecord | None: ...

    async def update_webhook(
        self, hook_id: int, request: WebhookRequest
    ) -> tuple[WebhookRecord, str | None]:
        """The webhook, and its new secret when one was given or rotated."""
        ...

    async def delete_webhook(self, hook_id: int) -> WebhookRecord: ...

    async def webhook_deliveries(
        self, hook_id: int, *, first: int
    ) -> list[WebhookDeliveryRecord]: ...

    async def receive_webhook(
        self, provider: str, hook_id: int, request: HookRequest
    ) -> WebhookOutcome:
        """A provider's request, authenticated by its signature; its deploy runs as the hook."""
        ...

    async def receive_repository_webhook(
        self, provider: str, repository: str, request: HookRequest
    ) -> WebhookOutcome:
        """As `receive_webhook`, to the provider's hook for `repository` (owner/name)."""
        ...

    # --- provider-scoped views (seed 000) ----------------------------------------------------

    async def provider_deployments(
        self, provider: str, repository: str, page: PageRequest
    ) -> Page[DeploymentRecord]:
        """Deployments a provider's webhooks made for `repository` (owner/name)."""
        ...

    async def provider_deployment(
        self, provider: str, repository: str, ref: DeploymentRef
    ) -> DeploymentRecord | None: ...

    # --- notifications (admin's) ------------------------------------------------------------

    async def create_notification_target(
        self, request: NotificationTargetRequest
    ) -> NotificationTargetRecord: ...

    async def notification_targets(self) -> list[NotificationTargetRecord]: ...

    async def delete_notification_target(self, target_id: int) -> NotificationTargetRecord: ...

    async def notification_deliveries(
        self, target_id: int, *, first: int
    ) -> list[NotificationDeliveryRecord]:
        """A target's deliveries and how they went, newest first."""
        ...

    # --- live -------------------------------------------------------------------------------

    async def follow_deployment_logs(self, ref: DeploymentRef, *, after: int) -> LiveSource:
        """Log lines (`LogLineRecord`) after `after`, then live, until the deployment ended."""
        ...

    async def follow_deployment_logs_text(self, ref: DeploymentRef) -> AsyncIterator[str]:
        """The raw log's text from the start, then live, until the deployment ended."""
        ...

    async def follow_deployment_progress(self, ref: DeploymentRef) -> LiveSource:
        """Seed 002's progress messages (`Progress`): the current one, then each change."""
        ...

    async def follow_deployment_events(
        self, filter: DeploymentFilter | None, *, after: str | None = None
    ) -> LiveSource:
        """Every deployment created or changing state (`DeploymentChange`) that matches;
        with `after` (an event's cursor), first each one that changed since then."""
        ...

    async def follow_application_logs(
        self,
        application: str,
        environment: str | None,
        *,
        tail: int | None,
        since: datetime | None,
    ) -> LiveSource:
        """The running services' lines (`ServiceLogLine`), recent ones first if asked."""
        ...

    # --- secrets deploybot keeps (action `secrets`, or `admin`) -----------------------------

    async def set_secret(self, request: SetSecretRequest) -> SecretRecord:
        """Store a new value, encrypted; the answer never carries it."""
        ...

    async def delete_secret(self, ref: SecretRef) -> SecretRecord: ...

    async def secrets(self, application: str, environment: str | None) -> list[SecretRecord]:
        """Names, versions and update times of an application's kept secrets."""
        ...

    # --- the caller -------------------------------------------------------------------------

    async def viewer(self) -> ViewerRecord:
        """Who is calling, and their grants (pages use it to offer only what they may do)."""
        ...

    async def may(self, action: Action, application: str | None) -> bool:
        """Whether the caller may `action` on `application` here."""
        ...

    # --- tokens and audit (admin) -----------------------------------------------------------

    async def create_api_token(
        self, name: str, scopes: Sequence[str], expires_at: datetime | None
    ) -> CreatedToken:
        """A new token (its text only in the answer); INVALID_INPUT for a bad scope."""
        ...

    async def api_tokens(self) -> list[TokenRecord]:
        """Every token, revoked and expired ones too; never their secrets."""
        ...

    async def revoke_api_token(self, token_id: int) -> TokenRecord:
        """Revoke (TOKEN_NOT_FOUND for an unknown id)."""
        ...

    async def audit_refusal(self, operation: str, message: str) -> None:
        """Audit a call a transport refused for lack of permission (FORBIDDEN)."""
        ...

    async def audit_events(
        self, filter: AuditFilter | None, *, first: int, after: str | None
    ) -> Page[AuditRecord]:
        """The audit trail, newest first, keyset-paged."""
        ...
