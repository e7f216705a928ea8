"""Data quality: where the rules, the quarantine and its replay are reached.

The rules of ``mapping_config.validate`` are checked on every mapped row by the record
pipeline (:mod:`factorysync.engine.pipeline`); the records a run refused wait in the
quarantine (:mod:`factorysync.engine.quarantine`) to be fixed. An entry leaves by

* ``replay`` (here): the record passes the mapping and rules as they are now, and is
  loaded through the same staging and merge as a sync (nothing is deleted);
* ``clear``: the operator drops the source's entries;
* retention: the mapping's ``data_retention_days``, judged by ``last_seen``
  (:mod:`factorysync.engine.retention`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, select, update

from factorysync.engine.pipeline import Validator, key_of_record, row_problems
from factorysync.engine.quarantine import (
    ENTRY_COLUMNS,
    clear_entries,
    content_hash,
    count_entries,
    list_entries,
    normalised,
    purge_entries,
    reject,
    store_rejects,
)
from factorysync.store.schema import data_source_quarantine as quarantine_t
from factorysync.store.types import utcnow

if TYPE_CHECKING:
    from factorysync.engine.mapping_run import MappingRun

__all__ = [
    "ENTRY_COLUMNS",
    "ReplayResult",
    "Validator",
    "clear_entries",
    "content_hash",
    "count_entries",
    "key_of_record",
    "list_entries",
    "normalised",
    "purge_entries",
    "reject",
    "replay",
    "row_problems",
    "store_rejects",
]


# -- replay ----------------------------------------------------------------------------
REPLAY_CHUNK = 1000  # entries read, checked and staged at a time


@dataclass
class ReplayResult:
    """What a replay did; ``run_id`` is its history row (``sync_type`` replay)."""

    run_id: int
    source_id: str
    examined: int = 0  # entries looked at
    loaded: int = 0  # entries that now pass: loaded and removed from the quarantine
    still_rejected: int = 0  # refused again (their reasons are updated)
    not_replayable: int = 0  # unparsed records, or no active mapping of their table
    records_inserted: int = 0
    records_updated: int = 0
    remaining: int = 0  # entries of the source left in the quarantine
    sync_status: str = "running"
    error_message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _ReplayTarget:
    """One active mapping during a replay, set up as a sync sets it up."""

    def __init__(self, mrun: MappingRun) -> None:
        self.pipeline = mrun.pipeline
        self.table = mrun.target
        self.staged = 0

    def check(self, record: Any, stage: str) -> tuple[list[dict[str, Any]], list[str]]:
        """(rows, problems): the record's rows under the current mapping and rules (a
        ``source`` entry is expanded again; a ``record`` entry already was)."""
        rows, problems = [], []
        for mapped in self.pipeline.run(record, expand=stage == "source"):
            if mapped.row is None:
                return [], mapped.problems
            rows.append(mapped.row)
            problems += mapped.problems
        return rows, problems

    def stage(self, rows: list[dict[str, Any]]) -> None:
        hashes = [self.pipeline.hashed(row) for row in rows]
        self.staged += self.table.stage(rows, hashes)


def replay(store: Any, source_id: str, *, trigger: str = "manual") -> ReplayResult:
    """Check the source's quarantined records again under its current mapping and rules,
    load those that pass (staging and merge, as a sync; nothing is deleted) and remove
    their entries; the others stay, with the reasons of this check.

    A record is loaded only when every row it stands for passes. Unparsed records (the
    connector could not read them) cannot be replayed: the next run reads them again.
    The replay is a history row of ``sync_type`` replay; it holds the source's run slot,
    so no sync of the source runs meanwhile. Raises AlreadyRunning during a run, and
    NotFoundError for an unknown source.
    """
    from factorysync.engine import history
    from factorysync.engine.slots import run_slot
    from factorysync.store.db import write_transaction
    from factorysync.store.registry import declaration_of, get_source

    with run_slot(source_id):
        started = utcnow()
        with store.begin() as conn:
            source = get_source(conn, source_id)
            decl = declaration_of(source, store.box)
            mappings = [m for m in decl.mappings if m.is_active]
            # Realtime windows are open whenever the service runs: a replay goes alongside.
            alongside = bool(mappings) and all(m.sync_strategy == "realtime" for m in mappings)
            run_id = history.start_run(
                conn, source_id, "replay", trigger, started, None, alongside=alongside
            )
        result = ReplayResult(run_id, source_id)
        try:
            with store.connect() as conn, write_transaction(conn):
                _replay(conn, decl, source, result)
                result.sync_status = "success"
                _close_replay(conn, result, started)
        except Exception as exc:
            result.sync_status = "failed"
            result.error_message = _describe(exc)
            with store.begin() as conn:
                _close_replay(conn, result, started)
            raise
    return result


def _describe(exc: BaseException) -> str:
    from factorysync.store.db import describe_db_error

    if exc.__class__.__module__.startswith("sqlalchemy"):
        return f"store error: {describe_db_error(exc)}"
    return str(exc) or type(exc).__name__


def _replay(conn: Connection, decl: Any, source: dict[str, Any], result: ReplayResult) -> None:
    from factorysync.engine.mapping_run import mapping_runs

    source_id = decl.source_id
    # Timestamps without an offset are read in the primary connection's zone, as it reads them.
    primary = next((c for c in decl.connections if c.is_primary), None)
    zone = primary.naive_zone if primary else "UTC"
    targets = {
        mrun.decl.target_table: _ReplayTarget(mrun)
        for mrun in mapping_runs(conn, decl, source, zone)
    }
    passed: list[int] = []
    last = 0
    while True:
        entries = conn.execute(
            select(quarantine_t.c.id, quarantine_t.c.target_table, quarantine_t.c.stage)
            .add_columns(quarantine_t.c.record, quarantine_t.c.reasons)
            .where(quarantine_t.c.source_id == source_id, quarantine_t.c.id > last)
            .order_by(quarantine_t.c.id)
            .limit(REPLAY_CHUNK)
        ).all()
        if not entries:
            break
        last = entries[-1].id
        staged: dict[str, list[dict[str, Any]]] = {}
        changed: list[dict[str, Any]] = []
        for entry in entries:
            result.examined += 1
            target = targets.get(entry.target_table)
            if target is None or entry.stage == "unparsed":
                result.not_replayable += 1
                continue
            rows, problems = target.check(entry.record, entry.stage)
            if problems:
                result.still_rejected += 1
                if problems != entry.reasons:
                    changed.append({"entry_id": entry.id, "new_reasons": problems})
                continue
            staged.setdefault(entry.target_table, []).extend(rows)
            passed.append(entry.id)
            result.loaded += 1
        for table, rows in staged.items():
            targets[table].stage(rows)
        if changed:
            from sqlalchemy import bindparam

            conn.execute(
                update(quarantine_t)
                .where(quarantine_t.c.id == bindparam("entry_id"))
                .values(reasons=bindparam("new_reasons")),
                changed,
            )
    now = utcnow()
    for target in targets.values():
        if target.staged:
            target.table.reload()
            counts = target.table.merge(result.run_id, now, delete_missing=None)
            result.records_inserted += counts.inserted
            result.records_updated += counts.updated
        target.table.drop_stage()
    for start in range(0, len(passed), REPLAY_CHUNK):
        conn.execute(
            delete(quarantine_t).where(quarantine_t.c.id.in_(passed[start : start + REPLAY_CHUNK]))
        )
    result.remaining = count_entries(conn, source_id)


def _close_replay(conn: Connection, result: ReplayResult, started: datetime) -> None:
    """Write the replay's outcome into its history row and the infolog.

    Unlike a sync it leaves the schedule, the error count and the circuit alone."""
    from factorysync.observability import infolog
    from factorysync.store.registry import data_changed
    from factorysync.store.schema import data_source_sync_history as hist_t

    now = utcnow()
    details = {
        "replayed": result.loaded,
        "still_rejected": result.still_rejected,
        "not_replayable": result.not_replayable,
        "remaining": result.remaining,
    }
    conn.execute(
        update(hist_t)
        .where(hist_t.c.id == result.run_id)
        .values(
            sync_status=result.sync_status,
            records_processed=result.examined,
            records_inserted=result.records_inserted,
            records_updated=result.records_updated,
            records_rejected=result.still_rejected + result.not_replayable,
            sync_completed_at=now,
            sync_duration_ms=int((now - started).total_seconds() * 1000),
            error_message=result.error_message,
            details=details if result.sync_status == "success" else None,
        )
    )
    if result.sync_status != "success":
        infolog.record(
            conn,
            "error",
            "quarantine.replay_failed",
            f"quarantine replay failed: {result.error_message}",
            source_id=result.source_id,
            run_id=result.run_id,
        )
        return
    if result.records_inserted or result.records_updated:
        data_changed(conn, result.source_id)
    infolog.record(
        conn,
        "info",
        "quarantine.replayed",
        f"quarantine replay: {result.examined} entries checked, {result.loaded} loaded "
        f"({result.records_inserted} inserted, {result.records_updated} updated), "
        f"{result.still_rejected} still rejected, {result.not_replayable} not replayable",
        source_id=result.source_id,
        run_id=result.run_id,
        details=details,
    )
