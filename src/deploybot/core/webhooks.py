"""Webhooks: their configuration, and what a verified delivery deploys.

A delivery is answered fast because providers time out (GitHub after 10 s): the hook is
read, the request verified and mapped, and the deployment admitted from the payload's
facts alone (`PayloadSource`: no git fetch, no stack check; the runner does those, and
their errors become the deployment's FAILURE). Redeliveries are recognised by the
provider's delivery id: the delivery row is unique per hook and id, and the deployment
carries an idempotency key made of both, so even two concurrent copies make one
deployment.
"""

from __future__ import annotations

import fnmatch
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from deploybot.config import Settings
from deploybot.core.admission import WriteAlong
from deploybot.core.inspectors import DEFAULT_STACK_FILE, ImageInfo, SourceInfo
from deploybot.core.requests import NAME_RE
from deploybot.db.engine import Database
from deploybot.db.models import webhook_delivery_table, webhook_table
from deploybot.domain import DeploymentTrigger
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.inputs import DeployRequest, WebhookOptions, WebhookRequest
from deploybot.records import (
    CreatedWebhook,
    DeploymentRecord,
    WebhookDeliveryRecord,
    WebhookOutcome,
    WebhookRecord,
)
from deploybot.times import utcnow
from deploybot.webhooks import PROVIDERS, BadPayload, BadSignature, HookEvent, HookRequest
from deploybot.webhooks.base import ProviderName

SHORT_SHA = 7
MAX_DELIVERIES_PAGE = 100


class Outcome:
    DEPLOYED = "DEPLOYED"
    IGNORED = "IGNORED"
    REJECTED = "REJECTED"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hook_path(provider: str, hook_id: int, secret: str | None = None) -> str:
    """The path to paste into the provider; Docker Hub's carries the secret token."""
    path = f"/hooks/{provider}/{hook_id}"
    return f"{path}/{secret}" if provider == ProviderName.DOCKER_HUB and secret else path


# --- configuration ----------------------------------------------------------------------------


def _record(row: Any) -> WebhookRecord:
    return WebhookRecord(
        id=row.id,
        environment=row.environment,
        provider=row.provider,
        repository=row.repository,
        repository_url=row.repository_url,
        application=row.application,
        branches=list(row.branches or []),
        tags=list(row.tags or []),
        options=dict(row.options or {}),
        has_public_key=bool(row.public_key),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _invalid(field: str, message: str) -> DeploybotError:
    return DeploybotError(ErrorCode.INVALID_INPUT, message, field=field)


def _check(values: dict[str, Any]) -> None:
    """The whole configuration as it would be stored (every mistake, each with its field)."""
    errors = []
    provider = values["provider"]
    if not values["repository"] or not values["repository"].strip():
        errors.append(_invalid("repository", "the repository (owner/name) the hook accepts"))
    if not NAME_RE.match(values["application"] or ""):
        errors.append(_invalid("application", "application must be a valid application name"))
    git = provider != ProviderName.DOCKER_HUB
    if git and not values["branches"] and not values["tags"]:
        errors.append(_invalid("branches", "give the branches and/or tags (globs) that deploy"))
    if any(not g.strip() for g in [*values["branches"], *values["tags"]]):
        errors.append(_invalid("branches", "a branch or tag glob must not be empty"))
    if provider == ProviderName.TRAVIS and not values.get("public_key"):
        errors.append(_invalid("publicKey", "a Travis hook needs Travis' public key (PEM)"))
    if values.get("public_key"):
        errors += _key_errors(values["public_key"])
    secret = values["secret"]
    if len(secret) < 16 or len(secret) > 500:
        errors.append(_invalid("secret", "a secret must be 16 to 500 characters"))
    options = WebhookOptions.from_json(values["options"])
    if options.service is not None and not NAME_RE.match(options.service):
        errors.append(_invalid("options.service", "not a service name"))
    if errors:
        raise ValidationFailed(errors)


def _key_errors(pem: str) -> list[DeploybotError]:
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_pem_public_key(pem.encode())
    except ValueError:
        return [_invalid("publicKey", "not a PEM public key")]
    return []


async def create_webhook(
    db: Database, settings: Settings, request: WebhookRequest
) -> CreatedWebhook:
    try:
        provider = ProviderName(request.provider or "")
    except ValueError:
        known = ", ".join(p.value for p in ProviderName)
        raise _invalid("provider", f"provider must be one of {known}") from None
    tags = list(request.tags or [])
    if provider == ProviderName.DOCKER_HUB and not tags:
        tags = ["*"]
    now = utcnow()
    values: dict[str, Any] = dict(
        environment=settings.environment,
        provider=provider.value,
        repository=(request.repository or "").strip(),
        repository_url=request.repository_url,
        application=request.application or "",
        branches=list(request.branches or []),
        tags=tags,
        options=(request.options or WebhookOptions()).to_json(),
        secret=request.secret or new_secret(),
        public_key=request.public_key,
        created_at=now,
        updated_at=now,
    )
    _check(values)
    async with db.transaction() as session:
        statement = insert(webhook_table).values(**values).returning(webhook_table.c.id)
        hook_id = int((await session.execute(statement)).scalar_one())
    found = await get_webhook(db, settings, hook_id)
    assert found is not None
    return CreatedWebhook(found, values["secret"])


async def _row(db: Database, environment: str, hook_id: int) -> Any:
    async with db.connection() as connection:
        query = select(webhook_table).where(
            webhook_table.c.id == hook_id, webhook_table.c.environment == environment
        )
        return (await connection.execute(query)).first()


def _not_found(hook_id: int) -> DeploybotError:
    return DeploybotError(ErrorCode.WEBHOOK_NOT_FOUND, f"no webhook {hook_id} here", field="id")


async def get_webhook(db: Database, settings: Settings, hook_id: int) -> WebhookRecord | None:
    row = await _row(db, settings.environment, hook_id)
    return _record(row) if row is not None else None


async def list_webhooks(db: Database, settings: Settings) -> list[WebhookRecord]:
    async with db.connection() as connection:
        query = (
            select(webhook_table)
            .where(webhook_table.c.environment == settings.environment)
            .order_by(webhook_table.c.id)
        )
        return [_record(row) for row in await connection.execute(query)]


async def update_webhook(
    db: Database, settings: Settings, hook_id: int, request: WebhookRequest
) -> tuple[WebhookRecord, str | None]:
    """Change the fields given; answers the new secret when one was set or rotated."""
    row = await _row(db, settings.environment, hook_id)
    if row is None:
        raise _not_found(hook_id)
    values = dict(row._mapping)
    changes: dict[str, Any] = {
        name: value
        for name, value in (
            ("repository", request.repository),
            ("repository_url", request.repository_url),
            ("application", request.application),
            ("branches", request.branches),
            ("tags", request.tags),
            ("public_key", request.public_key),
        )
        if value is not None
    }
    if request.options is not None:
        changes["options"] = request.options.to_json()
    new_secret_value = request.secret or (new_secret() if request.rotate_secret else None)
    if new_secret_value is not None:
        changes["secret"] = new_secret_value
    values.update(changes)
    _check(values)
    async with db.transaction() as session:
        await session.execute(
            update(webhook_table)
            .where(webhook_table.c.id == hook_id)
            .values(**changes, updated_at=utcnow())
        )
    found = await get_webhook(db, settings, hook_id)
    assert found is not None
    return found, new_secret_value


async def delete_webhook(db: Database, settings: Settings, hook_id: int) -> WebhookRecord:
    found = await get_webhook(db, settings, hook_id)
    if found is None:
        raise _not_found(hook_id)
    async with db.transaction() as session:
        await session.execute(
            delete(webhook_delivery_table).where(webhook_delivery_table.c.webhook_id == hook_id)
        )
        await session.execute(delete(webhook_table).where(webhook_table.c.id == hook_id))
    return found


def _delivery(row: Any, environment: str) -> WebhookDeliveryRecord:
    return WebhookDeliveryRecord(
        id=row.id,
        environment=environment,
        webhook_id=row.webhook_id,
        delivery_key=row.delivery_key,
        event=row.event,
        outcome=row.outcome,
        reason=row.reason,
        deployment_id=row.deployment_id,
        payload=row.payload,
        headers=dict(row.headers or {}),
        received_at=row.received_at,
    )


async def list_deliveries(
    db: Database, settings: Settings, hook_id: int, *, first: int
) -> list[WebhookDeliveryRecord]:
    """Newest first."""
    if not 1 <= first <= MAX_DELIVERIES_PAGE:
        raise _invalid("first", f"first must be 1..{MAX_DELIVERIES_PAGE}")
    if await _row(db, settings.environment, hook_id) is None:
        raise _not_found(hook_id)
    c = webhook_delivery_table.c
    async with db.connection() as connection:
        query = (
            select(webhook_delivery_table)
            .where(c.webhook_id == hook_id)
            .order_by(c.id.desc())
            .limit(first)
        )
        return [_delivery(row, settings.environment) for row in await connection.execute(query)]


# --- receiving --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayloadSource:
    """`SourceInspector` over what the payload says: no I/O, so a delivery is answered in
    milliseconds whatever the repository's size. The runner fetches the commit and reads
    the stack file (and checks its configs and secrets); if the stack builds nothing, its
    build and push steps are skipped."""

    event: HookEvent
    stack_file: str
    committed_at: datetime | None = None

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
        assert sha is not None
        version = ref if self.event.kind == "tag" and ref else sha[:SHORT_SHA]
        message = self.event.commit_message
        return SourceInfo(
            commit_sha=sha,
            ref=ref,
            version=version,
            commit_message=message.strip() if message else None,
            commit_author=self.event.actor,
            committed_at=self.committed_at,
            stack_file=stack_file,
            services=[],
            builds=True,
        )

    async def missing_objects(self, specs: list[dict[str, Any]]) -> list[str]:
        """Rollbacks never come from a payload; nothing to check."""
        return []

    async def inspect_image(self, image: str) -> ImageInfo:
        return ImageInfo(image=image, digest=None, tag=self.event.image_tag)

    async def image_available(self, image: str) -> bool:
        return True


Admit = Callable[[DeployRequest, PayloadSource, WriteAlong], Awaitable[DeploymentRecord]]
"""Admits a deploy request with a source inspector (the backend's, as the hook's principal),
writing the delivery (`WriteAlong`) in the deployment's own transaction."""


def _globs_match(globs: list[str], name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


def why_ignored(row: Any, event: HookEvent, environment: str) -> str | None:
    """Why `event` deploys nothing with this hook's configuration (None: it deploys)."""
    if event.ignored:
        return event.ignored
    if (event.repository or "").lower() != row.repository.lower():
        return f"repository {event.repository!r} is not this hook's ({row.repository!r})"
    ref = event.ref or ""
    if event.kind == "branch" and not _globs_match(row.branches or [], ref):
        return f"branch {ref!r} is not configured to deploy (branches: {row.branches or []})"
    if event.kind in ("tag", "image") and not _globs_match(row.tags or [], ref):
        return f"tag {ref!r} is not configured to deploy (tags: {row.tags or []})"
    if event.kind == "deployment" and event.environment != environment:
        return f"the deployment is for {event.environment!r}; this instance serves {environment!r}"
    if event.kind not in ("branch", "tag", "image", "deployment"):
        return f"{event.kind} events deploy nothing"
    return None


def deploy_request(row: Any, event: HookEvent, key: str) -> DeployRequest:
    """The deploy a hook's event becomes (its `mappedRequest`)."""
    options = WebhookOptions.from_json(row.options or {})
    common: dict[str, Any] = dict(
        application=row.application,
        strategy=options.strategy,
        queue=options.queue,
        trigger=DeploymentTrigger.WEBHOOK,
        provider=row.provider,
        provider_repository=row.repository,
        actor=event.actor,
        idempotency_key=f"webhook:{row.id}:{key}"[:255],
        rollout=options.rollout,
        description=(event.commit_message or "").strip().split("\n", 1)[0][:500] or None,
    )
    if event.kind == "image":
        image = f"{options.image_repository or event.repository}:{event.image_tag}"
        return DeployRequest(image=image, service=options.service or row.application, **common)
    return DeployRequest(
        repository_url=row.repository_url or event.clone_url,
        commit_sha=event.commit_sha,
        ref=event.ref,
        stack_file=options.stack_file,
        **common,
    )


def mapped(request: DeployRequest) -> dict[str, Any]:
    """The deploy input a webhook made, in the GraphQL `DeployInput`'s words."""
    fields = {
        "repositoryUrl": request.repository_url,
        "commitSha": request.commit_sha,
        "ref": request.ref,
        "image": request.image,
        "service": request.service,
        "application": request.application,
        "stackFile": request.stack_file,
        "strategy": request.strategy.value,
        "queue": request.queue,
        "idempotencyKey": request.idempotency_key,
        "rollbackOnFailure": request.rollout.rollback_on_failure,
    }
    return {k: v for k, v in fields.items() if v is not None}


async def _existing(
    db: Database, environment: str, hook_id: int, key: str
) -> WebhookDeliveryRecord | None:
    c = webhook_delivery_table.c
    async with db.connection() as connection:
        query = select(webhook_delivery_table).where(c.webhook_id == hook_id, c.delivery_key == key)
        row = (await connection.execute(query)).first()
    return _delivery(row, environment) if row is not None else None


async def _save(
    db: Database, environment: str, values: dict[str, Any], *, replace_rejected: bool
) -> tuple[WebhookDeliveryRecord, bool]:
    """Write a delivery (or replace the REJECTED one it retries); (the stored one, whether
    it is ours: a concurrent copy of the same delivery may have been first)."""
    try:
        async with db.transaction() as session:
            delivery_id = await _insert(session, values, replace_rejected=replace_rejected)
    except IntegrityError:
        found = await _existing(db, environment, values["webhook_id"], values["delivery_key"])
        assert found is not None
        return found, False
    return _delivery(SimpleNamespace(**values, id=delivery_id), environment), True


async def _insert(session: AsyncSession, values: dict[str, Any], *, replace_rejected: bool) -> int:
    """Insert a delivery (after deleting the REJECTED one it retries); IntegrityError if a
    concurrent copy of it was first."""
    c = webhook_delivery_table.c
    if replace_rejected:
        await session.execute(
            delete(webhook_delivery_table).where(
                c.webhook_id == values["webhook_id"],
                c.delivery_key == values["delivery_key"],
                c.outcome == Outcome.REJECTED,
            )
        )
    statement = insert(webhook_delivery_table).values(**values).returning(c.id)
    return int((await session.execute(statement)).scalar_one())


async def receive(
    db: Database,
    settings: Settings,
    provider: str,
    hook_id: int,
    request: HookRequest,
    admit: Admit,
    get_deployment: Callable[[int], Awaitable[DeploymentRecord | None]],
) -> WebhookOutcome:
    """Verify, de-duplicate, map and admit one delivery.

    WEBHOOK_NOT_FOUND (unknown hook, or another provider's), SIGNATURE_INVALID (nothing is
    written), PAYLOAD_INVALID; a deploy the admission refuses is a REJECTED delivery.
    """
    row = await _row(db, settings.environment, hook_id)
    if row is None or row.provider != provider:
        raise _not_found(hook_id)
    handler = PROVIDERS[ProviderName(provider)]
    try:
        handler.verify(request, row.secret, row.public_key)
    except BadSignature as exc:
        raise DeploybotError(ErrorCode.SIGNATURE_INVALID, str(exc)) from None
    try:
        events = handler.parse(request)
    except BadPayload as exc:
        raise DeploybotError(ErrorCode.PAYLOAD_INVALID, str(exc)) from None
    first = events[0]
    key = first.delivery_id[:255]
    seen = await _existing(db, settings.environment, hook_id, key)
    if seen is not None and seen.outcome != Outcome.REJECTED:
        return await _replayed(seen, get_deployment)
    reasons = [why_ignored(row, event, settings.environment) for event in events]
    chosen = [event for event, reason in zip(events, reasons, strict=True) if reason is None]
    values: dict[str, Any] = dict(
        webhook_id=hook_id,
        delivery_key=key,
        event=first.event[:100],
        payload=first.payload,
        headers=first.headers,
        callback_url=first.callback_url,
        received_at=utcnow(),
        deployment_id=None,
    )
    if not chosen:
        values.update(outcome=Outcome.IGNORED, reason="; ".join(r for r in reasons if r))
        delivery, ours = await _save(
            db, settings.environment, values, replace_rejected=seen is not None
        )
        return WebhookOutcome(delivery, None, duplicate=not ours)
    event = chosen[-1]  # of several changes to deploy, the last one wins
    deploy = deploy_request(row, event, key)
    deploy.mapped_request = mapped(deploy)
    deploy.original_request = {
        "provider": provider,
        "repository": row.repository,
        "event": event.event,
        "headers": event.headers,
        "payload": event.payload,
    }
    options = WebhookOptions.from_json(row.options or {})
    source = PayloadSource(event, options.stack_file or DEFAULT_STACK_FILE)
    saved: list[int] = []

    async def write_delivery(session: AsyncSession, deployment_id: int) -> None:
        """The DEPLOYED delivery, committed with its deployment: one commit before the 202."""
        values.update(
            outcome=Outcome.DEPLOYED,
            reason=f"deployed #{deployment_id}",
            deployment_id=deployment_id,
        )
        saved.append(await _insert(session, values, replace_rejected=seen is not None))

    try:
        deployment = await admit(deploy, source, write_delivery)
    except IntegrityError:
        # A concurrent copy of this delivery was first (nothing of ours was written).
        found = await _existing(db, settings.environment, hook_id, key)
        if found is None:
            raise
        return await _replayed(found, get_deployment)
    except (DeploybotError, ValidationFailed) as exc:
        values.update(outcome=Outcome.REJECTED, reason=str(exc), deployment_id=None)
        await _save(db, settings.environment, values, replace_rejected=seen is not None)
        raise
    delivery = _delivery(SimpleNamespace(**values, id=saved[0]), settings.environment)
    return WebhookOutcome(delivery, deployment, duplicate=False)


async def hook_for(db: Database, settings: Settings, provider: str, repository: str) -> int:
    """The (first) webhook of a provider for a repository: seed 000's
    `POST /{provider}/{owner}/{repo}/deploy` names the repository, not the hook."""
    c = webhook_table.c
    async with db.connection() as connection:
        query = (
            select(c.id)
            .where(
                c.environment == settings.environment,
                c.provider == provider,
                c.repository == repository,
            )
            .order_by(c.id)
            .limit(1)
        )
        found = (await connection.execute(query)).scalar()
    if found is None:
        raise DeploybotError(
            ErrorCode.WEBHOOK_NOT_FOUND, f"no {provider} webhook for {repository} here"
        )
    return int(found)


async def _replayed(
    seen: WebhookDeliveryRecord,
    get_deployment: Callable[[int], Awaitable[DeploymentRecord | None]],
) -> WebhookOutcome:
    deployment = await get_deployment(seen.deployment_id) if seen.deployment_id else None
    return WebhookOutcome(seen, deployment, duplicate=True)


async def callback_of(db: Database, deployment_id: int) -> str | None:
    """The Docker Hub callback URL of the delivery that made a deployment, if any."""
    c = webhook_delivery_table.c
    async with db.connection() as connection:
        query = select(c.callback_url).where(
            c.deployment_id == deployment_id, c.callback_url.is_not(None)
        )
        url: str | None = (await connection.execute(query.limit(1))).scalar()
    return url
