"""Subscriptions: each resolver checks its arguments, prepares a live feed and returns it
as a `LiveStream` (the WebSocket endpoint multiplexes it among subscribers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import strawberry

from deploybot.core import feeds
from deploybot.core.feeds import Batch, DeploymentChange
from deploybot.core.filters import check_filter, matches
from deploybot.core.progress import Progress
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.ids import encode_id
from deploybot.resolvers.deployments import deployment_number
from deploybot.schema.common import PublicError
from deploybot.schema.context import Info
from deploybot.schema.deployments import Deployment, DeploymentFilter, DeploymentId, LogLine
from deploybot.schema.enums import DeploymentEventKind
from deploybot.schema.subscriptions import (
    ApplicationLogChunk,
    ApplicationLogLine,
    DeploymentEvent,
    DeploymentLogChunk,
    DeploymentProgress,
)
from deploybot.subscriptions.multiplex import LiveStream

MAX_TAIL = 10_000


async def _prepare(info: Info, feed: feeds.Feed) -> None:
    try:
        await info.context.services.hub.prepare(feed)
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc


def _number(info: Info, id: str) -> int:
    number = deployment_number(id, info.context.settings.environment)
    if number is None:
        raise PublicError(f"deployment {id} not found", ErrorCode.DEPLOYMENT_NOT_FOUND.value)
    return number


async def deployment_logs(
    info: Info,
    id: DeploymentId,
    after: Annotated[
        int | None, strawberry.argument(description="Start after this sequence (the last seen).")
    ] = None,
) -> AsyncIterator[DeploymentLogChunk]:
    if after is not None and after < 0:
        raise PublicError("after must be 0 or more", ErrorCode.INVALID_INPUT.value)
    number = _number(info, id)
    services = info.context.services
    feed = feeds.DeploymentLogFeed(services.db, services.bus, number)
    await _prepare(info, feed)
    gid = strawberry.ID(encode_id("Deployment", services.settings.environment, number))

    def payloads(batch: Batch) -> list[DeploymentLogChunk]:
        if not batch.items:
            return []
        lines = [LogLine.from_row(line) for line in batch.items]
        return [
            DeploymentLogChunk(deployment_id=gid, lines=lines, last_sequence=lines[-1].sequence)
        ]

    return LiveStream(services.hub, feed, payloads, cursor=after or 0)


def _progress(gid: strawberry.ID, progress: Progress) -> DeploymentProgress:
    return DeploymentProgress(
        deployment_id=gid,
        state=progress.state,
        step=progress.step,
        status=progress.status,
        message=progress.message,
        percentage=progress.percentage,
        timestamp=progress.timestamp,
    )


async def deployment_progress(info: Info, id: DeploymentId) -> AsyncIterator[DeploymentProgress]:
    number = _number(info, id)
    services = info.context.services
    feed = feeds.DeploymentProgressFeed(services.db, services.bus, number)
    await _prepare(info, feed)
    gid = strawberry.ID(encode_id("Deployment", services.settings.environment, number))
    return LiveStream(services.hub, feed, lambda batch: [_progress(gid, p) for p in batch.items])


async def deployment_events(
    info: Info, filter: DeploymentFilter | None = None
) -> AsyncIterator[DeploymentEvent]:
    flt = filter.to_core() if filter else None
    try:
        check_filter(flt)
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc
    services = info.context.services
    base_url = info.context.base_url
    feed = feeds.DeploymentEventFeed(services.db, services.bus)

    def payloads(batch: Batch) -> list[DeploymentEvent]:
        out = []
        for change in batch.items:
            assert isinstance(change, DeploymentChange)
            row = change.deployment
            if matches(flt, row):
                out.append(
                    DeploymentEvent(
                        kind=DeploymentEventKind[change.kind.upper()],
                        state=change.state,
                        deployment=Deployment.from_row(row, base_url),
                    )
                )
        return out

    return LiveStream(services.hub, feed, payloads)


async def application_logs(
    info: Info,
    application: str,
    environment: str | None = None,
    tail: Annotated[
        int | None, strawberry.argument(description="First send this many recent lines.")
    ] = None,
    since: Annotated[
        datetime | None, strawberry.argument(description="First send the lines since then.")
    ] = None,
) -> AsyncIterator[ApplicationLogChunk]:
    services = info.context.services
    env = environment or services.settings.environment
    if env != services.settings.environment:
        raise PublicError(
            f"this instance serves {services.settings.environment!r}, not {env!r}",
            ErrorCode.WRONG_ENVIRONMENT.value,
        )
    if tail is not None and not 0 <= tail <= MAX_TAIL:
        raise PublicError(f"tail must be 0..{MAX_TAIL}", ErrorCode.INVALID_INPUT.value)
    source = services.service_logs
    if source is None:
        raise PublicError("this server has no Docker access", ErrorCode.DOCKER_UNAVAILABLE.value)
    feed = feeds.ApplicationLogFeed(source, application, env)
    await _prepare(info, feed)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)

    async def initial(_cursor: int | None) -> Batch | None:
        if not tail and since is None:
            return None
        lines = await source.tail(application, tail=tail, since=since)
        return Batch(lines) if lines else None

    def payloads(batch: Batch) -> list[ApplicationLogChunk]:
        if not batch.items:
            return []
        lines = [
            ApplicationLogLine(
                service=line.service,
                task=line.task,
                timestamp=line.timestamp,
                stream=line.stream,
                text=line.text,
            )
            for line in batch.items
        ]
        return [ApplicationLogChunk(application=application, environment=env, lines=lines)]

    return LiveStream(services.hub, feed, payloads, initial=initial)
