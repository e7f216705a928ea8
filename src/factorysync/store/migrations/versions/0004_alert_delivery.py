"""alert details, delivery state and de-duplication

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NOT_RESOLVED = "state != 'resolved'"


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.add_column(
            sa.Column(
                "details",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("notified_state", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True))
    # One alert that is not resolved per source and rule: a repeated condition counts
    # occurrences on it (INSERT … ON CONFLICT) instead of adding rows.
    op.create_index(
        "uq_alerts_active",
        "alerts",
        ["source_id", "rule"],
        unique=True,
        sqlite_where=sa.text(NOT_RESOLVED),
        postgresql_where=sa.text(NOT_RESOLVED),
    )


def downgrade() -> None:
    op.drop_index("uq_alerts_active", table_name="alerts")
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.drop_column("notified_at")
        batch_op.drop_column("notified_state")
        batch_op.drop_column("details")
