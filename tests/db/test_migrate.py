"""Migrations: one head, and an empty SQLite or PostgreSQL database upgrades to it and
matches the models exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from deploybot.db import migrate
from deploybot.db.engine import Database
from deploybot.db.models import metadata
from tests.conftest import both_databases


def test_single_head() -> None:
    assert migrate.heads() == ["0014_nullable_application"]


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


@both_databases
async def test_nullable_application_keeps_existing_history(empty_database_url: str) -> None:
    """0014 lets `deployment.application` be NULL without touching the rows already there:
    on SQLite a copy-and-drop of the table would cascade to every deployment's log."""
    db = Database(empty_database_url)
    try:
        await migrate.upgrade(db, "0012_log_retention")
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO deployment (id, environment, application, strategy, state,"
                    ' trigger, "references", hosts, platforms, created_at, updated_at) VALUES (1,'
                    " 'test', 'shop', 'ROLLING', 'SUCCESS', 'API', '[]', '[]', '[]', :now, :now)"
                ),
                {"now": datetime(2026, 1, 1, tzinfo=UTC)},
            )
            await conn.execute(
                text(
                    "INSERT INTO log_line (deployment_id, seq, timestamp, source, stream, text)"
                    " VALUES (1, 1, :now, 'SYSTEM', 'STDOUT', 'kept')"
                ),
                {"now": datetime(2026, 1, 1, tzinfo=UTC)},
            )
        await migrate.upgrade(db)
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO deployment (id, environment, application, strategy, state,"
                    ' trigger, "references", hosts, platforms, created_at, updated_at) VALUES (2,'
                    " 'test', NULL, 'ROLLING', 'SUCCESS', 'EXTERNAL', '[]', '[]', '[]', :now, :now)"
                ),
                {"now": datetime(2026, 1, 1, tzinfo=UTC)},
            )
            lines = (await conn.execute(text("SELECT text FROM log_line"))).scalars().all()
            apps = (
                await conn.execute(text("SELECT application FROM deployment ORDER BY id"))
            ).scalars()
            assert list(apps) == ["shop", None]
        assert lines == ["kept"]
    finally:
        await db.dispose()
