"""Reading deployments: one, several, a filtered keyset page, a count, and the rows that
hang off them (steps, services, results), always as records."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, and_, func, select

from deploybot.core import pg_history
from deploybot.db.engine import Database
from deploybot.db.models import deployment_table, result_table, service_table, step_table
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.filters import DeploymentFilter, sql_filter
from deploybot.ids import InvalidId, decode_cursor, encode_cursor
from deploybot.inputs import PageRequest
from deploybot.records import (
    DeploymentRecord,
    Edge,
    Page,
    ResultRecord,
    ServiceRolloutRecord,
    StepRecord,
)

MAX_PAGE = 100


async def get_deployment(db: Database, deployment_id: int) -> DeploymentRecord | None:
    return (await get_deployments(db, [deployment_id])).get(deployment_id)


async def get_deployments(
    db: Database, deployment_ids: Collection[int]
) -> dict[int, DeploymentRecord]:
    async with db.connection() as connection:
        result = await connection.execute(
            select(deployment_table).where(deployment_table.c.id.in_(list(deployment_ids)))
        )
        return {row.id: DeploymentRecord.of(row._mapping) for row in result}


async def changed_since(
    db: Database, environment: str, since: datetime, *, limit: int
) -> list[DeploymentRecord]:
    """The environment's deployments last changed after `since`, oldest change first."""
    c = deployment_table.c
    query = (
        select(deployment_table)
        .where(c.environment == environment, c.updated_at > since)
        .order_by(c.updated_at, c.id)
        .limit(limit)
    )
    async with db.connection() as connection:
        return [DeploymentRecord.of(row._mapping) for row in await connection.execute(query)]


async def last_change(db: Database, environment: str) -> datetime | None:
    """When a deployment of the environment last changed (None: it has none)."""
    c = deployment_table.c
    async with db.connection() as connection:
        result = await connection.execute(
            select(func.max(c.updated_at)).where(c.environment == environment)
        )
        value: datetime | None = result.scalar_one()
        return value


async def require_deployment(db: Database, deployment_id: int) -> DeploymentRecord:
    """The deployment, or DEPLOYMENT_NOT_FOUND naming the `id` field."""
    record = await get_deployment(db, deployment_id)
    if record is None:
        raise DeploybotError(
            ErrorCode.DEPLOYMENT_NOT_FOUND, f"deployment {deployment_id} not found", field="id"
        )
    return record


def page_bounds(first: int | None, last: int | None) -> tuple[int, bool]:
    """(limit, backwards) for a connection argument pair, GitHub's rules: 1..100, not both."""
    if first is not None and last is not None:
        raise DeploybotError(ErrorCode.INVALID_INPUT, "pass either first or last, not both")
    count = first if first is not None else last if last is not None else 50
    if not 1 <= count <= MAX_PAGE:
        raise DeploybotError(
            ErrorCode.INVALID_INPUT,
            f"{'last' if last is not None else 'first'} must be between 1 and {MAX_PAGE}",
            field="last" if last is not None else "first",
        )
    return count, last is not None


def _position(cursor: str | None, name: str) -> int | None:
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor)
    except InvalidId as exc:
        raise DeploybotError(ErrorCode.INVALID_INPUT, f"{name}: {exc}", field=name) from exc


async def list_deployments(
    db: Database,
    flt: DeploymentFilter | None,
    page: PageRequest,
    *,
    fields: Collection[str] | None = None,
) -> Page[DeploymentRecord]:
    """Keyset pagination over ids (ids grow with creation time, so this is creation order).

    `fields` narrows what is read (the caller knows what it will show); `id` and
    `environment` are always read.
    """
    after, before = _position(page.after, "after"), _position(page.before, "before")
    limit, backwards = page_bounds(page.first, page.last)
    lower, upper = (before, after) if page.descending else (after, before)
    scan_descending = page.descending != backwards
    columns = {"id", "environment", *fields} if fields is not None else None
    rows: list[Mapping[str, Any]]
    if not db.is_sqlite:
        rows = await pg_history.fetch_page(
            db,
            flt,
            scan_descending=scan_descending,
            lower=lower,
            upper=upper,
            limit=limit + 1,
            columns=columns,
        )
    else:
        rows = await _fetch_page(db, flt, scan_descending, lower, upper, limit + 1, columns)
    more = len(rows) > limit
    records = [DeploymentRecord.of(row) for row in rows[:limit]]
    if backwards:
        records.reverse()
    edges = [Edge(encode_cursor(r.id), r) for r in records]
    if backwards:
        return Page(edges, has_next=before is not None, has_previous=more)
    return Page(edges, has_next=more, has_previous=after is not None)


async def _fetch_page(
    db: Database,
    flt: DeploymentFilter | None,
    scan_descending: bool,
    lower: int | None,
    upper: int | None,
    limit: int,
    columns: Collection[str] | None,
) -> list[Mapping[str, Any]]:
    """The Core path of a page (SQLite): rows with lower < id < upper, in id order."""
    c = deployment_table.c
    clauses = sql_filter(flt)
    if lower is not None:
        clauses.append(c.id > lower)
    if upper is not None:
        clauses.append(c.id < upper)
    selected = [col for col in c if columns is None or col.name in columns]
    query: Select[Any] = (
        select(*selected)
        .where(and_(True, *clauses))
        .order_by(c.id.desc() if scan_descending else c.id.asc())
        .limit(limit)
    )
    async with db.connection() as connection:
        return [row._mapping for row in (await connection.execute(query)).all()]


async def count_deployments(db: Database, flt: DeploymentFilter | None) -> int:
    async with db.connection() as connection:
        query = (
            select(func.count()).select_from(deployment_table).where(and_(True, *sql_filter(flt)))
        )
        return int((await connection.execute(query)).scalar_one())


async def _children(
    db: Database, table: Table, order: Any, ids: Sequence[int]
) -> dict[int, list[Mapping[Any, Any]]]:
    """The rows of a table hanging off deployments, by deployment, in `order`."""
    out: dict[int, list[Mapping[Any, Any]]] = {i: [] for i in ids}
    async with db.connection() as connection:
        rows = await connection.execute(
            select(table)
            .where(table.c.deployment_id.in_(list(ids)))
            .order_by(table.c.deployment_id, order)
        )
        for row in rows:
            out[row.deployment_id].append(row._mapping)
    return out


def _record_fields(mapping: Mapping[Any, Any], exclude: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in exclude}


async def steps_for(db: Database, ids: Sequence[int]) -> dict[int, list[StepRecord]]:
    found = await _children(db, step_table, step_table.c.position, ids)
    return {
        key: [StepRecord(**_record_fields(row, ("id", "deployment_id"))) for row in rows]
        for key, rows in found.items()
    }


async def services_for(db: Database, ids: Sequence[int]) -> dict[int, list[ServiceRolloutRecord]]:
    found = await _children(db, service_table, service_table.c.service, ids)
    return {
        key: [
            ServiceRolloutRecord(
                **{
                    **_record_fields(row, ("id", "deployment_id")),
                    "nodes": list(row["nodes"] or []),
                }
            )
            for row in rows
        ]
        for key, rows in found.items()
    }


async def results_for(db: Database, ids: Sequence[int]) -> dict[int, list[ResultRecord]]:
    found = await _children(db, result_table, result_table.c.id, ids)
    return {key: [ResultRecord(**row) for row in rows] for key, rows in found.items()}
