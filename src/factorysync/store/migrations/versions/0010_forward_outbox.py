"""forward_outbox: committed changes of forwarded target tables, waiting to be published

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

A run that changes a forwarded target table adds, in the transaction of its change, one
entry per (table, source, run) ("rows": the rows carrying that run id) and, before a hard
delete, one entry per batch of deleted keys ("delete"). The publisher sends the entries
in ``seq`` order and deletes each once its messages are acknowledged, so the table holds
only what has not reached the central store yet.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forward_outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("source_id", sa.String(length=100), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("keys", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_forward_outbox")),
        # Seq numbers never come back after the newest entries were published and
        # deleted: an entry's seq stays unique for as long as the store lives.
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("forward_outbox")
