"""admission: idempotency keys unique, request fingerprint, dependencies, cancel requests

Revision ID: 0003_admission
Revises: 0002_rollout
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import deploybot.db.types

revision: str = "0003_admission"
down_revision: str | None = "0002_rollout"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_fingerprint", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column(
                "dependencies",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "cancel_requested_at",
                deploybot.db.types.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.drop_index("ix_deployment_idempotency")
        batch_op.create_index(
            "uq_deployment_idempotency",
            ["environment", "idempotency_key"],
            unique=True,
            sqlite_where=sa.text("idempotency_key IS NOT NULL"),
            postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_deployment_idempotency",
            sqlite_where=sa.text("idempotency_key IS NOT NULL"),
            postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_deployment_idempotency", ["environment", "idempotency_key"], unique=False
        )
        batch_op.drop_column("cancel_requested_at")
        batch_op.drop_column("dependencies")
        batch_op.drop_column("request_fingerprint")
