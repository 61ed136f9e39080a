"""The `deployments` filter and the rules both query paths (Core and PostgreSQL) share."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from deploybot.domain import DeploymentState
from deploybot.errors import DeploybotError, ErrorCode

SHA_RE = re.compile(r"^[0-9a-fA-F]{4,40}$")


@dataclass
class DeploymentFilter:
    environments: Sequence[str] | None = None
    applications: Sequence[str] | None = None
    repository: str | None = None
    commit_sha: str | None = None
    refs: Sequence[str] | None = None
    states: Sequence[DeploymentState] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?")


def glob_to_like(pattern: str) -> str:
    """`*` any run, `?` one character; LIKE's own `%` and `_` are literal (escape `\\`)."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def sha_prefix(value: str) -> str:
    """The LIKE pattern of a sha prefix (shas are stored lowercase)."""
    return value.lower() + "%"


def check_filter(flt: DeploymentFilter | None) -> None:
    if flt is not None and flt.commit_sha and not SHA_RE.match(flt.commit_sha):
        raise DeploybotError(
            ErrorCode.INVALID_INPUT, "commitSha must be hex digits", field="filter.commitSha"
        )


def _glob_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
        + r"\Z",
        re.DOTALL,
    )


def matches(flt: DeploymentFilter | None, row: Any) -> bool:
    """The filter applied to one deployment in memory, as the queries apply it in SQL
    (the live feed of deployment events checks each change with it)."""
    if flt is None:
        return True
    if flt.environments and row.environment not in flt.environments:
        return False
    if flt.applications and row.application not in flt.applications:
        return False
    if flt.repository:
        url = row.repository_url or ""
        if is_glob(flt.repository):
            if not _glob_regex(flt.repository).match(url):
                return False
        elif url != flt.repository:
            return False
    if flt.commit_sha and not (row.commit_sha or "").startswith(flt.commit_sha.lower()):
        return False
    if flt.refs and row.ref not in flt.refs:
        return False
    if flt.states and row.state not in flt.states:
        return False
    if flt.created_after and row.created_at < flt.created_after:
        return False
    return not (flt.created_before and row.created_at >= flt.created_before)
