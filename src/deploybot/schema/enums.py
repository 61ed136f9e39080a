"""GraphQL enums: the domain's own enums, registered with Strawberry under their names."""

from __future__ import annotations

import enum

import strawberry

from deploybot.domain import (
    ApplicationState,
    DeploymentState,
    DeploymentStrategy,
    DeploymentTrigger,
    Health,
    LogSource,
    LogStream,
    ProgressStatus,
    StepStatus,
)
from deploybot.errors import ErrorCode

for _domain_enum in (
    ApplicationState,
    DeploymentState,
    DeploymentStrategy,
    DeploymentTrigger,
    Health,
    LogSource,
    LogStream,
    ProgressStatus,
    StepStatus,
    ErrorCode,
):
    strawberry.enum(_domain_enum)


@strawberry.enum
class OrderDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.enum(description="Why a deployment event was sent.")
class DeploymentEventKind(enum.Enum):
    CREATED = "CREATED"
    CHANGED = "CHANGED"


@strawberry.enum
class DeploymentOrderField(enum.Enum):
    CREATED_AT = "CREATED_AT"


@strawberry.enum(description="A provider that calls deploybot's webhooks.")
class WebhookProvider(enum.Enum):
    GITHUB = "github"
    GITLAB = "gitlab"
    BITBUCKET = "bitbucket"
    DOCKER_HUB = "dockerhub"
    TRAVIS = "travis"


__all__ = [
    "ApplicationState",
    "DeploymentEventKind",
    "DeploymentOrderField",
    "DeploymentState",
    "DeploymentStrategy",
    "DeploymentTrigger",
    "ErrorCode",
    "Health",
    "LogSource",
    "LogStream",
    "OrderDirection",
    "ProgressStatus",
    "StepStatus",
    "WebhookProvider",
]
