"""what log retention did to each finished deployment's log

Revision ID: 0012_log_retention
Revises: 0007_rate_limits
Create Date: 2026-12-01 00:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import deploybot.db.types

revision: str = "0012_log_retention"
down_revision: str | None = "0007_rate_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "log_retention",
        sa.Column(
            "deployment_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("deployment.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("rule", sa.String(length=10), nullable=False),
        sa.Column(
            "pruned_lines", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("pruned_at", deploybot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("deployment_id"),
    )


def downgrade() -> None:
    op.drop_table("log_retention")
