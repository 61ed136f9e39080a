"""Error codes and the exception the core raises for expected failures.

Expected failures travel as data (`userErrors` in GraphQL, a JSON body over plain
HTTP); anything else is a bug and is masked at the edge.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """Seed 002's codes plus the ones deploybot needs (each equal to its own name)."""

    DEPLOYMENT_NOT_FOUND = "DEPLOYMENT_NOT_FOUND"
    DEPLOYMENT_IN_PROGRESS = "DEPLOYMENT_IN_PROGRESS"
    INVALID_DEPLOYMENT_SPEC = "INVALID_DEPLOYMENT_SPEC"
    ARTIFACT_NOT_FOUND = "ARTIFACT_NOT_FOUND"
    DEPENDENCY_FAILED = "DEPENDENCY_FAILED"
    HEALTH_CHECK_FAILED = "HEALTH_CHECK_FAILED"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"
    BACKUP_NOT_FOUND = "BACKUP_NOT_FOUND"
    BUILD_FAILED = "BUILD_FAILED"
    ROLLOUT_FAILED = "ROLLOUT_FAILED"
    CONVERGE_TIMEOUT = "CONVERGE_TIMEOUT"
    DOCKER_UNAVAILABLE = "DOCKER_UNAVAILABLE"
    RUNNER_LOST = "RUNNER_LOST"
    DEPLOYMENT_FINISHED = "DEPLOYMENT_FINISHED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    INVALID_INPUT = "INVALID_INPUT"
    WRONG_ENVIRONMENT = "WRONG_ENVIRONMENT"
    FORBIDDEN = "FORBIDDEN"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    TOKEN_NOT_FOUND = "TOKEN_NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"
    POLICY_VIOLATION = "POLICY_VIOLATION"
    HOOK_FAILED = "HOOK_FAILED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    """The database cannot be reached right now (restarting): retry shortly."""
    # Releases and deployments recorded from elsewhere (issue 5).
    RELEASE_EXISTS = "RELEASE_EXISTS"
    INVALID_STATE_TRANSITION = "INVALID_STATE_TRANSITION"
    NOT_EXTERNAL = "NOT_EXTERNAL"
    # Secrets deploybot keeps (issue 15).
    SECRET_NOT_FOUND = "SECRET_NOT_FOUND"
    # Provider webhooks and notifications (issue 12).
    WEBHOOK_NOT_FOUND = "WEBHOOK_NOT_FOUND"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    PAYLOAD_INVALID = "PAYLOAD_INVALID"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    NOTIFICATION_TARGET_NOT_FOUND = "NOTIFICATION_TARGET_NOT_FOUND"
    # Limits (issue 10).
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    # The environment relay (issue 13).
    ENVIRONMENT_UNAVAILABLE = "ENVIRONMENT_UNAVAILABLE"


class DeploybotError(Exception):
    """An expected failure: a code, a message, and the input field it concerns (if any)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after
        """Seconds to wait before the same call can succeed (RATE_LIMITED)."""


class ValidationFailed(Exception):
    """Several field errors at once (an input with more than one mistake)."""

    def __init__(self, errors: list[DeploybotError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors
