"""Retention: rows older than a mapping's ``data_retention_days`` are purged.

Age is judged by the mapping's ``retention_field`` (a date or timestamp column), else by
``_synced_at``. Each purge that removes rows is recorded as a history run of type
``retention``. A full-sync source re-inserts rows its snapshot still holds, so retention
is meant for incremental and time-series sources.

The same retention purges the mapping's quarantine entries whose record was last refused
(``last_seen``) before the cutoff, whatever the sync strategy: a bad record the source no
longer sends leaves the quarantine with the data of its age.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, inspect

from factorysync.engine.history import WORKER
from factorysync.engine.quarantine import purge_entries
from factorysync.observability import infolog
from factorysync.store.capture import capture_deleted, forwarded_key
from factorysync.store.db import write_transaction
from factorysync.store.registry import data_changed, get_source
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.store.targets import target_table
from factorysync.store.types import utcnow


def purge(store: Store, source_id: str) -> int:
    """Purge one source's expired rows and quarantine entries from every mapping with a
    retention; returns the count of rows (entries are in the history row's details)."""
    total = entries = 0
    with store.connect() as conn, write_transaction(conn):
        source = get_source(conn, source_id)
        now = utcnow()
        for mapping in source["mappings"]:
            days = mapping["data_retention_days"]
            if not days:
                continue
            entries += purge_entries(
                conn, source_id, mapping["target_table"], now - timedelta(days=days)
            )
            if not inspect(conn).has_table(mapping["target_table"]):
                continue
            table = target_table(conn, mapping["target_table"])
            column = (mapping["mapping_config"] or {}).get("retention_field") or "_synced_at"
            if column not in table.c:
                continue
            cutoff: Any = now - timedelta(days=days)
            if type(table.c[column].type).__name__ == "Date":
                cutoff = cutoff.date()
            expired = [table.c._source_id == source_id, table.c[column] < cutoff]
            key = forwarded_key(conn, mapping["target_table"])
            if key:
                capture_deleted(
                    conn,
                    table,
                    key,
                    expired,
                    table=mapping["target_table"],
                    source_id=source_id,
                    run_id=None,
                    now=now,
                )
            total += conn.execute(delete(table).where(*expired)).rowcount
        if total:
            data_changed(conn, source_id)
        if total or entries:
            run_id = conn.execute(
                insert(hist_t)
                .values(
                    source_id=source_id,
                    sync_type="retention",
                    sync_status="success",
                    trigger="schedule",
                    records_deleted=total,
                    details={"quarantine_purged": entries} if entries else None,
                    sync_started_at=now,
                    sync_completed_at=utcnow(),
                    sync_duration_ms=0,
                    worker=WORKER,
                )
                .returning(hist_t.c.id)
            ).scalar_one()
            infolog.record(
                conn,
                "info",
                "retention.purged",
                f"retention purged {total} row(s) and {entries} quarantine entries",
                source_id=source_id,
                run_id=run_id,
            )
    return total


def sources_with_retention(store: Store) -> list[str]:
    from sqlalchemy import select

    from factorysync.store.schema import data_source_mappings as maps_t
    from factorysync.store.schema import data_source_registry as reg_t

    with store.connect() as conn:
        return sorted(
            set(
                conn.execute(
                    select(reg_t.c.source_id)
                    .join(maps_t, maps_t.c.registry_id == reg_t.c.id)
                    .where(
                        maps_t.c.data_retention_days.is_not(None),
                        maps_t.c.is_active.is_not(False),
                    )
                ).scalars()
            )
        )
