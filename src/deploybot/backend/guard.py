"""The permission check every backend call makes before it touches anything.

Transports authenticate; the backend authorizes, so GraphQL over HTTP and WebSocket, the
raw-log route, webhooks, the REST routes, the relay and the CLI all get the same answer.
An object outside the caller's read scope answers exactly as a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploybot.access import ANY_REPOSITORY, Action, Principal
from deploybot.errors import DeploybotError, ErrorCode


@dataclass(frozen=True)
class Guard:
    principal: Principal
    environment: str

    def may(
        self,
        action: Action,
        application: str | None = None,
        repository: str | type[ANY_REPOSITORY] | None = ANY_REPOSITORY,
    ) -> bool:
        return self.principal.allows(action, self.environment, application, repository)

    def require(
        self,
        action: Action,
        application: str | None = None,
        repository: str | type[ANY_REPOSITORY] | None = ANY_REPOSITORY,
        *,
        field: str | None = None,
    ) -> None:
        """FORBIDDEN unless the caller may `action` on this target."""
        if not self.may(action, application, repository):
            what = f"{action.value} on {self.environment}" + (
                f"/{application}" if application else ""
            )
            raise DeploybotError(ErrorCode.FORBIDDEN, f"this token may not {what}", field=field)

    def require_anywhere(self, action: Action) -> None:
        """FORBIDDEN unless some grant gives `action` here (the answer is then filtered)."""
        if not self.principal.scopes(action, self.environment):
            raise DeploybotError(
                ErrorCode.FORBIDDEN, f"this token may not {action.value} on {self.environment}"
            )
