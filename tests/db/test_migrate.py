"""Migrations: one head, and an empty SQLite or PostgreSQL database upgrades to it and
matches the models exactly."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from deploybot.db import migrate
from deploybot.db.engine import Database
from deploybot.db.models import metadata
from tests.conftest import both_databases


def test_single_head() -> None:
    assert migrate.heads() == ["0012_log_retention"]


@both_databases
async def test_upgrade_empty_database_to_head(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        assert await migrate.current_revision(db) is None
        await migrate.upgrade(db)
        assert await migrate.current_revision(db) == migrate.heads()[0]
        await migrate.upgrade(db)  # a second start is a no-op

        def check(connection: Connection) -> tuple[set[str], list[Any]]:
            tables = set(inspect(connection).get_table_names())
            diff = compare_metadata(MigrationContext.configure(connection), metadata)
            return tables, diff

        async with db.engine.connect() as connection:
            tables, diff = await connection.run_sync(check)
        assert {
            "deployment",
            "deployment_step",
            "log_line",
            "service_rollout",
            "deployment_result",
            "application",
            "release",
            "deploy_policy",
            "kept_secret",
            "rate_limit_counter",
            "log_retention",
        } <= tables
        assert diff == [], f"models and migrations disagree: {diff}"
    finally:
        await db.dispose()
