"""How many deployments each environment holds by application, state and trigger: what
`/metrics` reports for every process sharing the database."""

from __future__ import annotations

from sqlalchemy import func, select

from deploybot.db.engine import Database
from deploybot.db.models import deployment_table
from deploybot.records import DeploymentTally


async def deployment_tallies(db: Database, environment: str) -> list[DeploymentTally]:
    table = deployment_table
    query = (
        select(table.c.application, table.c.state, table.c.trigger, func.count())
        .where(table.c.environment == environment)
        .group_by(table.c.application, table.c.state, table.c.trigger)
    )
    async with db.connection() as conn:
        rows = (await conn.execute(query)).all()
    return [
        DeploymentTally(environment, application, _name(state), _name(trigger), int(count))
        for application, state, trigger, count in rows
    ]


def _name(value: object) -> str:
    return str(getattr(value, "value", value))
