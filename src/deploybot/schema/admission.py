"""GraphQL types of admission: validating a deploy request, cancelling a deployment."""

from __future__ import annotations

import strawberry

from deploybot import records
from deploybot.schema.common import UserError
from deploybot.schema.deployments import Deployment
from deploybot.schema.enums import ErrorCode

IssueSeverity = strawberry.enum(records.Severity, name="IssueSeverity")


@strawberry.type(description="A problem validation found; ERROR issues would refuse the deploy.")
class ValidationIssue:
    field: str | None
    message: str
    severity: IssueSeverity  # type: ignore[valid-type]
    code: ErrorCode | None = strawberry.field(description="What deploy would answer (errors).")

    @classmethod
    def of(cls, issue: records.Issue) -> ValidationIssue:
        return cls(
            field=issue.field, message=issue.message, severity=issue.severity, code=issue.code
        )


@strawberry.type(description="Seed 002's validate: would `deploy` accept this request now?")
class DeploymentValidation:
    valid: bool
    issues: list[ValidationIssue] = strawberry.field(description="Errors and warnings.")
    warnings: list[ValidationIssue] = strawberry.field(
        description="The issues that would not stop the deploy."
    )

    @classmethod
    def of(cls, report: records.ValidationReport) -> DeploymentValidation:
        return cls(
            valid=report.valid,
            issues=[ValidationIssue.of(i) for i in report.issues],
            warnings=[ValidationIssue.of(i) for i in report.warnings],
        )


@strawberry.input(description="Cancel a queued or running deployment.")
class CancelDeploymentInput:
    id: strawberry.ID = strawberry.field(description="A global ID, or the deployment's number.")
    client_mutation_id: str | None = None


@strawberry.type
class CancelDeploymentPayload:
    deployment: Deployment | None = strawberry.field(
        description="CANCELLED at once if it was queued; a running one shows cancelRequestedAt"
        " and becomes CANCELLED when its runner has stopped it."
    )
    user_errors: list[UserError]
    client_mutation_id: str | None
