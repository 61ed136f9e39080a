"""Notifications out: on each deployment state change a target's filter matches, POST JSON
signed with `X-Deploybot-Signature-256` (GitHub's scheme), retried with exponential backoff.

The `Notifier` is a background task reading the event bus: publishing never waits for it,
so a slow or dead receiver never slows a deployment or the API. It writes one delivery row
per target and state change (unique, so API replicas that all heard the event make one),
then sends due rows; each try is recorded (attempts, last status or error, next try).
Docker Hub's `callback_url` is one more delivery, made when the deployment ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from deploybot.config import Settings
from deploybot.core.webhooks import callback_of
from deploybot.db.engine import Database
from deploybot.db.models import (
    deployment_table,
    notification_delivery_table,
    notification_target_table,
)
from deploybot.db.retry import log_failure
from deploybot.domain import DeploymentState
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.events.bus import EventBus
from deploybot.ids import encode_id
from deploybot.inputs import NotificationTargetRequest
from deploybot.records import (
    DeploymentRecord,
    NotificationDeliveryRecord,
    NotificationTargetRecord,
)
from deploybot.times import utcnow
from deploybot.webhooks.base import ProviderName, sign_sha256

logger = logging.getLogger(__name__)

FORMATS = ("GENERIC", "SLACK")
FINAL_STATES = frozenset(
    {
        DeploymentState.SUCCESS,
        DeploymentState.FAILURE,
        DeploymentState.ERROR,
        DeploymentState.ROLLED_BACK,
        DeploymentState.CANCELLED,
    }
)
MAX_PAGE = 100
SEND_BATCH = 50


class Status:
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


# --- targets ----------------------------------------------------------------------------------


def _target(row: Any) -> NotificationTargetRecord:
    return NotificationTargetRecord(
        id=row.id,
        environment=row.environment,
        url=row.url,
        applications=list(row.applications or []),
        states=list(row.states or []),
        format=row.format,
        has_secret=bool(row.secret),
        created_at=row.created_at,
    )


def _invalid(field: str, message: str) -> DeploybotError:
    return DeploybotError(ErrorCode.INVALID_INPUT, message, field=field)


async def create_target(
    db: Database, settings: Settings, request: NotificationTargetRequest
) -> NotificationTargetRecord:
    errors = []
    if not request.url.startswith(("http://", "https://")) or len(request.url) > 2000:
        errors.append(_invalid("url", "url must be an http(s) URL"))
    if request.format not in FORMATS:
        errors.append(_invalid("format", f"format must be one of {', '.join(FORMATS)}"))
    if request.secret is not None and not 16 <= len(request.secret) <= 500:
        errors.append(_invalid("secret", "a secret must be 16 to 500 characters"))
    if errors:
        raise ValidationFailed(errors)
    values = dict(
        environment=settings.environment,
        url=request.url,
        applications=list(request.applications),
        states=[s.value for s in request.states],
        format=request.format,
        secret=request.secret,
        created_at=utcnow(),
    )
    async with db.transaction() as session:
        statement = insert(notification_target_table).values(**values)
        target_id = (
            await session.execute(statement.returning(notification_target_table.c.id))
        ).scalar_one()
    found = await get_target(db, settings, int(target_id))
    assert found is not None
    return found


async def get_target(
    db: Database, settings: Settings, target_id: int
) -> NotificationTargetRecord | None:
    c = notification_target_table.c
    async with db.connection() as connection:
        query = select(notification_target_table).where(
            c.id == target_id, c.environment == settings.environment
        )
        row = (await connection.execute(query)).first()
    return _target(row) if row is not None else None


async def list_targets(db: Database, settings: Settings) -> list[NotificationTargetRecord]:
    c = notification_target_table.c
    async with db.connection() as connection:
        query = (
            select(notification_target_table)
            .where(c.environment == settings.environment)
            .order_by(c.id)
        )
        return [_target(row) for row in await connection.execute(query)]


def _no_target(target_id: int) -> DeploybotError:
    return DeploybotError(
        ErrorCode.NOTIFICATION_TARGET_NOT_FOUND, f"no notification target {target_id}", field="id"
    )


async def delete_target(
    db: Database, settings: Settings, target_id: int
) -> NotificationTargetRecord:
    found = await get_target(db, settings, target_id)
    if found is None:
        raise _no_target(target_id)
    async with db.transaction() as session:
        await session.execute(
            delete(notification_delivery_table).where(
                notification_delivery_table.c.target_id == target_id
            )
        )
        await session.execute(
            delete(notification_target_table).where(notification_target_table.c.id == target_id)
        )
    return found


def _delivery(row: Any, environment: str) -> NotificationDeliveryRecord:
    return NotificationDeliveryRecord(
        id=row.id,
        environment=environment,
        delivery_uuid=row.delivery_uuid,
        target_id=row.target_id,
        url=row.url,
        deployment_id=row.deployment_id,
        state=row.state,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


async def list_deliveries(
    db: Database, settings: Settings, target_id: int, *, first: int
) -> list[NotificationDeliveryRecord]:
    """A target's deliveries, newest first."""
    if not 1 <= first <= MAX_PAGE:
        raise _invalid("first", f"first must be 1..{MAX_PAGE}")
    if await get_target(db, settings, target_id) is None:
        raise _no_target(target_id)
    c = notification_delivery_table.c
    async with db.connection() as connection:
        query = (
            select(notification_delivery_table)
            .where(c.target_id == target_id)
            .order_by(c.id.desc())
            .limit(first)
        )
        return [_delivery(row, settings.environment) for row in await connection.execute(query)]


# --- what is sent -----------------------------------------------------------------------------


def deployment_json(record: DeploymentRecord, base_url: str) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": encode_id("Deployment", record.environment, record.id),
        "number": record.id,
        "application": record.application,
        "environment": record.environment,
        "state": record.state.value,
        "version": record.version,
        "previousVersion": record.previous_version,
        "repositoryUrl": record.repository_url,
        "ref": record.ref,
        "commitSha": record.commit_sha,
        "image": record.image,
        "trigger": record.trigger.value,
        "provider": record.provider,
        "actor": record.actor,
        "errorCode": record.error_code.value if record.error_code else None,
        "errorMessage": record.error_message,
        "createdAt": when(record.created_at),
        "startedAt": when(record.started_at),
        "finishedAt": when(record.finished_at),
        "logsUrl": f"{base_url}/deployments/{record.id}/logs",
    }


def notification_body(
    record: DeploymentRecord, fmt: str, delivery_uuid: str, base_url: str
) -> dict[str, Any]:
    links = {
        "logs": f"{base_url}/deployments/{record.id}/logs",
        "graphql": f"{base_url}/graphql",
    }
    if fmt == "SLACK":
        application = record.application or "(no application)"
        what = f"{application} #{record.id} ({record.version or '?'}) on {record.environment}"
        error = f": {record.error_message}" if record.error_message else ""
        return {"text": f"{what} is {record.state.value}{error} <{links['logs']}|logs>"}
    return {
        "event": "deployment.state",
        "deliveryId": delivery_uuid,
        "state": record.state.value,
        "deployment": deployment_json(record, base_url),
        "links": links,
    }


def docker_hub_callback(record: DeploymentRecord, base_url: str) -> dict[str, Any]:
    """Docker Hub's callback body: state success, failure or error."""
    state = {DeploymentState.SUCCESS: "success", DeploymentState.ERROR: "error"}.get(
        record.state, "failure"
    )
    return {
        "state": state,
        "description": f"deploybot deployment #{record.id}: {record.state.value}"[:255],
        "context": "deploybot",
        "target_url": f"{base_url}/deployments/{record.id}/logs",
    }


def _matches(target: Any, record: DeploymentRecord) -> bool:
    apps, states = target.applications or [], target.states or []
    return (not apps or record.application in apps) and (not states or record.state.value in states)


async def enqueue(db: Database, settings: Settings, deployment_id: int, state: str) -> int:
    """The deliveries one state change makes (targets that match, Docker Hub's callback);
    answers how many were new."""
    final = DeploymentState(state) in FINAL_STATES
    async with db.connection() as connection:  # one connection for both reads
        targets = list(
            await connection.execute(
                select(notification_target_table).where(
                    notification_target_table.c.environment == settings.environment
                )
            )
        )
        if not targets and not final:
            return 0  # nothing to tell anyone: no need to read the deployment
        found = (
            await connection.execute(
                select(deployment_table).where(deployment_table.c.id == deployment_id)
            )
        ).first()
    record = DeploymentRecord.of(found._mapping) if found is not None else None
    if record is None or record.state.value != state:
        return 0  # gone, or already in another state: that change has its own event
    base = settings.public_url.rstrip("/")
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for target in targets:
        if not _matches(target, record):
            continue
        delivery_uuid = str(uuid.uuid4())
        rows.append(
            dict(
                delivery_uuid=delivery_uuid,
                dedup_key=f"target:{target.id}:{record.id}:{state}",
                target_id=target.id,
                url=target.url,
                body=notification_body(record, target.format, delivery_uuid, base),
            )
        )
    if final and record.provider == ProviderName.DOCKER_HUB:  # only its hooks call back
        callback = await callback_of(db, record.id)
        if callback:
            rows.append(
                dict(
                    delivery_uuid=str(uuid.uuid4()),
                    dedup_key=f"callback:{record.id}",
                    target_id=None,
                    url=callback,
                    body=docker_hub_callback(record, base),
                )
            )
    made = 0
    for row in rows:
        row.update(
            deployment_id=record.id,
            state=state,
            status=Status.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        try:
            async with db.transaction() as session:
                await session.execute(insert(notification_delivery_table).values(**row))
            made += 1
        except IntegrityError:
            pass  # another process already made this one
    return made


# --- sending ----------------------------------------------------------------------------------


class Notifier:
    """Reads the bus, writes deliveries, sends the due ones; never blocks a publisher."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        settings: Settings,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.settings = settings
        self.http = http or httpx.AsyncClient(timeout=settings.notify_timeout)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._listen(ready)),
            asyncio.create_task(self._send_loop()),
        ]
        await ready.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.http.aclose()

    async def _listen(self, ready: asyncio.Event) -> None:
        async with self.bus.subscribe() as subscription:
            ready.set()
            heard_until = utcnow()
            while True:
                event = await subscription.queue.get()
                if subscription.overflowed:
                    # Events were dropped: what changed since is in the database.
                    subscription.overflowed = False
                    await self._catch_up(heard_until)
                heard_until = utcnow()
                if event.kind not in ("created", "changed") or event.state is None:
                    continue
                await self._enqueue(event.deployment_id, event.state)

    async def _enqueue(self, deployment_id: int, state: str) -> None:
        try:
            if await enqueue(self.db, self.settings, deployment_id, state):
                self._wake.set()
        except Exception:
            logger.exception("could not queue notifications of #%s (%s)", deployment_id, state)

    async def _catch_up(self, since: datetime) -> None:
        """The current state of every deployment changed since `since` (a margin early)."""
        c = deployment_table.c
        async with self.db.connection() as connection:
            changed = list(
                await connection.execute(
                    select(c.id, c.state).where(
                        c.environment == self.settings.environment,
                        c.updated_at >= since - timedelta(seconds=5),
                    )
                )
            )
        for row in changed:
            await self._enqueue(int(row.id), row.state.value)

    async def _send_loop(self) -> None:
        while True:
            try:
                sent = await self.send_due()
            except Exception as exc:
                log_failure(logger, "notification sending failed", exc)
                sent = 0
            if sent:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(1.0, self._backoff(1)))

    def _backoff(self, attempts: int) -> float:
        return float(self.settings.notify_backoff * 2 ** (attempts - 1))

    async def send_due(self) -> int:
        """Claim and send the deliveries whose time has come; answers how many were tried."""
        now = utcnow()
        c = notification_delivery_table.c
        async with self.db.connection() as connection:
            due = list(
                await connection.execute(
                    select(notification_delivery_table)
                    .where(c.status == Status.PENDING, c.next_attempt_at <= now)
                    .order_by(c.next_attempt_at)
                    .limit(SEND_BATCH)
                )
            )
        lease = now + timedelta(seconds=self.settings.notify_timeout * 2)
        claimed = []
        for row in due:
            async with self.db.transaction() as session:
                result = await session.execute(
                    update(notification_delivery_table)
                    .where(c.id == row.id, c.status == Status.PENDING, c.next_attempt_at <= now)
                    .values(next_attempt_at=lease)
                )
            if result.rowcount:  # type: ignore[attr-defined]
                claimed.append(row)
        await asyncio.gather(*(self._send(row) for row in claimed))
        return len(claimed)

    async def _secret(self, target_id: int | None) -> str | None:
        if target_id is None:
            return None
        async with self.db.connection() as connection:
            query = select(notification_target_table.c.secret).where(
                notification_target_table.c.id == target_id
            )
            secret: str | None = (await connection.execute(query)).scalar()
        return secret

    async def _send(self, row: Any) -> None:
        body = orjson.dumps(row.body)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "deploybot-notifications",
            "X-Deploybot-Event": "deployment",
            "X-Deploybot-Delivery": row.delivery_uuid,
        }
        secret = await self._secret(row.target_id)
        if secret:
            headers["X-Deploybot-Signature-256"] = sign_sha256(secret, body)
        status_code: int | None = None
        error: str | None = None
        try:
            response = await self.http.post(row.url, content=body, headers=headers)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"answered {status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        await self._record(row, status_code, error)

    async def _record(self, row: Any, status_code: int | None, error: str | None) -> None:
        attempts = row.attempts + 1
        now = utcnow()
        values: dict[str, Any] = dict(
            attempts=attempts, last_status_code=status_code, last_error=error
        )
        if error is None:
            values.update(status=Status.DELIVERED, delivered_at=now, next_attempt_at=None)
        elif attempts >= self.settings.notify_attempts:
            values.update(status=Status.FAILED, next_attempt_at=None)
        else:
            values.update(next_attempt_at=now + timedelta(seconds=self._backoff(attempts)))
        async with self.db.transaction() as session:
            await session.execute(
                update(notification_delivery_table)
                .where(notification_delivery_table.c.id == row.id)
                .values(**values)
            )
