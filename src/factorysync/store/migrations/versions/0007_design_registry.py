"""registry as the design writes it: integer source keys, users, defaults, templates

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

The five registry tables take the original design's DDL (DESIGN §2), data kept:

- the child tables' ``source_id`` becomes ``INTEGER REFERENCES data_source_registry(id)``
  (connections and mappings: the registry row's id; history keeps the slug in
  ``source_key``, and its id is set to NULL when the source is removed);
- ``created_by`` becomes ``INTEGER REFERENCES users(id)``: a stored name that is a
  username becomes that user's id, other names (``apply``, ``import-legacy`` …) NULL;
- the design's database defaults, and its nullability, on every column it declares;
- ``data_source_sync_history.created_at`` (filled with the run's start);
- templates keep ``template_type`` (the connection type) and ``template_config`` (source
  type, connection, authentication and mapping configs) in place of five columns.

SQLite rebuilds tables for these changes, which env.py runs with foreign keys off (a
rebuilt registry would otherwise take its children with it) and checks afterwards.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

REGISTRY = "data_source_registry"
HISTORY = "data_source_sync_history"
TEMPLATES = "data_source_templates"
# Child table → (its unique constraint, the column unique with the source).
CHILDREN = {
    "data_source_connections": ("uq_connection_source_name", "connection_name"),
    "data_source_mappings": ("uq_mapping_source_target", "target_table"),
}
NOW = sa.text("CURRENT_TIMESTAMP")
TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TEMPLATE_PARTS = (
    "source_type",
    "connection_config",
    "authentication_config",
    "mapping_config",
)


def _fk(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def _user_of(table: str, column: str) -> str:
    return (
        f"UPDATE {table} SET {column}_user = "
        f"(SELECT u.id FROM users u WHERE u.username = {table}.{column})"
    )


def _timestamps(batch: Any, *, updated: bool = True) -> None:
    batch.alter_column("created_at", existing_type=TIME, nullable=True, server_default=NOW)
    if updated:
        batch.alter_column("updated_at", existing_type=TIME, nullable=True, server_default=NOW)


def _created_by(table: str) -> None:
    """Replace the text ``created_by`` by the integer filled beside it. (SQLite's batch
    loses a constraint made on a column renamed in the same batch: two batches.)"""
    with op.batch_alter_table(table) as batch:
        batch.drop_column("created_by")
        batch.alter_column(
            "created_by_user", new_column_name="created_by", existing_type=sa.Integer()
        )


def _creator_key(batch: Any, table: str) -> None:
    batch.create_foreign_key(
        _fk(table, "created_by", "users"), "users", ["created_by"], ["id"], ondelete="SET NULL"
    )


def _registry(conn: sa.Connection) -> None:
    op.add_column(REGISTRY, sa.Column("created_by_user", sa.Integer(), nullable=True))
    conn.execute(sa.text(_user_of(REGISTRY, "created_by")))
    _created_by(REGISTRY)
    with op.batch_alter_table(REGISTRY) as batch:
        _creator_key(batch, REGISTRY)
        for column, type_, default in (
            ("status", sa.String(length=16), "active"),
            ("priority", sa.Integer(), "1"),
            ("refresh_interval", sa.Integer(), "300"),
            ("error_count", sa.Integer(), "0"),
        ):
            batch.alter_column(column, existing_type=type_, nullable=True, server_default=default)
        _timestamps(batch)


def _child(conn: sa.Connection, table: str, unique: str, with_column: str) -> None:
    op.add_column(table, sa.Column("registry_ref", sa.Integer(), nullable=True))
    conn.execute(
        sa.text(
            f"UPDATE {table} SET registry_ref = "
            f"(SELECT r.id FROM {REGISTRY} r WHERE r.source_id = {table}.source_id)"
        )
    )
    fk = _fk(table, "source_id", REGISTRY)
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(fk, type_="foreignkey")
        batch.drop_constraint(unique, type_="unique")
        batch.drop_column("source_id")
        batch.alter_column("registry_ref", new_column_name="source_id", existing_type=sa.Integer())
    with op.batch_alter_table(table) as batch:
        batch.create_foreign_key(fk, REGISTRY, ["source_id"], ["id"], ondelete="CASCADE")
        batch.create_unique_constraint(unique, ["source_id", with_column])
        if table == "data_source_connections":
            for column in ("connection_config", "authentication_config"):
                batch.alter_column(column, existing_type=JSON, nullable=True)
            for column in ("is_primary", "is_backup"):
                batch.alter_column(
                    column, existing_type=sa.Boolean(), nullable=True, server_default=sa.false()
                )
            batch.alter_column(
                "status", existing_type=sa.String(length=16), nullable=True, server_default="active"
            )
            batch.alter_column(
                "position", existing_type=sa.Integer(), nullable=False, server_default="0"
            )
        else:
            batch.alter_column("mapping_config", existing_type=JSON, nullable=True)
            for column, default in (("sync_strategy", "incremental"), ("sync_frequency", "hourly")):
                batch.alter_column(
                    column,
                    existing_type=sa.String(length=16),
                    nullable=True,
                    server_default=default,
                )
            batch.alter_column(
                "data_retention_days", existing_type=sa.Integer(), server_default="365"
            )
            batch.alter_column(
                "is_active", existing_type=sa.Boolean(), nullable=True, server_default=sa.true()
            )
        _timestamps(batch)


def _history(conn: sa.Connection) -> None:
    op.drop_index("ix_sync_history_source_started", table_name=HISTORY)
    with op.batch_alter_table(HISTORY) as batch:
        batch.alter_column(
            "source_id",
            new_column_name="source_key",
            existing_type=sa.String(length=100),
            nullable=True,
        )
    op.add_column(HISTORY, sa.Column("source_id", sa.Integer(), nullable=True))
    op.add_column(HISTORY, sa.Column("created_at", TIME, nullable=True))
    conn.execute(
        sa.text(
            f"UPDATE {HISTORY} SET created_at = sync_started_at, source_id = "
            f"(SELECT r.id FROM {REGISTRY} r WHERE r.source_id = {HISTORY}.source_key)"
        )
    )
    with op.batch_alter_table(HISTORY) as batch:
        batch.create_foreign_key(
            _fk(HISTORY, "source_id", REGISTRY),
            REGISTRY,
            ["source_id"],
            ["id"],
            ondelete="SET NULL",
        )
        for action in ("processed", "inserted", "updated", "deleted"):
            batch.alter_column(
                f"records_{action}",
                existing_type=sa.BigInteger(),
                nullable=True,
                server_default="0",
            )
        batch.alter_column("records_rejected", existing_type=sa.BigInteger(), server_default="0")
        batch.alter_column("created_at", existing_type=TIME, server_default=NOW)
    op.create_index(
        "ix_sync_history_source_started", HISTORY, ["source_key", "sync_started_at"], unique=False
    )


def _loaded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _templates(conn: sa.Connection) -> None:
    op.add_column(TEMPLATES, sa.Column("template_type", sa.String(length=32), nullable=True))
    op.add_column(TEMPLATES, sa.Column("template_config", JSON, nullable=True))
    op.add_column(TEMPLATES, sa.Column("created_by_user", sa.Integer(), nullable=True))
    conn.execute(sa.text(_user_of(TEMPLATES, "created_by")))
    t = sa.table(
        TEMPLATES,
        sa.column("id", sa.Integer()),
        sa.column("connection_type", sa.String()),
        sa.column("source_type", sa.String()),
        *(sa.column(part, JSON) for part in TEMPLATE_PARTS[1:]),
        sa.column("template_type", sa.String()),
        sa.column("template_config", JSON),
    )
    rows = conn.execute(sa.select(t.c.id, t.c.connection_type, *(t.c[p] for p in TEMPLATE_PARTS)))
    for row in rows.mappings().all():
        config = {part: row[part] for part in TEMPLATE_PARTS}
        conn.execute(
            t.update()
            .where(t.c.id == row["id"])
            .values(template_type=row["connection_type"], template_config=config)
        )
    with op.batch_alter_table(TEMPLATES) as batch:
        for column in ("connection_type", *TEMPLATE_PARTS):
            batch.drop_column(column)
    _created_by(TEMPLATES)
    with op.batch_alter_table(TEMPLATES) as batch:
        _creator_key(batch, TEMPLATES)
        batch.alter_column("template_type", existing_type=sa.String(length=32), nullable=False)
        batch.alter_column("display_name", existing_type=sa.String(length=255), nullable=True)
        batch.alter_column(
            "is_predefined", existing_type=sa.Boolean(), nullable=True, server_default=sa.false()
        )
        _timestamps(batch)


def upgrade() -> None:
    conn = op.get_bind()
    _registry(conn)
    for table, (unique, column) in CHILDREN.items():
        _child(conn, table, unique, column)
    _history(conn)
    _templates(conn)


# -- downgrade: back to revision 0006 (user ids become names again, slugs come back) --
def _fill(table: str, **fills: str) -> None:
    """Give NULLs a value before their column is NOT NULL again (rows made by plain SQL)."""
    sets = ", ".join(f"{column} = COALESCE({column}, {fill})" for column, fill in fills.items())
    op.get_bind().execute(sa.text(f"UPDATE {table} SET {sets}"))


def _name_of_creator(batch_table: str) -> None:
    op.add_column(batch_table, sa.Column("created_by_name", sa.String(length=100)))
    op.get_bind().execute(
        sa.text(
            f"UPDATE {batch_table} SET created_by_name = "
            f"(SELECT u.username FROM users u WHERE u.id = {batch_table}.created_by)"
        )
    )


def _back_to_names(table: str) -> None:
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(_fk(table, "created_by", "users"), type_="foreignkey")
        batch.drop_column("created_by")
        batch.alter_column(
            "created_by_name", new_column_name="created_by", existing_type=sa.String(length=100)
        )


def _strict_timestamps(batch: Any, *, updated: bool = True) -> None:
    for column in ("created_at", "updated_at") if updated else ("created_at",):
        batch.alter_column(column, existing_type=TIME, nullable=False, server_default=None)


def _templates_down(conn: sa.Connection) -> None:
    _name_of_creator(TEMPLATES)
    op.add_column(TEMPLATES, sa.Column("source_type", sa.String(length=32)))
    op.add_column(TEMPLATES, sa.Column("connection_type", sa.String(length=32)))
    for part in TEMPLATE_PARTS[1:]:
        op.add_column(TEMPLATES, sa.Column(part, JSON))
    t = sa.table(
        TEMPLATES,
        sa.column("id", sa.Integer()),
        sa.column("template_type", sa.String()),
        sa.column("template_config", JSON),
        sa.column("connection_type", sa.String()),
        sa.column("source_type", sa.String()),
        *(sa.column(part, JSON) for part in TEMPLATE_PARTS[1:]),
    )
    for row in conn.execute(sa.select(t.c.id, t.c.template_type, t.c.template_config)).all():
        config = _loaded(row.template_config) or {}
        conn.execute(
            t.update()
            .where(t.c.id == row.id)
            .values(
                connection_type=row.template_type,
                source_type=config.get("source_type") or row.template_type,
                **{part: config.get(part) or {} for part in TEMPLATE_PARTS[1:]},
            )
        )
    _fill(
        TEMPLATES,
        display_name="template_name",
        is_predefined="false",
        created_at="CURRENT_TIMESTAMP",
        updated_at="CURRENT_TIMESTAMP",
    )
    _back_to_names(TEMPLATES)
    with op.batch_alter_table(TEMPLATES) as batch:
        batch.drop_column("template_type")
        batch.drop_column("template_config")
        for column in ("source_type", "connection_type"):
            batch.alter_column(column, existing_type=sa.String(length=32), nullable=False)
        for part in TEMPLATE_PARTS[1:]:
            batch.alter_column(part, existing_type=JSON, nullable=False)
        batch.alter_column("display_name", existing_type=sa.String(length=255), nullable=False)
        batch.alter_column(
            "is_predefined", existing_type=sa.Boolean(), nullable=False, server_default=None
        )
        _strict_timestamps(batch)


def _history_down() -> None:
    op.drop_index("ix_sync_history_source_started", table_name=HISTORY)
    _fill(HISTORY, source_key="''")
    for action in ("processed", "inserted", "updated", "deleted"):
        _fill(HISTORY, **{f"records_{action}": "0"})
    with op.batch_alter_table(HISTORY) as batch:
        batch.drop_constraint(_fk(HISTORY, "source_id", REGISTRY), type_="foreignkey")
        batch.drop_column("source_id")
        batch.drop_column("created_at")
        for action in ("processed", "inserted", "updated", "deleted", "rejected"):
            batch.alter_column(
                f"records_{action}",
                existing_type=sa.BigInteger(),
                nullable=False,
                server_default=None,
            )
    with op.batch_alter_table(HISTORY) as batch:
        batch.alter_column(
            "source_key",
            new_column_name="source_id",
            existing_type=sa.String(length=100),
            nullable=False,
        )
    op.create_index(
        "ix_sync_history_source_started", HISTORY, ["source_id", "sync_started_at"], unique=False
    )


def _child_down(conn: sa.Connection, table: str, unique: str, with_column: str) -> None:
    op.add_column(table, sa.Column("source_slug", sa.String(length=100)))
    conn.execute(
        sa.text(
            f"UPDATE {table} SET source_slug = "
            f"(SELECT r.source_id FROM {REGISTRY} r WHERE r.id = {table}.source_id)"
        )
    )
    conn.execute(sa.text(f"DELETE FROM {table} WHERE source_slug IS NULL"))
    fills = {"created_at": "CURRENT_TIMESTAMP", "updated_at": "CURRENT_TIMESTAMP"}
    if table == "data_source_connections":
        fills |= {"connection_config": "'{}'", "authentication_config": "'{}'"}
        fills |= {"is_primary": "false", "is_backup": "false", "status": "'active'"}
    else:
        fills |= {"mapping_config": "'{}'", "sync_strategy": "'full'", "is_active": "true"}
    _fill(table, **fills)
    fk = _fk(table, "source_id", REGISTRY)
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(fk, type_="foreignkey")
        batch.drop_constraint(unique, type_="unique")
        batch.drop_column("source_id")
        batch.alter_column(
            "source_slug",
            new_column_name="source_id",
            existing_type=sa.String(length=100),
            nullable=False,
        )
    with op.batch_alter_table(table) as batch:
        batch.create_foreign_key(
            fk, REGISTRY, ["source_id"], ["source_id"], onupdate="CASCADE", ondelete="CASCADE"
        )
        batch.create_unique_constraint(unique, ["source_id", with_column])
        if table == "data_source_connections":
            for column in ("connection_config", "authentication_config"):
                batch.alter_column(column, existing_type=JSON, nullable=False)
            for column in ("is_primary", "is_backup"):
                batch.alter_column(
                    column, existing_type=sa.Boolean(), nullable=False, server_default=None
                )
            batch.alter_column(
                "status", existing_type=sa.String(length=16), nullable=False, server_default=None
            )
            batch.alter_column("position", existing_type=sa.Integer(), server_default=None)
        else:
            batch.alter_column("mapping_config", existing_type=JSON, nullable=False)
            batch.alter_column(
                "sync_strategy",
                existing_type=sa.String(length=16),
                nullable=False,
                server_default=None,
            )
            batch.alter_column(
                "sync_frequency", existing_type=sa.String(length=16), server_default=None
            )
            batch.alter_column(
                "data_retention_days", existing_type=sa.Integer(), server_default=None
            )
            batch.alter_column(
                "is_active", existing_type=sa.Boolean(), nullable=False, server_default=None
            )
        _strict_timestamps(batch)


def _registry_down() -> None:
    _name_of_creator(REGISTRY)
    _fill(
        REGISTRY,
        status="'active'",
        priority="2",
        refresh_interval="300",
        error_count="0",
        created_at="CURRENT_TIMESTAMP",
        updated_at="CURRENT_TIMESTAMP",
    )
    _back_to_names(REGISTRY)
    with op.batch_alter_table(REGISTRY) as batch:
        for column, type_ in (
            ("status", sa.String(length=16)),
            ("priority", sa.Integer()),
            ("refresh_interval", sa.Integer()),
            ("error_count", sa.Integer()),
        ):
            batch.alter_column(column, existing_type=type_, nullable=False, server_default=None)
        _strict_timestamps(batch)


def downgrade() -> None:
    conn = op.get_bind()
    _templates_down(conn)
    _history_down()
    for table, (unique, column) in CHILDREN.items():
        _child_down(conn, table, unique, column)
    _registry_down()
