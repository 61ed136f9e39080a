"""The history page on PostgreSQL, as hand-written keyset SQL on the pooled asyncpg connection.

`deployments(first: 50, filter: ...)` is the hottest query deploybot serves;
going through SQLAlchemy's execution and result layers costs more than the
query itself. This module builds the same statement as the Core path in `history.py`
(both from the filter's own conditions; the tests run both against the same cases)
and hands it to asyncpg directly, borrowing the connection from SQLAlchemy's pool.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from deploybot.db.engine import Database
from deploybot.db.models import deployment_table
from deploybot.domain import DeploymentState, DeploymentStrategy, DeploymentTrigger
from deploybot.filters import DeploymentFilter

COLUMNS = tuple(c.name for c in deployment_table.columns)
_ENUMS: dict[str, dict[str, Any]] = {
    "state": {s.value: s for s in DeploymentState},
    "strategy": {s.value: s for s in DeploymentStrategy},
    "trigger": {s.value: s for s in DeploymentTrigger},
}


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
    params: list[Any] = []
    clauses = flt.as_postgres(params) if flt is not None else []
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
