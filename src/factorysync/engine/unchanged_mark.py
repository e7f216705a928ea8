"""Writing the unchanged-source marker (:mod:`factorysync.store.unchanged`) as a run ends.

Before a run of a file source reads, :func:`before` hashes the files its primary
connection names; when the run ends ``success`` having rejected nothing, :func:`write`
hashes them again and, when nothing moved meanwhile, stores the marker in the run's
final transaction. Every other ending removes it (:func:`clear`).
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, select

from factorysync.connectors.base import Connector
from factorysync.engine.history import RunResult
from factorysync.engine.schedule import interval_seconds
from factorysync.engine.state import save_state
from factorysync.settings import Settings
from factorysync.store import unchanged
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_state as state_t

# Run id → the files its primary connection named, hashed before the run read them.
_taken: dict[int, list[list[Any]]] = {}


def before(run_id: int, connector: Connector) -> None:
    """Hash the files a file connection is about to read (nothing for other connections,
    or when the files cannot be listed: the read reports that)."""
    files = getattr(connector, "files", None)
    if connector.type_name != "file" or files is None:
        return
    with suppress(Exception):
        entries = unchanged.file_entries(list(files()))
        if entries is not None:
            _taken[run_id] = entries


def facts(settings: Settings) -> dict[str, Any]:
    return unchanged.settings_facts(
        settings.data_root_paths(),
        settings.timezone,
        settings.site,
        settings.secret_key_file.expanduser().resolve(),
        bool(settings.secret_key.strip()),
    )


def driver_query(conn: Connection) -> unchanged.Query:
    """Plain SQL on the store's driver (``?`` placeholders), rows as dicts."""
    pg = conn.dialect.name != "sqlite"

    def query(sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        result = conn.exec_driver_sql(sql.replace("?", "%s") if pg else sql, params)
        return [dict(r._mapping) for r in result]

    return query


def write(conn: Connection, settings: Settings, source: dict[str, Any], result: RunResult) -> None:
    """Store the marker of a run that may vouch for the next ones, else remove it
    (in the run's final transaction, after its history row and registry are written)."""
    marker = _marker(conn, settings, source, result, _taken.pop(result.run_id, None))
    if marker is None:
        clear(conn, result.source_id, result.run_id)
    else:
        save_state(
            conn,
            result.source_id,
            unchanged.MARKER_MAPPING,
            unchanged.MARKER_KEY,
            marker,
            result.run_id,
        )


def clear(conn: Connection, source_id: str, run_id: int | None = None) -> None:
    """Remove the source's marker (and forget what ``run_id`` hashed)."""
    if run_id is not None:
        _taken.pop(run_id, None)
    conn.execute(
        delete(state_t).where(
            state_t.c.source_id == source_id,
            state_t.c.mapping_id == unchanged.MARKER_MAPPING,
            state_t.c.state_key == unchanged.MARKER_KEY,
        )
    )


def _marker(
    conn: Connection,
    settings: Settings,
    source: dict[str, Any],
    result: RunResult,
    files: list[list[Any]] | None,
) -> dict[str, Any] | None:
    if files is None or result.sync_status != "success" or result.details:
        return None
    if result.error_message or result.records_rejected:
        return None
    if result.sync_type == "incremental" and (
        result.records_processed or result.records_inserted or result.records_updated
    ):
        return None  # the next run reads less: only a run that read nothing repeats
    if result.sync_type not in ("full", "incremental"):
        return None
    query = driver_query(conn)
    rows = unchanged.source_rows(query, result.source_id)
    if rows is None or unchanged.why_not(rows) is not None:
        return None
    primary = next(c for c in rows["connections"] if unchanged._plain(c["is_primary"]))
    if primary["connection_name"] != result.connection_name:
        return None
    if unchanged.file_entries([Path(f[0]) for f in files]) != files:
        return None  # a file changed while the run read it
    version = conn.execute(
        select(reg_t.c.data_version).where(reg_t.c.source_id == result.source_id)
    ).scalar_one()
    try:
        with conn.begin_nested():  # a failed count leaves the run's transaction usable
            targets = unchanged.target_counts(query, rows)
    except Exception:
        return None  # a target table that cannot be counted is never vouched for
    if any(n > unchanged.MAX_TARGET_ROWS for n in targets.values()):
        return None
    return {
        "run_id": result.run_id,
        "config": unchanged.config_digest(rows, facts(settings)),
        "state": unchanged.state_digest(query, result.source_id),
        "data_version": int(version),
        "targets": targets,
        "interval_s": interval_seconds(source),
        "connection_name": result.connection_name,
        "sync_type": result.sync_type,
        "records_processed": result.records_processed,
        "pattern": unchanged.file_pattern(rows),
        "files": files,
    }
