"""The registry schema: the design's table and column names, created by migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from sqlalchemy import inspect

from factorysync.store.db import (
    HEAD_REVISION,
    SQLITE_PAGE_SIZE,
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
)
from factorysync.store.store import Store

EXPECTED = {
    "data_source_registry": {
        "source_id",
        "name",
        "description",
        "source_type",
        "connection_type",
        "status",
        "priority",
        "refresh_interval",
        "last_sync",
        "next_sync",
        "error_count",
        "last_error",
        "created_by",
        "created_at",
        "updated_at",
    },
    "data_source_connections": {
        "source_id",
        "connection_name",
        "connection_type",
        "connection_config",
        "authentication_config",
        "is_primary",
        "is_backup",
        "status",
    },
    "data_source_mappings": {
        "source_id",
        "target_table",
        "mapping_config",
        "sync_strategy",
        "sync_frequency",
        "data_retention_days",
        "is_active",
    },
    "data_source_sync_history": {
        "source_id",
        "sync_type",
        "sync_status",
        "records_processed",
        "records_inserted",
        "records_updated",
        "records_deleted",
        "records_rejected",
        "sync_duration_ms",
        "error_message",
        "sync_started_at",
        "sync_completed_at",
    },
    "data_source_templates": {"template_name", "template_type", "template_config"},
    "users": {"username", "role", "password_hash", "is_active"},
    "api_tokens": {"user_id", "token_hash", "expires_at", "revoked_at"},
    "infolog": {"level", "source_id", "run_id", "message", "details", "created_at"},
    "data_source_sync_state": {"source_id", "mapping_id", "state_key", "state"},
    "data_source_quarantine": {"source_id", "run_id", "record", "reasons"},
    "alerts": {"source_id", "rule", "state", "message"},
}


def test_tables_and_columns(store: Store) -> None:
    with store.connect() as conn:
        insp = inspect(conn)
        for table, columns in EXPECTED.items():
            have = {c["name"] for c in insp.get_columns(table)}
            assert columns <= have, f"{table} lacks {columns - have}"


def test_migrations_match_models_and_upgrade_is_idempotent(store: Store) -> None:
    assert current_revision(store.engine) == head_revision(store.engine) == HEAD_REVISION
    command.check(alembic_config(store.engine))  # raises if models and migrations differ
    assert store.upgrade() == head_revision(store.engine)


def test_sqlite_store_uses_wal(store: Store) -> None:
    if store.dialect != "sqlite":
        return
    with store.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_new_sqlite_store_uses_large_pages_and_an_existing_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    fresh = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    with fresh.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == SQLITE_PAGE_SIZE
    fresh.dispose()

    old = tmp_path / "old.db"
    raw = sqlite3.connect(old)  # made elsewhere, with SQLite's default pages
    raw.execute("CREATE TABLE t (x INTEGER)")
    raw.execute("INSERT INTO t VALUES (1)")
    raw.commit()
    default = raw.execute("PRAGMA page_size").fetchone()[0]
    raw.close()
    assert default != SQLITE_PAGE_SIZE
    engine = make_engine(f"sqlite:///{old}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == default
        assert conn.exec_driver_sql("SELECT x FROM t").scalar() == 1
    engine.dispose()
