"""GraphQL enums: the domain's enums, exposed under their own names."""

from __future__ import annotations

import enum

import strawberry

from deploybot import domain, errors

DeploymentState = strawberry.enum(domain.DeploymentState, name="DeploymentState")
DeploymentTrigger = strawberry.enum(domain.DeploymentTrigger, name="DeploymentTrigger")
DeploymentStrategy = strawberry.enum(domain.DeploymentStrategy, name="DeploymentStrategy")
StepStatus = strawberry.enum(domain.StepStatus, name="StepStatus")
LogSource = strawberry.enum(domain.LogSource, name="LogSource")
LogStream = strawberry.enum(domain.LogStream, name="LogStream")
ApplicationState = strawberry.enum(domain.ApplicationState, name="ApplicationState")
Health = strawberry.enum(domain.Health, name="Health")
ErrorCode = strawberry.enum(errors.ErrorCode, name="ErrorCode")


@strawberry.enum
class OrderDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.enum
class DeploymentOrderField(enum.Enum):
    CREATED_AT = "CREATED_AT"
