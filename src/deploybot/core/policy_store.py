"""Where the deploy policy in force lives: the settings' policy, unless an admin edited it.

An edit is one row of `deploy_policy`, so it survives restarts and holds for every process
sharing the database (API replicas and runners read it per check: a deploy's one extra
primary-key read). The row stores the whole policy, not a difference from the settings: what
the admin saw and saved is what holds, whatever the next process's environment says.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from deploybot.config import Settings
from deploybot.core.policy import DeployPolicy, PolicyChange, PolicyError, StoredPolicy
from deploybot.db.engine import Database
from deploybot.db.models import deploy_policy_table
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.times import utcnow

_ROW_ID = 1


async def current_policy(db: Database | AsyncSession, settings: Settings) -> StoredPolicy:
    """The policy in force now, and whether it is an admin's edit (read in the caller's
    transaction when given its session: no second connection)."""
    defaults = settings.deploy_policy
    c = deploy_policy_table.c
    query = select(c.document, c.updated_at, c.updated_by).where(c.id == _ROW_ID)
    if isinstance(db, AsyncSession):
        row = (await db.execute(query)).first()
    else:
        async with db.connection() as connection:
            row = (await connection.execute(query)).first()
    if row is None:
        return StoredPolicy(defaults, defaults=defaults)
    policy = DeployPolicy.from_json(row.document, base=defaults)
    return StoredPolicy(
        policy, edited=True, updated_at=row.updated_at, updated_by=row.updated_by, defaults=defaults
    )


def _field_of(message: str) -> str:
    """The GraphQL input field a PolicyError's message starts with."""
    head = message.split(":", 1)[0].strip()
    return {
        "bind mount prefixes": "bindMountPrefixes",
        "published ports": "publishedPorts",
    }.get(head, head)


async def update_policy(
    db: Database, settings: Settings, change: PolicyChange, *, by: str | None
) -> StoredPolicy:
    """Apply an admin's edit (INVALID_INPUT naming the field when it makes no sense)."""
    stored = await current_policy(db, settings)
    base = stored.defaults if change.reset else stored.policy
    try:
        policy = replace(base, **change.changes)
    except PolicyError as exc:
        raise DeploybotError(ErrorCode.INVALID_INPUT, str(exc), field=_field_of(str(exc))) from exc
    if change.reset and not change.changes:
        async with db.transaction() as session:
            await session.execute(delete(deploy_policy_table))
        return StoredPolicy(stored.defaults, defaults=stored.defaults)
    now = utcnow()
    values = {"document": policy.to_json(), "updated_at": now, "updated_by": by}
    async with db.transaction() as session:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        statement = dialect.insert(deploy_policy_table).values(id=_ROW_ID, **values)
        await session.execute(statement.on_conflict_do_update(index_elements=["id"], set_=values))
    return StoredPolicy(
        policy, edited=True, updated_at=now, updated_by=by, defaults=stored.defaults
    )
