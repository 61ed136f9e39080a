"""Bring a database to the newest schema (seed 001: it initialises itself on first use)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from deploybot.db.engine import Database


def alembic_dir() -> Path:
    """The migrations: packaged in a wheel, or `alembic/` at the root of a checkout."""
    here = Path(__file__).resolve()
    packaged = here.parent.parent / "_alembic"
    return packaged if packaged.is_dir() else here.parents[3] / "alembic"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(alembic_dir()))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def heads() -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config()).get_heads())


async def upgrade(db: Database, revision: str = "head") -> None:
    cfg = alembic_config(db.url)

    def _upgrade(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with db.engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def _current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with db.engine.connect() as connection:
        return await connection.run_sync(_current)
