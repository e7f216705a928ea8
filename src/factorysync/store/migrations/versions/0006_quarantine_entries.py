"""quarantine: one entry per bad record (content hash, first/last seen, times seen)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

Before this revision every run stored its rejected records again. The rows already
there are collapsed: the rows of one source, target table and record content become one
entry (the newest row's reasons and run), with ``times_seen`` the number of rows,
``first_seen`` the oldest row's time and ``last_seen`` the newest's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLE = "data_source_quarantine"
CHUNK = 1000


def content_hash(record: Any) -> str:
    """The hash factorysync.engine.quality.content_hash gives a stored record at this
    revision (a migration keeps the function of its time; a test holds both equal)."""
    try:
        blob = orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer beyond 64 bits
        blob = json.dumps(record, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def _hashes(conn: sa.Connection) -> None:
    """Fill content_hash for the rows stored before this revision."""
    q = sa.table(
        TABLE, sa.column("id", sa.BigInteger()), sa.column("record"), sa.column("content_hash")
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.select(q.c.id, q.c.record).where(q.c.id > last).order_by(q.c.id).limit(CHUNK)
        ).all()
        if not rows:
            return
        updates: list[dict[str, Any]] = []
        for row_id, record in rows:
            if isinstance(record, str | bytes):  # SQLite hands back the JSON text
                record = json.loads(record)
            updates.append({"row_id": row_id, "hash": content_hash(record)})
        conn.execute(
            q.update()
            .where(q.c.id == sa.bindparam("row_id"))
            .values(content_hash=sa.bindparam("hash")),
            updates,
        )
        last = rows[-1][0]


def _collapse(conn: sa.Connection) -> None:
    """Keep the newest row of each (source, target table, content); count the others."""
    q = sa.table(
        TABLE,
        sa.column("id", sa.BigInteger()),
        sa.column("source_id"),
        sa.column("target_table"),
        sa.column("content_hash"),
        sa.column("first_seen"),
        sa.column("last_seen"),
        sa.column("times_seen", sa.BigInteger()),
    )
    o = q.alias("o")
    same = sa.and_(
        o.c.source_id == q.c.source_id,
        o.c.target_table == q.c.target_table,
        o.c.content_hash == q.c.content_hash,
    )
    conn.execute(
        q.update().values(
            times_seen=sa.select(sa.func.count()).where(same).scalar_subquery(),
            first_seen=sa.select(sa.func.min(o.c.first_seen)).where(same).scalar_subquery(),
            last_seen=sa.select(sa.func.max(o.c.first_seen)).where(same).scalar_subquery(),
        )
    )
    conn.execute(
        q.delete().where(q.c.id < sa.select(sa.func.max(o.c.id)).where(same).scalar_subquery())
    )


def upgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("stage", sa.String(length=16), nullable=False, server_default="record")
        )
        batch_op.add_column(sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("times_seen", sa.BigInteger(), nullable=False, server_default="1")
        )
        batch_op.add_column(
            sa.Column("kept_previous", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.alter_column("created_at", new_column_name="first_seen")
        batch_op.drop_index("ix_quarantine_source")
    conn.execute(sa.text(f"UPDATE {TABLE} SET target_table = '' WHERE target_table IS NULL"))
    _hashes(conn)
    op.create_index("ix_quarantine_collapse", TABLE, ["source_id", "target_table", "content_hash"])
    _collapse(conn)
    op.drop_index("ix_quarantine_collapse", table_name=TABLE)
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.alter_column(
            "target_table",
            existing_type=sa.String(length=63),
            nullable=False,
            server_default="",
        )
        batch_op.alter_column("content_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("last_seen", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_unique_constraint(
            "uq_quarantine_record", ["source_id", "target_table", "content_hash"]
        )
        batch_op.create_index("ix_quarantine_last_seen", ["source_id", "last_seen"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.drop_index("ix_quarantine_last_seen")
        batch_op.drop_constraint("uq_quarantine_record", type_="unique")
        batch_op.alter_column(
            "target_table", existing_type=sa.String(length=63), nullable=True, server_default=None
        )
        batch_op.alter_column("first_seen", new_column_name="created_at")
        batch_op.drop_column("kept_previous")
        batch_op.drop_column("times_seen")
        batch_op.drop_column("last_seen")
        batch_op.drop_column("stage")
        batch_op.drop_column("content_hash")
    op.create_index("ix_quarantine_source", TABLE, ["source_id", "created_at"], unique=False)
