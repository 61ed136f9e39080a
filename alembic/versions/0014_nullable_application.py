"""a recorded deployment may name no application (Sponge's forgiving records)

Revision ID: 0014_nullable_application
Revises: 0012_log_retention
Create Date: 2026-12-01 00:40:00

PostgreSQL drops the NOT NULL. SQLite cannot alter a column, and the batch way (copy the
table, drop the old one) would cascade the drop to every deployment's steps, logs and
results while foreign keys are on, which they are inside a migration's transaction. So on
SQLite the column's declaration is edited in place with `writable_schema`, which SQLite
documents for changes that leave the stored rows as they are, as removing NOT NULL does
(https://sqlite.org/lang_altertable.html, "Making Other Kinds Of Table Schema Changes").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_nullable_application"
down_revision: str | None = "0012_log_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOT_NULL = "application VARCHAR(200) NOT NULL,"
_NULLABLE = "application VARCHAR(200),"


def _edit_sqlite_declaration(old: str, new: str) -> None:
    """Replace `old` by `new` in the deployment table's CREATE statement, then bump the
    schema version so every connection reads the schema again."""
    bind = op.get_bind()
    sql = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'deployment'")
    ).scalar_one()
    if old not in sql:
        raise RuntimeError(f"deployment's declaration lacks {old!r}; cannot migrate it")
    version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
    bind.execute(sa.text("PRAGMA writable_schema = ON"))
    bind.execute(
        sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'deployment'"),
        {"sql": sql.replace(old, new, 1)},
    )
    bind.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
    bind.execute(sa.text("PRAGMA writable_schema = OFF"))


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _edit_sqlite_declaration(_NOT_NULL, _NULLABLE)
    else:
        op.alter_column("deployment", "application", existing_type=sa.String(200), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE deployment SET application = 'unnamed' WHERE application IS NULL")
    if op.get_bind().dialect.name == "sqlite":
        _edit_sqlite_declaration(_NULLABLE, _NOT_NULL)
    else:
        op.alter_column("deployment", "application", existing_type=sa.String(200), nullable=False)
