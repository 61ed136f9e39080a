"""The shared GraphQL vocabulary: Node, PageInfo, UserError (GitHub's conventions)."""

from __future__ import annotations

import strawberry

from deploybot.errors import DeploybotError, ValidationFailed
from deploybot.schema.enums import ErrorCode


@strawberry.interface(description="An object with a global ID, fetchable with `node(id:)`.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="An expected failure of a mutation: data, not an exception.")
class UserError:
    field: str | None
    message: str
    code: ErrorCode
    retry_after: int | None = strawberry.field(
        default=None, description="Seconds to wait before trying again (RATE_LIMITED)."
    )

    @classmethod
    def from_exception(cls, exc: DeploybotError | ValidationFailed) -> list[UserError]:
        errors = exc.errors if isinstance(exc, ValidationFailed) else [exc]
        return [
            cls(field=e.field, message=e.message, code=e.code, retry_after=e.retry_after)
            for e in errors
        ]


class PublicError(Exception):
    """A GraphQL error whose message is safe to show (bad ID, bad cursor, bad page size),
    with an error code for clients when there is one (`extensions.code`)."""

    def __init__(
        self,
        message: str,
        code: str | None = ErrorCode.INVALID_INPUT.value,
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after
        """Seconds to wait (RATE_LIMITED): `extensions.retryAfter`."""

    @classmethod
    def from_exception(cls, exc: DeploybotError) -> PublicError:
        return cls(exc.message, exc.code.value, retry_after=exc.retry_after)

    @property
    def extensions(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code} if self.code else {}
        if self.retry_after is not None:
            out["retryAfter"] = self.retry_after
        return out
