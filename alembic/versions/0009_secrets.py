"""secrets deploybot keeps for applications (encrypted values)

Revision ID: 0009_secrets
Revises: 0004_releases
Create Date: 2026-11-30 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import deploybot.db.types

revision: str = "0009_secrets"
down_revision: str | None = "0006_policy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kept_secret",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("environment", sa.String(100), nullable=False),
        sa.Column("application", sa.String(200), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", deploybot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", deploybot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("environment", "application", "name"),
    )


def downgrade() -> None:
    op.drop_table("kept_secret")
