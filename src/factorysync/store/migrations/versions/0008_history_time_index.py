"""run history: indexes on the run's start and on the source's registry id

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

The overview, ``status`` and the alert rules read the runs of the last 24 hours of every
source (``WHERE sync_started_at >= …``); with only the (source, start) index that is a
scan of the whole history, which grows by a row a run. Removing a source sets its runs'
registry id to NULL (``ON DELETE SET NULL``), which without an index on that column also
scans the whole history.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

HISTORY = "data_source_sync_history"


def upgrade() -> None:
    op.create_index("ix_sync_history_started", HISTORY, ["sync_started_at"])
    op.create_index("ix_sync_history_registry", HISTORY, ["source_id"])


def downgrade() -> None:
    op.drop_index("ix_sync_history_registry", table_name=HISTORY)
    op.drop_index("ix_sync_history_started", table_name=HISTORY)
