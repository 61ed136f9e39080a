"""Subscriptions: each resolver asks the backend for a live source and returns it as a
`LiveStream` with how a batch becomes the field's values (the WebSocket endpoint
multiplexes it among subscribers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from datetime import datetime
from typing import Annotated

import strawberry

from deploybot.core.feeds import event_cursor
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.ids import encode_id
from deploybot.inputs import DeploymentRef
from deploybot.live.feed import Batch
from deploybot.live.hub import LiveSource, LiveStream
from deploybot.records import DeploymentChange, Progress
from deploybot.resolvers.deployments import deployment_ref
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


def _ref(id: str) -> DeploymentRef:
    ref = deployment_ref(id)
    if ref is None:
        raise PublicError(f"deployment {id} not found", ErrorCode.DEPLOYMENT_NOT_FOUND.value)
    return ref


async def _live(started: Awaitable[LiveSource]) -> LiveSource:
    """The backend's live source, its expected failures as GraphQL errors with a code."""
    try:
        return await started
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc


def _deployment_id(source: LiveSource, ref: DeploymentRef) -> strawberry.ID:
    return strawberry.ID(encode_id("Deployment", source.environment, ref.number))


async def deployment_logs(
    info: Info,
    id: DeploymentId,
    after: Annotated[
        int | None, strawberry.argument(description="Start after this sequence (the last seen).")
    ] = None,
) -> AsyncIterator[DeploymentLogChunk]:
    if after is not None and after < 0:
        raise PublicError("after must be 0 or more", ErrorCode.INVALID_INPUT.value)
    ref = _ref(id)
    source = await _live(info.context.backend.follow_deployment_logs(ref, after=after or 0))
    gid = _deployment_id(source, ref)

    def payloads(batch: Batch) -> list[DeploymentLogChunk]:
        if not batch.items:
            return []
        lines = [LogLine.from_record(line) for line in batch.items]
        return [
            DeploymentLogChunk(deployment_id=gid, lines=lines, last_sequence=lines[-1].sequence)
        ]

    return LiveStream(source, payloads)


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
    ref = _ref(id)
    source = await _live(info.context.backend.follow_deployment_progress(ref))
    gid = _deployment_id(source, ref)
    return LiveStream(source, lambda batch: [_progress(gid, p) for p in batch.items])


async def deployment_events(
    info: Info,
    filter: DeploymentFilter | None = None,
    after: Annotated[
        str | None,
        strawberry.argument(
            description="Resume after this event's `cursor`: the deployments changed since "
            "then come first (each once, as it is now), then live events."
        ),
    ] = None,
) -> AsyncIterator[DeploymentEvent]:
    flt = filter.to_core() if filter else None
    source = await _live(info.context.backend.follow_deployment_events(flt, after=after))
    base_url = info.context.base_url

    def payloads(batch: Batch) -> list[DeploymentEvent]:
        out = []
        for change in batch.items:
            assert isinstance(change, DeploymentChange)
            out.append(
                DeploymentEvent(
                    kind=DeploymentEventKind[change.kind.upper()],
                    state=change.state,
                    deployment=Deployment.from_record(change.deployment, base_url),
                    cursor=event_cursor(change.deployment),
                )
            )
        return out

    return LiveStream(source, payloads)


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
    source = await _live(
        info.context.backend.follow_application_logs(
            application, environment, tail=tail, since=since
        )
    )
    env = source.environment

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

    return LiveStream(source, payloads)
