"""The permission check every backend call makes before it touches anything.

Transports authenticate; the backend authorizes, so GraphQL over HTTP and WebSocket, the
raw-log route, webhooks, the REST routes, the relay and the CLI all get the same answer.
An object outside the caller's read scope answers exactly as a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploybot.access import ANY_REPOSITORY, Action, Principal
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.filters import Condition, Scope, globs_condition


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

    def scope(
        self,
        action: Action = Action.READ,
        *,
        application_column: str = "application",
        repository_column: str | None = "repository_url",
    ) -> Scope | None:
        """The rows of this environment the caller may `action`, as filter conditions: None
        when every one, an empty scope when none (lists are then empty, not refused).

        `repository_column` None: the table has no repository, so grants limited to some
        repositories give nothing there."""
        groups: list[tuple[Condition, ...]] = []
        for grant in self.principal.grants:
            if not grant.gives(action) or not grant.covers_environment(self.environment):
                continue
            group: list[Condition] = []
            apps = globs_condition(application_column, grant.applications)
            if apps is not None:
                group.append(apps)
            if grant.repositories != ("*",):
                if repository_column is None:
                    continue
                repos = globs_condition(repository_column, grant.repositories)
                if repos is not None:
                    group.append(repos)
            if not group:
                return None
            groups.append(tuple(group))
        return tuple(groups)
