"""Filters as objects that compile themselves.

Each filter states its rules once, as a list of conditions (a column, an
operator, a value); the same list compiles to SQLAlchemy clauses (SQLite, and
every count), to PostgreSQL text for the history's asyncpg fast path, and to a
predicate over a record in memory (the live feed of deployment events). The
three can therefore never disagree.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Table, and_, false, or_

from deploybot.db.models import deployment_table, release_table
from deploybot.domain import DeploymentState, DeploymentTrigger
from deploybot.errors import DeploybotError, ErrorCode

SHA_RE = re.compile(r"^[0-9a-fA-F]{4,40}$")

Operator = Literal["in", "eq", "glob", "prefix", "ge", "lt", "any"]


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?")


def glob_to_like(pattern: str) -> str:
    """`*` any run, `?` one character; LIKE's own `%` and `_` are literal (escape `\\`)."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
        + r"\Z",
        re.DOTALL,
    )


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


@dataclass(frozen=True, slots=True)
class Condition:
    """`column <op> value`: `in` any of a list, `eq`, `glob` (`*`, `?`), `prefix` of a
    lowercase value, `ge`/`lt` bounds; `any`: `value` is a tuple of alternatives, each a
    tuple of conditions that must all hold (no column: a caller's scope, see `scope_of`)."""

    column: str
    op: Operator
    value: Any

    def as_sql(self, table: Table) -> ColumnElement[bool]:
        if self.op == "any":
            if not self.value:
                return false()
            return or_(*(and_(True, *(c.as_sql(table) for c in group)) for group in self.value))
        column: ColumnElement[Any] = table.c[self.column]
        if self.op == "in":
            return column.in_(list(self.value))
        if self.op == "glob":
            return column.like(glob_to_like(self.value), escape="\\")
        if self.op == "prefix":
            return column.like(self.value.lower() + "%")
        # Comparisons are typed Any by SQLAlchemy; they are boolean clauses.
        clause: ColumnElement[bool]
        if self.op == "eq":
            clause = column == self.value
        elif self.op == "ge":
            clause = column >= self.value
        else:
            clause = column < self.value
        return clause

    def as_postgres(self, param: Any) -> str:
        """The condition as PostgreSQL text; `param(value)` appends a value, answers `$n`."""
        if self.op == "any":
            groups = [
                "(" + " AND ".join(["TRUE", *(c.as_postgres(param) for c in group)]) + ")"
                for group in self.value
            ]
            return "(" + (" OR ".join(groups) or "FALSE") + ")"
        name = f'"{self.column}"'
        if self.op == "in":
            return f"{name} = ANY({param([_plain(v) for v in self.value])}::text[])"
        if self.op == "eq":
            return f"{name} = {param(self.value)}"
        if self.op == "glob":
            return f"{name} LIKE {param(glob_to_like(self.value))} ESCAPE '\\'"
        if self.op == "prefix":
            return f"{name} LIKE {param(self.value.lower() + '%')}"
        return f"{name} {'>=' if self.op == 'ge' else '<'} {param(self.value)}"

    def matches(self, record: Any) -> bool:
        if self.op == "any":
            return any(all(c.matches(record) for c in group) for group in self.value)
        value = getattr(record, self.column)
        if self.op == "in":
            return value in self.value
        if self.op == "eq":
            return bool(value == self.value)
        if self.op == "glob":
            return bool(glob_to_regex(self.value).match(value or ""))
        if self.op == "prefix":
            return (value or "").startswith(self.value.lower())
        if value is None:
            return False
        return bool(value >= self.value if self.op == "ge" else value < self.value)


class Filter:
    """A filter over one table: its `conditions()` are its rules."""

    table: Table

    def conditions(self) -> list[Condition]:
        raise NotImplementedError

    def check(self) -> None:
        """Raise DeploybotError(INVALID_INPUT) for a value the filter cannot use."""

    def as_sql_filter(self) -> list[ColumnElement[bool]]:
        self.check()
        return [c.as_sql(self.table) for c in self.conditions()]

    def as_postgres(self, params: list[Any]) -> list[str]:
        """PostgreSQL conditions; their values are appended to `params` (`$1`, `$2`, ...)."""
        self.check()

        def param(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        return [c.as_postgres(param) for c in self.conditions()]

    def matches(self, record: Any) -> bool:
        return all(c.matches(record) for c in self.conditions())


Scope = tuple[tuple[Condition, ...], ...]
"""What a caller may see: any of these groups of conditions (see `Guard.scope`)."""


def globs_condition(column: str, globs: Sequence[str]) -> Condition | None:
    """`column` matches any of `globs` (None when one is `*`: no condition)."""
    if "*" in globs:
        return None
    return Condition(
        "",
        "any",
        tuple((Condition(column, "glob" if is_glob(g) else "eq", g),) for g in globs),
    )


def _scoped(scope: Scope | None) -> list[Condition]:
    return [] if scope is None else [Condition("", "any", scope)]


def _any_of(column: str, values: Sequence[Any] | None) -> list[Condition]:
    return [Condition(column, "in", tuple(values))] if values else []


def _between(column: str, after: datetime | None, before: datetime | None) -> list[Condition]:
    bounds = [Condition(column, "ge", after)] if after else []
    return bounds + ([Condition(column, "lt", before)] if before else [])


@dataclass(frozen=True)
class DeploymentFilter(Filter):
    """The `deployments` filter; every field narrows, lists match any of their values."""

    environments: Sequence[str] | None = None
    applications: Sequence[str] | None = None
    repository: str | None = None
    """Exact URL, or a glob."""
    commit_sha: str | None = None
    """A prefix of the sha."""
    refs: Sequence[str] | None = None
    states: Sequence[DeploymentState] | None = None
    triggers: Sequence[DeploymentTrigger] | None = None
    """Not in GraphQL's filter: the REST routes' (Sponge lists recorded deployments)."""
    created_after: datetime | None = None
    created_before: datetime | None = None
    scope: Scope | None = None
    """What the caller may read (None: everything); set by the backend, never by clients."""
    providers: Sequence[str] | None = None
    """Deployments a provider's webhook made (github, gitlab, bitbucket, dockerhub, travis)."""
    provider_repository: str | None = None
    """owner/name as the provider names it."""

    table = deployment_table

    def check(self) -> None:
        if self.commit_sha and not SHA_RE.match(self.commit_sha):
            raise DeploybotError(
                ErrorCode.INVALID_INPUT, "commitSha must be hex digits", field="filter.commitSha"
            )

    def conditions(self) -> list[Condition]:
        found = _any_of("environment", self.environments)
        found += _any_of("application", self.applications)
        if self.repository:
            op: Operator = "glob" if is_glob(self.repository) else "eq"
            found.append(Condition("repository_url", op, self.repository))
        if self.commit_sha:
            found.append(Condition("commit_sha", "prefix", self.commit_sha))
        found += _any_of("ref", self.refs)
        found += _any_of("state", self.states)
        found += _any_of("trigger", self.triggers)
        found += _any_of("provider", self.providers)
        if self.provider_repository:
            found.append(Condition("provider_repository", "eq", self.provider_repository))
        found += _between("created_at", self.created_after, self.created_before)
        return found + _scoped(self.scope)


@dataclass(frozen=True)
class ReleaseFilter(Filter):
    components: Sequence[str] | None = None
    trains: Sequence[str] | None = None
    released_after: datetime | None = None
    released_before: datetime | None = None
    scope: Scope | None = None
    """What the caller may read (components as applications; None: everything)."""

    table = release_table

    def conditions(self) -> list[Condition]:
        found = _any_of("component", self.components) + _any_of("train", self.trains)
        found += _between("released_at", self.released_after, self.released_before)
        return found + _scoped(self.scope)


@dataclass(frozen=True)
class MetricsFilter(Filter):
    """Which deployments delivery metrics count."""

    environments: Sequence[str] | None = None
    applications: Sequence[str] | None = None
    scope: Scope | None = None

    table = deployment_table

    def conditions(self) -> list[Condition]:
        found = _any_of("environment", self.environments) + _any_of(
            "application", self.applications
        )
        return found + _scoped(self.scope)


def sql_filter(flt: Filter | None) -> list[ColumnElement[bool]]:
    """The clauses of an optional filter (none: no condition)."""
    return flt.as_sql_filter() if flt is not None else []
