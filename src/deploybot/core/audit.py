"""The audit trail: who (token id and label) did what (operation, target), when, and how it
ended (`ok` or the error code). Written for every mutation and token change; read by admins
newest first, keyset-paged by id."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, insert, select

from deploybot.access import Principal
from deploybot.db.engine import Database
from deploybot.db.models import audit_table
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.ids import InvalidId, decode_cursor, encode_cursor
from deploybot.records import Edge, Page
from deploybot.times import utcnow

logger = logging.getLogger(__name__)

OK = "ok"


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    token_id: int | None
    principal: str
    operation: str
    target: str | None
    outcome: str
    message: str | None


@dataclass(frozen=True)
class AuditFilter:
    operations: Sequence[str] | None = None
    token_ids: Sequence[int] | None = None
    outcomes: Sequence[str] | None = None
    after: datetime | None = None
    before: datetime | None = None

    def clauses(self) -> list[object]:
        c = audit_table.c
        found: list[object] = []
        if self.operations:
            found.append(c.operation.in_(list(self.operations)))
        if self.token_ids:
            found.append(c.token_id.in_(list(self.token_ids)))
        if self.outcomes:
            found.append(c.outcome.in_(list(self.outcomes)))
        if self.after is not None:
            found.append(c.at >= self.after)
        if self.before is not None:
            found.append(c.at < self.before)
        return found


async def record(
    db: Database,
    principal: Principal,
    operation: str,
    target: str | None,
    outcome: str,
    message: str | None = None,
) -> None:
    """Append one event; a failure to write it is logged, never the caller's failure."""
    try:
        async with db.transaction() as session:
            await session.execute(
                insert(audit_table).values(
                    at=utcnow(),
                    token_id=principal.token_id,
                    principal=principal.label[:300],
                    operation=operation[:100],
                    target=target[:500] if target else None,
                    outcome=outcome[:50],
                    message=message,
                )
            )
    except Exception:
        logger.exception("could not write the audit event of %s", operation)


async def list_events(
    db: Database, flt: AuditFilter | None, *, first: int, after: str | None
) -> Page[AuditRecord]:
    if not 1 <= first <= 100:
        raise DeploybotError(ErrorCode.INVALID_INPUT, "first must be 1..100", field="first")
    clauses = (flt or AuditFilter()).clauses()
    if after:
        try:
            clauses.append(audit_table.c.id < decode_cursor(after))
        except InvalidId as exc:
            raise DeploybotError(ErrorCode.INVALID_INPUT, str(exc), field="after") from exc
    query = (
        select(audit_table)
        .where(and_(True, *clauses))  # type: ignore[arg-type]
        .order_by(audit_table.c.id.desc())
        .limit(first + 1)
    )
    async with db.connection() as conn:
        rows = (await conn.execute(query)).all()
    items = [AuditRecord(**row._mapping) for row in rows[:first]]
    return Page(
        edges=[Edge(encode_cursor(i.id), i) for i in items],
        has_next=len(rows) > first,
        has_previous=after is not None,
    )
