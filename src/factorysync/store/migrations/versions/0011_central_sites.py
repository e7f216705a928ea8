"""central_sites: what the central store applied of each site's forwarded tables

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

``factorysync central`` applies the messages plants forward (``factorysync.<site>.<table>``
on the JetStream stream) to the central store's tables. One row per (site, table) holds,
in the transaction of the rows it applied, the last applied stream sequence (the ingest
starts again after the highest one), the ``published_at`` of the last applied message
(the lag in seconds is measured from it), counters, and the messages still waiting on
the stream for that site and table, as the ingest last counted them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "central_sites",
        sa.Column("site", sa.String(length=32), nullable=False),
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("last_published_at", TIME, nullable=True),
        sa.Column("rows_applied", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("messages_applied", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("messages_rejected", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("pending_messages", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("pending_checked_at", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("site", "table_name", name=op.f("pk_central_sites")),
    )


def downgrade() -> None:
    op.drop_table("central_sites")
