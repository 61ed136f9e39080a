"""access control: API tokens (digests only), audit events, who asked for a deployment

Revision ID: 0005_access
Revises: 0004_releases
Create Date: 2026-11-30 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import deploybot.db.types

revision: str = "0005_access"
down_revision: str | None = "0004_releases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _ts(name: str, *, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, deploybot.db.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", _KEY, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=20), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("grants", _JSON, nullable=False),
        _ts("expires_at"),
        sa.Column("created_by", sa.String(length=300), nullable=True),
        _ts("created_at", nullable=False),
        _ts("last_used_at"),
        _ts("revoked_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", _KEY, nullable=False),
        _ts("at", nullable=False),
        sa.Column("token_id", _KEY, nullable=True),
        sa.Column("principal", sa.String(length=300), nullable=False),
        sa.Column("operation", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=500), nullable=True),
        sa.Column("outcome", sa.String(length=50), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_at", ["at"], unique=False)
        batch_op.create_index("ix_audit_events_token_id", ["token_id"], unique=False)
        batch_op.create_index("ix_audit_events_operation_id", ["operation", "id"], unique=False)
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_by", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.drop_column("requested_by")
    op.drop_table("audit_events")
    op.drop_table("api_tokens")
