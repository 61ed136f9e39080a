"""Types the subscriptions deliver: log chunks, progress messages, deployment events,
application log chunks. Lines come in chunks (one per batch of about 100 ms), so
a busy log costs one message per subscriber per batch, not one per line."""

from __future__ import annotations

from datetime import datetime

import strawberry

from deploybot.schema.deployments import Deployment, LogLine
from deploybot.schema.enums import (
    DeploymentEventKind,
    DeploymentState,
    LogStream,
    ProgressStatus,
)


@strawberry.type(description="Consecutive lines of a deployment's log.")
class DeploymentLogChunk:
    deployment_id: strawberry.ID
    lines: list[LogLine]
    last_sequence: int = strawberry.field(
        description="The sequence of the last line sent so far: reconnect with `after:` it."
    )


@strawberry.type(description="Seed 002's progress message: where a deployment is now.")
class DeploymentProgress:
    deployment_id: strawberry.ID
    state: DeploymentState
    step: str | None = strawberry.field(description="The step running, or the last one to end.")
    status: ProgressStatus
    message: str
    percentage: int = strawberry.field(description="Share of the steps that have ended, 0-100.")
    timestamp: datetime


@strawberry.type(description="A deployment was created or changed state.")
class DeploymentEvent:
    kind: DeploymentEventKind
    state: DeploymentState
    deployment: Deployment
    cursor: str = strawberry.field(
        description="Where this event stands: pass it as `after` to resume the "
        "subscription; every deployment changed since then is sent first, as it is now."
    )


@strawberry.type(description="A line a running service printed.")
class ApplicationLogLine:
    service: str
    task: str | None = strawberry.field(description="The Swarm task (container) it came from.")
    timestamp: datetime
    stream: LogStream
    text: str


@strawberry.type(description="Lines of an application's running services.")
class ApplicationLogChunk:
    application: str
    environment: str
    lines: list[ApplicationLogLine]
