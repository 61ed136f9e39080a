"""Who is calling and what they may do: actions granted on environments, applications and
repositories, in the spirit of GitHub's fine-grained tokens and Argo CD's `<project>/<app>`.

A grant is written `ACTIONS[:ENVIRONMENTS[/APPLICATIONS]][@REPOSITORIES]`, each part a
comma-separated list of names or globs, e.g. `read,deploy:staging/shop*@github.com/acme/*`.
A missing part means every one (`*`). Every transport turns its credentials into a
`Principal`; the backend asks the principal, never the transport.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache


class Action(enum.StrEnum):
    READ = "read"
    """Queries, subscriptions, raw logs."""
    DEPLOY = "deploy"
    """deploy, rollback, cancel, validate."""
    RECORD = "record"
    """recordDeployment, reportDeploymentStatus, addDeploymentResult, publishRelease."""
    ADMIN = "admin"
    """Tokens, webhooks, policy, audit; implies every other action."""
    SECRETS = "secrets"
    """Secrets that deploybot keeps for applications (values are never readable)."""
    RELAY = "relay"
    """May forward another caller's identity (a relay's service token)."""


class ANY_REPOSITORY:
    """Stands for "whatever repository" when a check has none to name (a list query)."""


@lru_cache(maxsize=4096)
def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(glob))


def _matches(globs: tuple[str, ...], value: str) -> bool:
    return any(g == "*" or g == value or _pattern(g).fullmatch(value) for g in globs)


def _split(part: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in part.split(",") if v.strip())
    return values or ("*",)


class GrantError(ValueError):
    """A grant that does not parse (the message says why)."""


@dataclass(frozen=True)
class Grant:
    actions: frozenset[Action]
    environments: tuple[str, ...] = ("*",)
    applications: tuple[str, ...] = ("*",)
    repositories: tuple[str, ...] = ("*",)

    @classmethod
    def parse(cls, text: str) -> Grant:
        rest, _, repos = text.strip().partition("@")
        acts, _, resources = rest.partition(":")
        envs, _, apps = resources.partition("/")
        try:
            actions = frozenset(Action(a) for a in _split(acts) if a != "*")
        except ValueError:
            known = ", ".join(a.value for a in Action)
            raise GrantError(f"unknown action in {text!r} (known: {known})") from None
        if not actions:
            raise GrantError(f"grant {text!r} names no action")
        return cls(actions, _split(envs), _split(apps), _split(repos))

    def __str__(self) -> str:
        text = ",".join(sorted(a.value for a in self.actions))
        text += ":" + ",".join(self.environments) + "/" + ",".join(self.applications)
        if self.repositories != ("*",):
            text += "@" + ",".join(self.repositories)
        return text

    def gives(self, action: Action) -> bool:
        return action in self.actions or Action.ADMIN in self.actions

    def covers_environment(self, environment: str) -> bool:
        return _matches(self.environments, environment)

    def covers(
        self,
        environment: str | None,
        application: str | None,
        repository: str | type[ANY_REPOSITORY] | None,
    ) -> bool:
        """`None` stands for "not named by the call": only a grant for every one covers it."""
        if not _matches(self.environments, environment or ""):
            return environment is None and self.environments == ("*",)
        if application is None:
            if self.applications != ("*",):
                return False
        elif not _matches(self.applications, application):
            return False
        if repository is ANY_REPOSITORY or self.repositories == ("*",):
            return True
        return isinstance(repository, str) and _matches(self.repositories, repository)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a token (id, name) and its grants, or the local user."""

    name: str
    grants: tuple[Grant, ...]
    token_id: int | None = None
    on_behalf_of: str | None = None
    """The identity a relay forwarded (only honoured for tokens with a `relay` grant)."""
    key: str = field(default="")
    """What rate limits count against (the token, or the client's address)."""

    def allows(
        self,
        action: Action,
        environment: str | None = None,
        application: str | None = None,
        repository: str | type[ANY_REPOSITORY] | None = ANY_REPOSITORY,
    ) -> bool:
        return any(
            g.gives(action) and g.covers(environment, application, repository) for g in self.grants
        )

    def may_anywhere(self, action: Action) -> bool:
        """Whether any grant gives `action` at all (lists are then filtered by scope)."""
        return any(g.gives(action) for g in self.grants)

    def scopes(self, action: Action, environment: str) -> list[tuple[tuple[str, ...], bool]]:
        """For a list in `environment`: each grant's application globs, and whether it is
        limited to repositories (lists of such grants show only matching repositories)."""
        return [
            (g.applications, g.repositories != ("*",))
            for g in self.grants
            if g.gives(action) and _matches(g.environments, environment)
        ]

    @property
    def label(self) -> str:
        """How audit records and `requestedBy` name the caller."""
        base = self.name if self.token_id is None else f"token:{self.token_id}:{self.name}"
        return base if self.on_behalf_of is None else f"{self.on_behalf_of} via {base}"

    @property
    def is_admin(self) -> bool:
        return any(Action.ADMIN in g.actions and g.environments == ("*",) for g in self.grants)


def parse_grants(texts: Iterable[str]) -> tuple[Grant, ...]:
    return tuple(Grant.parse(t) for t in texts)


ADMIN_GRANT = Grant(frozenset({Action.ADMIN}))
LOCAL_USER = Principal(name="local", grants=(ADMIN_GRANT,), key="local")
"""Whoever runs deploybot's own commands on the machine (and `DEPLOYBOT_AUTH=off`)."""
ANONYMOUS = Principal(name="anonymous", grants=(), key="anonymous")
