"""working directory of a deploy (monorepos) and platforms of recorded deployments (Sponge)

Revision ID: 0010_rest
Revises: 0004_releases
Create Date: 2026-11-30 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_rest"
down_revision: str | None = "0009_secrets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("working_directory", sa.String(length=500), nullable=True))
        batch_op.add_column(
            sa.Column(
                "platforms",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default=sa.text("'[]'"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.drop_column("platforms")
        batch_op.drop_column("working_directory")
