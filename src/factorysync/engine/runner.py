"""One sync run of one source, start to finish.

1. A ``data_source_sync_history`` row is committed as ``running``.
2. The first usable connection (primary, then backups in order) is read batch by batch;
   records are mapped and validated; good rows go to a private staging table, bad ones
   to quarantine (or the run fails, per ``on_invalid``).
3. One write transaction merges the staged rows into every target table (``full``
   deletes rows absent from the snapshot; ``incremental`` advances its cursor), stores
   quarantined rows, finishes the history row and updates the registry. Nothing of a
   failed run reaches the target tables.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from factorysync.config import MappingDecl, SourceDecl
from factorysync.connectors.base import Connector, ConnectorContext, ReadRequest
from factorysync.connectors.registry import build_connector
from factorysync.engine.mapping import Mapper
from factorysync.engine.quality import Validator
from factorysync.engine.state import (
    CONNECTOR_KEY,
    SHAPE_KEY,
    comparable,
    load_cursor,
    load_state,
    passes_cursor,
    save_cursor,
    save_state,
)
from factorysync.errors import ConnectorError, FactorySyncError, MappingError
from factorysync.observability import infolog
from factorysync.security.secrets import Redactor, resolve_env_refs
from factorysync.store.db import describe_db_error, write_transaction
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.schema import data_source_quarantine as quarantine_t
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.store.targets import TargetTable, row_hash
from factorysync.store.types import utcnow

log = logging.getLogger("factorysync.runner")
QUARANTINE_CAP = 10_000  # quarantined rows stored per run; beyond that they are only counted
CIRCUIT_FAILURES = 5  # consecutive failed runs that put a source in status 'error'
WORKER = f"{socket.gethostname()}:{os.getpid()}"
_running: set[str] = set()
_running_lock = threading.Lock()


class AlreadyRunning(FactorySyncError):
    """A run of this source is in progress."""


@dataclass
class RunResult:
    run_id: int
    source_id: str
    sync_type: str
    sync_status: str
    records_processed: int = 0
    records_inserted: int = 0
    records_updated: int = 0
    records_deleted: int = 0
    records_rejected: int = 0
    sync_duration_ms: int = 0
    error_message: str | None = None
    connection_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _MappingRun:
    """State of one mapping during a run: mapper, validator, staging table, cursor."""

    def __init__(self, conn: Connection, source_id: str, mapping_id: int, decl: MappingDecl):
        self.decl = decl
        self.mapping_id = mapping_id
        self.mapper = Mapper(decl.mapping_config)
        self.validator = Validator(decl.mapping_config.validate_)
        self.target = TargetTable(
            conn,
            decl.target_table,
            source_id=source_id,
            key=self.mapper.key,
            declared=self.mapper.declared_types(),
        )
        self.incremental = decl.sync_strategy == "incremental"
        self.cursor_field = decl.mapping_config.cursor_field
        self.cursor = load_cursor(conn, source_id, mapping_id) if self.incremental else None
        self.max_cursor: Any = self.cursor
        self.connector_state = load_state(conn, source_id, mapping_id, CONNECTOR_KEY) or {}
        self.new_connector_state: dict[str, Any] | None = None
        self.envelope: dict[str, Any] | None = None
        self.columns: dict[str, str] = {}  # auto mode: target column -> source field
        self.occurrences: dict[str, int] = {}
        self.rejected = 0
        self.quarantine: list[dict[str, Any]] = []

    def request(self) -> ReadRequest:
        config = self.decl.mapping_config
        cursor_path = None
        if self.incremental and self.cursor_field:
            spec = (config.fields or {}).get(self.cursor_field)
            if isinstance(spec, str):
                cursor_path = spec
            elif spec is not None and spec.from_:
                cursor_path = spec.from_
            elif config.fields is None:
                cursor_path = self.cursor_field
        return ReadRequest(
            state=self.connector_state,
            records_path=config.records_path,
            strategy=self.decl.sync_strategy,
            cursor_path=cursor_path,
            cursor_value=self.cursor,
        )


class Runner:
    """Runs syncs against one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- public ----------------------------------------------------------------------
    def sync(self, source_id: str, *, trigger: str = "manual") -> RunResult:
        with _running_lock:
            if source_id in _running:
                raise AlreadyRunning(f"source {source_id!r} is already syncing")
            _running.add(source_id)
        try:
            return self._sync(source_id, trigger)
        finally:
            with _running_lock:
                _running.discard(source_id)

    # -- steps -----------------------------------------------------------------------
    def _sync(self, source_id: str, trigger: str) -> RunResult:
        store = self.store
        started = utcnow()
        clock = time.perf_counter()
        with store.begin() as conn:
            source = get_source(conn, source_id)
            self._refuse_if_running(conn, source_id)
            decl = declaration_of(source, store.box)
            sync_type = self._sync_type(decl)
            run_id = conn.execute(
                insert(hist_t)
                .values(
                    source_id=source_id,
                    sync_type=sync_type,
                    sync_status="running",
                    trigger=trigger,
                    sync_started_at=started,
                    worker=WORKER,
                )
                .returning(hist_t.c.id)
            ).scalar_one()
        redact = Redactor()
        for c in decl.connections:
            redact.add(c.authentication_config)
        result = RunResult(run_id, source_id, sync_type, "running")
        try:
            self._run(decl, source, run_id, result, redact, started)
        except Exception as exc:  # every failure ends the run as 'failed', with a reason
            result.sync_status = "failed"
            result.error_message = redact(self._describe(exc))
            result.sync_duration_ms = int((time.perf_counter() - clock) * 1000)
            self._finish_failed(decl, result)
            if not isinstance(exc, FactorySyncError | OSError):
                log.exception("unexpected error in run %s of %s", run_id, source_id)
            return result
        result.sync_duration_ms = int((time.perf_counter() - clock) * 1000)
        return result

    @staticmethod
    def _sync_type(decl: SourceDecl) -> str:
        strategies = {m.sync_strategy for m in decl.mappings if m.is_active}
        return strategies.pop() if len(strategies) == 1 else "mixed"

    @staticmethod
    def _describe(exc: BaseException) -> str:
        if isinstance(exc, FactorySyncError | OSError):
            return str(exc)
        if exc.__class__.__module__.startswith("sqlalchemy"):
            return f"store error: {describe_db_error(exc)}"
        return f"{type(exc).__name__}: {exc}"

    def _refuse_if_running(self, conn: Connection, source_id: str) -> None:
        row = conn.execute(
            select(hist_t.c.id, hist_t.c.worker, hist_t.c.sync_started_at)
            .where(hist_t.c.source_id == source_id, hist_t.c.sync_status == "running")
            .order_by(hist_t.c.id.desc())
        ).first()
        if row is None:
            return
        host, _, pid = (row.worker or "").rpartition(":")
        if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
            # Left behind by a process that died on this host: mark and go on.
            mark_interrupted(conn, [row.id])
            return
        raise AlreadyRunning(
            f"source {source_id!r} is already syncing (run {row.id} on {row.worker}, "
            f"started {row.sync_started_at:%Y-%m-%d %H:%M:%S} UTC)"
        )

    def _connectors(self, decl: SourceDecl, source_id: str) -> list[tuple[str, Connector]]:
        context = ConnectorContext(source_id, self.store.settings, self.store.settings.batch_size)
        ordered = [c for c in decl.connections if c.is_primary] + [
            c for c in decl.connections if c.is_backup and c.status == "active"
        ]
        built = []
        for c in ordered:
            assert c.connection_type is not None
            auth = resolve_env_refs(c.authentication_config, where=f"{c.connection_name} auth")
            built.append(
                (
                    c.connection_name,
                    build_connector(c.connection_type, c.connection_config, auth, context),
                )
            )
        return built

    def _pick_connection(
        self, decl: SourceDecl, redact: Redactor
    ) -> tuple[str, Connector, list[str]]:
        """The first connection whose check passes; failover notes for the others."""
        notes: list[str] = []
        last: ConnectorError | None = None
        for name, connector in self._connectors(decl, decl.source_id):
            try:
                connector.check()
                return name, connector, notes
            except ConnectorError as exc:
                notes.append(f"connection {name!r} failed: {redact(str(exc))}")
                last = exc
        assert last is not None
        raise type(last)("; ".join(notes))

    def _run(
        self,
        decl: SourceDecl,
        source: dict[str, Any],
        run_id: int,
        result: RunResult,
        redact: Redactor,
        started: datetime,
    ) -> None:
        store = self.store
        mapping_ids = {m["target_table"]: m["id"] for m in source["mappings"]}
        name, connector, notes = self._pick_connection(decl, redact)
        result.connection_name = name
        active = [m for m in decl.mappings if m.is_active]
        with store.connect() as conn:
            with conn.begin():
                runs = [
                    _MappingRun(conn, decl.source_id, mapping_ids[m.target_table], m)
                    for m in active
                ]
            try:
                for mrun in runs:
                    for batch in connector.read(mrun.request()):
                        with conn.begin():
                            self._stage_batch(mrun, batch.records, result)
                        if batch.state is not None:
                            mrun.new_connector_state = batch.state
                        if batch.envelope is not None and mrun.envelope is None:
                            mrun.envelope = batch.envelope
                with write_transaction(conn):
                    now = utcnow()
                    for mrun in runs:
                        mrun.target._load_existing()
                        counts = mrun.target.merge(
                            run_id,
                            now,
                            delete_missing=None
                            if mrun.incremental
                            else mrun.decl.mapping_config.delete_mode,
                        )
                        result.records_inserted += counts.inserted
                        result.records_updated += counts.updated
                        result.records_deleted += counts.deleted
                        result.records_rejected += mrun.rejected
                        if mrun.quarantine:
                            conn.execute(insert(quarantine_t), mrun.quarantine)
                        shape = {"envelope": mrun.envelope, "columns": mrun.columns}
                        if mrun.envelope is not None or mrun.columns:
                            save_state(
                                conn, decl.source_id, mrun.mapping_id, SHAPE_KEY, shape, run_id
                            )
                        if mrun.new_connector_state is not None:
                            save_state(
                                conn,
                                decl.source_id,
                                mrun.mapping_id,
                                CONNECTOR_KEY,
                                SHAPE_KEY,
                                mrun.new_connector_state,
                                run_id,
                            )
                        if mrun.incremental and mrun.max_cursor != mrun.cursor:
                            save_cursor(
                                conn, decl.source_id, mrun.mapping_id, mrun.max_cursor, run_id
                            )
                    result.sync_status = "success"
                    self._finish_success(conn, decl, result, started, notes)
            finally:
                with conn.begin():
                    for mrun in runs:
                        mrun.target.drop_stage()

    def _stage_batch(self, mrun: _MappingRun, records: list[Any], result: RunResult) -> None:
        rows: list[dict[str, Any]] = []
        hashes: list[str] = []
        mapper = mrun.mapper
        policy = mrun.decl.mapping_config.on_invalid
        for record in records:
            result.records_processed += 1
            try:
                row = mapper.map(record)
                problems = self.problems(mrun, row)
                if mapper.auto and isinstance(record, dict) and len(mrun.columns) < len(row):
                    mrun.columns.update(mapper.source_fields(record))
            except MappingError as exc:
                row, problems = None, [str(exc)]
            if problems:
                if policy == "fail":
                    raise MappingError(
                        f"record {result.records_processed} rejected: {'; '.join(problems)}"
                    )
                mrun.rejected += 1
                if policy == "quarantine" and len(mrun.quarantine) < QUARANTINE_CAP:
                    mrun.quarantine.append(
                        {
                            "source_id": mrun.target.source_id,
                            "run_id": result.run_id,
                            "target_table": mrun.decl.target_table,
                            "record": record,
                            "reasons": problems,
                        }
                    )
                continue
            assert row is not None
            if mrun.incremental:
                value = comparable(row.get(mrun.cursor_field or ""))
                if not passes_cursor(value, mrun.cursor):
                    continue
                if value is not None and (mrun.max_cursor is None or value > mrun.max_cursor):
                    mrun.max_cursor = value
            digest = row_hash(row)
            if not mapper.key:
                n = mrun.occurrences.get(digest, 0)
                mrun.occurrences[digest] = n + 1
                row["_row_key"] = f"{digest}:{n}"
            rows.append(row)
            hashes.append(digest)
        mrun.target.stage(rows, hashes)

    @staticmethod
    def problems(mrun: _MappingRun, row: dict[str, Any]) -> list[str]:
        found = [f"primary key column {k!r} is empty" for k in mrun.mapper.missing_key_columns(row)]
        if mrun.incremental and row.get(mrun.cursor_field or "") is None:
            found.append(f"cursor_field {mrun.cursor_field!r} is empty")
        return found + mrun.validator.check(row)

    # -- bookkeeping -----------------------------------------------------------------
    def _finish_success(
        self,
        conn: Connection,
        decl: SourceDecl,
        result: RunResult,
        started: datetime,
        notes: list[str],
    ) -> None:
        now = utcnow()
        conn.execute(
            update(hist_t)
            .where(hist_t.c.id == result.run_id)
            .values(
                sync_status="success",
                connection_name=result.connection_name,
                records_processed=result.records_processed,
                records_inserted=result.records_inserted,
                records_updated=result.records_updated,
                records_deleted=result.records_deleted,
                records_rejected=result.records_rejected,
                sync_duration_ms=int((now - started).total_seconds() * 1000),
                sync_completed_at=now,
                details={"failover": notes} if notes else None,
            )
        )
        status = conn.execute(
            select(reg_t.c.status).where(reg_t.c.source_id == decl.source_id)
        ).scalar_one()
        conn.execute(
            update(reg_t)
            .where(reg_t.c.source_id == decl.source_id)
            .values(
                last_sync=now,
                next_sync=started + timedelta(seconds=decl.refresh_interval),
                error_count=0,
                last_error=None,
                status="active" if status == "error" else status,
            )
        )
        message = (
            f"sync {result.sync_type} succeeded: {result.records_processed} processed, "
            f"{result.records_inserted} inserted, {result.records_updated} updated, "
            f"{result.records_deleted} deleted, {result.records_rejected} rejected"
        )
        infolog.record(
            conn,
            "warning" if notes else "info",
            "sync.success",
            message + (f" (served by {result.connection_name!r} after failover)" if notes else ""),
            source_id=decl.source_id,
            run_id=result.run_id,
            details={"connection": result.connection_name},
        )

    def _finish_failed(self, decl: SourceDecl, result: RunResult) -> None:
        now = utcnow()
        with self.store.begin() as conn:
            conn.execute(
                update(hist_t)
                .where(hist_t.c.id == result.run_id)
                .values(
                    sync_status="failed",
                    connection_name=result.connection_name,
                    records_processed=result.records_processed,
                    sync_duration_ms=result.sync_duration_ms,
                    error_message=result.error_message,
                    sync_completed_at=now,
                )
            )
            errors = (
                conn.execute(
                    select(reg_t.c.error_count).where(reg_t.c.source_id == decl.source_id)
                ).scalar_one()
                + 1
            )
            values: dict[str, Any] = {"error_count": errors, "last_error": result.error_message}
            # Back off: the retry interval doubles with each consecutive failure (≤ 1 h).
            delay = min(decl.refresh_interval * 2 ** max(errors - 1, 0), 3600)
            values["next_sync"] = now + timedelta(seconds=max(delay, 5))
            if errors >= CIRCUIT_FAILURES:
                values["status"] = "error"
            conn.execute(
                update(reg_t)
                .where(reg_t.c.source_id == decl.source_id, reg_t.c.status != "inactive")
                .values(**values)
            )
            infolog.record(
                conn,
                "error",
                "sync.failed",
                f"sync failed: {result.error_message}",
                source_id=decl.source_id,
                run_id=result.run_id,
                details={"error_count": errors},
            )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_interrupted(conn: Connection, run_ids: list[int] | None = None) -> int:
    """Mark runs left 'running' by a dead process as failed ('interrupted')."""
    stmt = update(hist_t).where(hist_t.c.sync_status == "running")
    if run_ids is not None:
        stmt = stmt.where(hist_t.c.id.in_(run_ids))
    return conn.execute(
        stmt.values(
            sync_status="failed",
            error_message="interrupted: the process running this sync stopped",
            sync_completed_at=utcnow(),
        )
    ).rowcount


def recover_interrupted(store: Store) -> int:
    """On start of a long-running process: fail runs of dead processes on this host."""
    with store.begin() as conn:
        rows = conn.execute(
            select(hist_t.c.id, hist_t.c.worker).where(hist_t.c.sync_status == "running")
        ).all()
        dead = []
        for row in rows:
            host, _, pid = (row.worker or "").rpartition(":")
            if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
                dead.append(row.id)
        return mark_interrupted(conn, dead) if dead else 0
