"""The history page on PostgreSQL, as hand-written keyset SQL on the pooled asyncpg connection.

`deployments(first: 50, filter: ...)` is the hottest query deploybot serves;
going through SQLAlchemy's execution and result layers costs more than the
query itself. This module builds the same statement the Core path in
`deployments.py` builds (the tests run both against the same cases) and hands
it to asyncpg directly, borrowing the connection from SQLAlchemy's pool.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from deploybot.core.filters import DeploymentFilter, glob_to_like, is_glob, sha_prefix
from deploybot.db.engine import Database
from deploybot.db.models import Deployment
from deploybot.domain import DeploymentState, DeploymentStrategy, DeploymentTrigger

COLUMNS = tuple(c.name for c in Deployment.__table__.columns)  # type: ignore[attr-defined]
_ENUMS: dict[str, dict[str, Any]] = {
    "state": {s.value: s for s in DeploymentState},
    "strategy": {s.value: s for s in DeploymentStrategy},
    "trigger": {s.value: s for s in DeploymentTrigger},
}


def where(flt: DeploymentFilter | None) -> tuple[list[str], list[Any]]:
    """SQL conditions and parameters of a `DeploymentFilter` (the Core path's rules)."""
    clauses: list[str] = []
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if flt is None:
        return clauses, params
    if flt.environments:
        clauses.append(f"environment = ANY({param(list(flt.environments))}::text[])")
    if flt.applications:
        clauses.append(f"application = ANY({param(list(flt.applications))}::text[])")
    if flt.repository:
        if is_glob(flt.repository):
            clauses.append(f"repository_url LIKE {param(glob_to_like(flt.repository))} ESCAPE '\\'")
        else:
            clauses.append(f"repository_url = {param(flt.repository)}")
    if flt.commit_sha:
        clauses.append(f"commit_sha LIKE {param(sha_prefix(flt.commit_sha))}")
    if flt.refs:
        clauses.append(f"ref = ANY({param(list(flt.refs))}::text[])")
    if flt.states:
        values = [s.value for s in flt.states]
        clauses.append(f"state = ANY({param(values)}::text[])")
    if flt.created_after:
        clauses.append(f"created_at >= {param(flt.created_after)}")
    if flt.created_before:
        clauses.append(f"created_at < {param(flt.created_before)}")
    return clauses, params


async def fetch_page(
    db: Database,
    flt: DeploymentFilter | None,
    *,
    scan_descending: bool,
    lower: int | None,
    upper: int | None,
    limit: int,
    columns: Collection[str] | None = None,
) -> list[Mapping[str, Any]]:
    """Rows with lower < id < upper, in id order (descending or not), at most `limit`."""
    clauses, params = where(flt)
    if lower is not None:
        params.append(lower)
        clauses.append(f"id > ${len(params)}")
    if upper is not None:
        params.append(upper)
        clauses.append(f"id < ${len(params)}")
    params.append(limit)
    names = [c for c in COLUMNS if columns is None or c in columns]
    sql = (
        f"SELECT {', '.join(f'{chr(34)}{c}{chr(34)}' for c in names)} FROM deployment"
        + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        + f" ORDER BY id {'DESC' if scan_descending else 'ASC'} LIMIT ${len(params)}"
    )
    async with db.read_engine.connect() as connection:
        raw = await connection.get_raw_connection()
        records = await raw.driver_connection.fetch(sql, *params)  # type: ignore[union-attr]
    rows: list[Mapping[str, Any]] = []
    for record in records:
        row = dict(record)
        for column, members in _ENUMS.items():
            if column in row:
                row[column] = members[row[column]]
        rows.append(row)
    return rows
