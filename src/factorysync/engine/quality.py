"""Data quality: the rules of ``mapping_config.validate``, checked on every mapped row,
and the quarantine, where the records a run refused wait to be fixed.

The quarantine keeps one entry per source, target table and record content
(``content_hash``). A record refused again counts up the entry's ``times_seen`` and moves
its ``last_seen``, ``run_id`` and ``reasons`` to the latest refusal, so the table grows
with the distinct bad records, never with the runs that meet them. An entry leaves by

* ``replay``: the record passes the mapping and rules as they are now, and is loaded
  through the same staging and merge as a sync (nothing is deleted);
* ``clear``: the operator drops the source's entries;
* retention: the mapping's ``data_retention_days``, judged by ``last_seen``
  (:mod:`factorysync.engine.retention`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, select, update

from factorysync.engine.mapping import Mapper, ValidationRule
from factorysync.errors import MappingError
from factorysync.store.schema import data_source_quarantine as quarantine_t
from factorysync.store.types import utcnow

Check = Callable[[Any], str | None]
UPSERT_CHUNK = 500  # entries per INSERT … ON CONFLICT statement


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class Validator:
    """Compiled rules; ``check(row)`` returns the reasons a row is invalid (empty if valid)."""

    def __init__(self, rules: list[ValidationRule]) -> None:
        self._checks: list[tuple[str, Check]] = [(r.field, self._compile(r)) for r in rules]

    @staticmethod
    def _compile(rule: ValidationRule) -> Check:
        field, limit = rule.field, rule.value
        if rule.rule == "required":
            return lambda v: f"{field} is required" if v is None or v == "" else None
        if rule.rule in ("min", "max"):
            below = rule.rule == "min"

            def bound(v: Any) -> str | None:
                if v is None:
                    return None
                n = _number(v)
                if n is None:
                    return f"{field} = {v!r} is not a number"
                if below and n < limit:
                    return f"{field} = {v!r} is below the minimum {limit}"
                if not below and n > limit:
                    return f"{field} = {v!r} is above the maximum {limit}"
                return None

            return bound
        if rule.rule == "regex":
            pattern = re.compile(limit)
            return lambda v: (
                None
                if v is None or pattern.fullmatch(str(v))
                else f"{field} = {v!r} does not match {limit!r}"
            )
        if rule.rule == "allowed":
            allowed = list(limit)
            return lambda v: (
                None if v is None or v in allowed else f"{field} = {v!r} is not one of {allowed}"
            )
        seen: set[Any] = set()

        def unique(v: Any) -> str | None:
            if v is None:
                return None
            key = repr(v) if isinstance(v, dict | list) else v
            if key in seen:
                return f"{field} = {v!r} appears more than once in this run"
            seen.add(key)
            return None

        return unique

    def check(self, row: dict[str, Any]) -> list[str]:
        return [msg for field, fn in self._checks if (msg := fn(row.get(field))) is not None]


def row_problems(
    mapper: Mapper, validator: Validator, row: dict[str, Any], cursor_field: str | None = None
) -> list[str]:
    """Why a mapped row cannot be loaded: an empty key or cursor, then the rules."""
    found = [f"primary key column {k!r} is empty" for k in mapper.missing_key_columns(row)]
    if cursor_field and row.get(cursor_field) is None:
        found.append(f"cursor_field {cursor_field!r} is empty")
    return found + validator.check(row)


def key_of_record(mapper: Mapper, record: Any) -> tuple[Any, ...] | None:
    """The primary key of a record that could not be mapped as a whole, when its key
    columns still map (a bad value elsewhere); None when any key column does not."""
    if not mapper.key:
        return None
    if not isinstance(record, dict):
        if not mapper.columns or mapper.auto:
            return None
        record = {"value": record}
    columns = {c.name: c for c in mapper.columns}
    fields = mapper.source_fields(record) if mapper.auto else {}
    values = []
    for name in mapper.key:
        try:
            if name in columns:
                value = columns[name].compute(record)
            elif name in fields:
                value = record[fields[name]]
            else:
                return None
        except (MappingError, ValueError, TypeError, ArithmeticError):
            return None
        if value is None:
            return None
        values.append(value)
    return tuple(values)


# -- quarantine entries ----------------------------------------------------------------
def _canonical(record: Any) -> bytes:
    try:
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer beyond 64 bits: the standard library writes it
        return json.dumps(record, sort_keys=True, ensure_ascii=False).encode()


def normalised(record: Any) -> Any:
    """The record as the quarantine stores it: plain JSON values (timestamps as ISO text,
    other objects as their text)."""
    try:
        return orjson.loads(orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS))
    except TypeError:
        return json.loads(json.dumps(record, default=str))


def content_hash(record: Any) -> str:
    """Hash of a record's content: equal records (keys in any order) hash equal."""
    return hashlib.blake2b(_canonical(normalised(record)), digest_size=16).hexdigest()


def reject(
    source_id: str,
    target_table: str,
    record: Any,
    reasons: list[str],
    run_id: int | None,
    *,
    stage: str = "record",
) -> dict[str, Any]:
    """One refused record, for :func:`store_rejects`; ``stage`` as the column says."""
    return {
        "source_id": source_id,
        "target_table": target_table,
        "record": record,
        "reasons": reasons,
        "run_id": run_id,
        "stage": stage,
        "kept_previous": False,
    }


def store_rejects(
    conn: Connection, entries: Iterable[dict[str, Any]], now: datetime | None = None
) -> int:
    """Upsert refused records (see :func:`reject`) into the quarantine; distinct entries.

    A record already quarantined for its source and target table counts up
    ``times_seen`` (once per refusal, so a record twice in one file counts twice) and
    takes the latest run, reasons and ``kept_previous``; ``first_seen`` stays.
    """
    now = now or utcnow()
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for entry in entries:
        record = normalised(entry["record"])
        digest = hashlib.blake2b(_canonical(record), digest_size=16).hexdigest()
        key = (entry["source_id"], entry.get("target_table") or "", digest)
        have = merged.get(key)
        if have is not None:
            have["times_seen"] += 1
            have.update(reasons=list(entry["reasons"]), run_id=entry.get("run_id"))
            have["kept_previous"] = have["kept_previous"] or bool(entry.get("kept_previous"))
            continue
        merged[key] = {
            "source_id": key[0],
            "target_table": key[1],
            "content_hash": digest,
            "record": record,
            "stage": entry.get("stage") or "record",
            "reasons": list(entry["reasons"]),
            "run_id": entry.get("run_id"),
            "first_seen": now,
            "last_seen": now,
            "times_seen": 1,
            "kept_previous": bool(entry.get("kept_previous")),
        }
    if not merged:
        return 0
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    stmt = dialect_insert(quarantine_t)
    stmt = stmt.on_conflict_do_update(
        index_elements=["source_id", "target_table", "content_hash"],
        set_={
            "times_seen": quarantine_t.c.times_seen + stmt.excluded.times_seen,
            "last_seen": stmt.excluded.last_seen,
            "reasons": stmt.excluded.reasons,
            "run_id": stmt.excluded.run_id,
            "stage": stmt.excluded.stage,
            "kept_previous": stmt.excluded.kept_previous,
        },
    )
    # One order for every writer, so two transactions never wait on each other's rows.
    rows = sorted(merged.values(), key=lambda r: (r["target_table"], r["content_hash"]))
    for start in range(0, len(rows), UPSERT_CHUNK):
        conn.execute(stmt, rows[start : start + UPSERT_CHUNK])
    return len(rows)


ENTRY_COLUMNS = (
    "id",
    "source_id",
    "target_table",
    "stage",
    "times_seen",
    "first_seen",
    "last_seen",
    "run_id",
    "kept_previous",
    "reasons",
    "record",
    "content_hash",
)


def count_entries(conn: Connection, source_id: str) -> int:
    return int(
        conn.execute(select(func.count()).where(quarantine_t.c.source_id == source_id)).scalar_one()
    )


def list_entries(
    conn: Connection, source_id: str, *, limit: int | None, offset: int = 0
) -> list[dict[str, Any]]:
    """The source's entries, most recently refused first (``limit`` None: all)."""
    stmt = (
        select(*(quarantine_t.c[c] for c in ENTRY_COLUMNS))
        .where(quarantine_t.c.source_id == source_id)
        .order_by(quarantine_t.c.last_seen.desc(), quarantine_t.c.id.desc())
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [{str(k): v for k, v in r.items()} for r in conn.execute(stmt).mappings()]


def clear_entries(conn: Connection, source_id: str) -> int:
    return int(
        conn.execute(delete(quarantine_t).where(quarantine_t.c.source_id == source_id)).rowcount
    )


def purge_entries(conn: Connection, source_id: str, target_table: str, cutoff: datetime) -> int:
    """Remove entries of one mapping last refused before ``cutoff`` (retention)."""
    return int(
        conn.execute(
            delete(quarantine_t).where(
                quarantine_t.c.source_id == source_id,
                quarantine_t.c.target_table == target_table,
                quarantine_t.c.last_seen < cutoff,
            )
        ).rowcount
    )


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

    def __init__(self, mrun: Any) -> None:
        self.mapper: Mapper = mrun.mapper
        self.validator: Validator = mrun.validator
        self.cursor_field = mrun.cursor_field if mrun.incremental else None
        self.table = mrun.target
        self.staged = 0
        self._occurrences: dict[str, int] = {}

    def check(self, record: Any, stage: str) -> tuple[list[dict[str, Any]], list[str]]:
        """(rows, problems): the record's rows under the current mapping and rules."""
        try:
            records = self.mapper.expand(record) if stage == "source" else [record]
            rows = [self.mapper.map(r) for r in records]
        except MappingError as exc:
            return [], [str(exc)]
        problems = [
            p
            for row in rows
            for p in row_problems(self.mapper, self.validator, row, self.cursor_field)
        ]
        return rows, problems

    def stage(self, rows: list[dict[str, Any]]) -> None:
        from factorysync.store.targets import row_hash

        hashes = []
        for row in rows:
            digest = row_hash(row)
            hashes.append(digest)
            if not self.mapper.key:
                n = self._occurrences.get(digest, 0)
                self._occurrences[digest] = n + 1
                row["_row_key"] = f"{digest}:{n}"
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
    from factorysync.engine.runner import run_slot  # the runner imports this module
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
    from factorysync.engine.runner import mapping_runs  # the runner imports this module

    source_id = decl.source_id
    # Timestamps without an offset are read in the primary connection's zone, as it reads them.
    primary = next((c for c in decl.connections if c.is_primary), None)
    zone = (primary.connection_config.get("timezone") if primary else None) or "UTC"
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
