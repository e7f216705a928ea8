"""One sync run of one source, start to finish.

1. A ``data_source_sync_history`` row is committed as ``running``.
2. The primary connection is read (then, if it fails, each active backup in order);
   transient errors are retried with exponential back-off and jitter. Records are
   expanded (``explode``/``where``), mapped and validated; good rows go to a private
   staging table, bad ones to quarantine (or the run fails, per ``on_invalid``).
3. Incremental mappings merge every batch in its own transaction, with the connector
   state (and, for cursor-ordered reads, the cursor) as its checkpoint: a crash loses
   at most the batch in flight, and re-reading it upserts the same rows again.
   Full mappings merge once, after the whole snapshot was read, deleting rows that are
   gone. The final transaction stores the cursor, quarantine, history and registry.
   Nothing of a failed full read reaches the target tables.

Nothing vanishes because it could not be read. A full sync never deletes the row of a
key its snapshot holds, even when that record was rejected (bad value, failed rule): the
previous row stays, and the quarantine entry says so (``kept_previous``). A record whose
key is unknown (a ragged CSV line, a record the mapping cannot even key) could stand for
any row: the run then skips the delete phase and ends ``partial``, with the reason in the
history row's ``error_message`` and the infolog.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, update
from sqlalchemy.exc import IntegrityError, OperationalError

from factorysync.config import MappingDecl, SourceDecl
from factorysync.connectors.base import Batch, Connector, ConnectorContext, ReadRequest
from factorysync.connectors.registry import build_connector
from factorysync.engine import columnar, history, relay
from factorysync.engine.history import AlreadyRunning, RunResult
from factorysync.engine.key_scan import KeyScan, finish_scans, key_scans
from factorysync.engine.mapping import Mapper, snake_case
from factorysync.engine.quality import (
    Validator,
    key_of_record,
    reject,
    row_problems,
    store_rejects,
)
from factorysync.engine.relay import RelayFallback
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
from factorysync.errors import (
    ConfigError,
    ConnectorError,
    ConnectorRetriable,
    FactorySyncError,
    MappingError,
)
from factorysync.observability import infolog
from factorysync.prefetch import prefetched
from factorysync.security.secrets import Redactor, resolve_env_refs
from factorysync.store.bulk import NotColumnar, stage_arrow
from factorysync.store.db import describe_db_error, write_transaction
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.store.targets import TargetTable, row_hash
from factorysync.store.types import utcnow

__all__ = ["AlreadyRunning", "RunResult", "Runner", "mapping_runs", "run_slot"]
log = logging.getLogger("factorysync.runner")
QUARANTINE_CAP = 10_000  # records quarantined per mapping and run; beyond, only counted
_running: set[str] = set()
_running_lock = threading.Lock()


@contextmanager
def run_slot(source_id: str) -> Iterator[None]:
    """Hold the source's run slot in this process for the block (AlreadyRunning while a
    run of it is in progress here): for work on a source's rows outside a sync."""
    with _running_lock:
        if source_id in _running:
            raise AlreadyRunning(f"source {source_id!r} is already syncing")
        _running.add(source_id)
    try:
        yield
    finally:
        with _running_lock:
            _running.discard(source_id)


def mapping_runs(
    conn: Connection, decl: SourceDecl, source: dict[str, Any], zone: str = "UTC"
) -> list[_MappingRun]:
    """The source's active mappings set up as a run sets them up (mapper, rules, target
    table), for work on their rows outside a sync (a quarantine replay)."""
    ids = {m["target_table"]: m["id"] for m in source["mappings"]}
    return [
        _MappingRun(conn, decl.source_id, ids[m.target_table], m, zone)
        for m in decl.mappings
        if m.is_active
    ]


def _lookback(cursor: Any, amount: float | None) -> Any:
    if cursor is None or not amount:
        return cursor
    if isinstance(cursor, datetime):
        return cursor - timedelta(seconds=amount)
    if isinstance(cursor, date):
        return cursor - timedelta(days=max(1, round(amount / 86400)))
    if isinstance(cursor, int | float):
        return cursor - amount
    return cursor


@dataclass
class ClaimedRun:
    """A run whose history row is committed as 'running' and that has not started yet."""

    run_id: int
    source_id: str
    sync_type: str
    decl: SourceDecl
    source: dict[str, Any]
    started: datetime
    clock: float


class _MappingRun:
    """One mapping during a run: mapper, validator, staging table, cursor, counters."""

    def __init__(
        self,
        conn: Connection,
        source_id: str,
        mapping_id: int,
        decl: MappingDecl,
        zone: str = "UTC",
    ):
        config = decl.mapping_config
        self.decl = decl
        self.source_id = source_id
        self.mapping_id = mapping_id
        # zone: the reading connection's timezone, for timestamps without an offset.
        self.mapper = Mapper(config, zone=zone)
        self.validator = Validator(config.validate_)
        self.target = TargetTable(
            conn,
            decl.target_table,
            source_id=source_id,
            key=self.mapper.key,
            declared=self.mapper.declared_types(),
            contract=config.schema_contract,
        )
        self.mapper.freeze(self.target.frozen_columns())
        self.incremental = decl.sync_strategy == "incremental"
        self.cursor_field = config.cursor_field
        self.cursor = load_cursor(conn, source_id, mapping_id) if self.incremental else None
        self.floor = _lookback(self.cursor, config.lookback)
        self.max_cursor: Any = self.cursor
        self.connector_state = load_state(conn, source_id, mapping_id, CONNECTOR_KEY) or {}
        self.new_connector_state: dict[str, Any] | None = None
        self.envelope: dict[str, Any] | None = None
        self.columns: dict[str, str] = {}  # auto mode: target column -> source field
        self.occurrences: dict[str, int] = {}
        self.rejected = 0
        self.quarantine: list[dict[str, Any]] = []
        self.quarantined = 0  # records quarantined by this run (up to QUARANTINE_CAP)
        # Full syncs: (quarantine entry index or -1, key) of rejected records, whose rows
        # the delete phase keeps; and how many rejected records had no key known.
        self.kept: list[tuple[int, tuple[Any, ...]]] = []
        self.unkeyed = 0
        self.columnar = columnar.eligible(config)
        self.columnar_mapper = columnar.ColumnarMapper(config, zone=zone) if self.columnar else None
        if self.columnar_mapper is not None:
            self.columnar_mapper.freeze(self.target.frozen_columns())

    def request(self) -> ReadRequest:
        config = self.decl.mapping_config
        cursor_path = None
        if self.incremental and self.cursor_field:
            spec = (config.fields or {}).get(self.cursor_field)
            if isinstance(spec, str):
                cursor_path = spec
            elif spec is not None and spec.from_:
                cursor_path = spec.from_
            elif config.fields is None or config.include_unmapped:
                cursor_path = self.cursor_field
        return ReadRequest(
            state=self.connector_state,
            records_path=config.records_path,
            strategy=self.decl.sync_strategy,
            cursor_path=cursor_path,
            cursor_value=self.floor,
            columnar=self.columnar,
        )

    def save_checkpoint(self, conn: Connection, run_id: int, *, cursor: bool) -> None:
        """Quarantine, shape, connector state and (optionally) cursor, in ``conn``'s txn."""
        if self.quarantine:
            store_rejects(conn, self.quarantine)
            self.quarantine = []
        if self.envelope is not None or self.columns:
            shape = {"envelope": self.envelope, "columns": self.columns}
            save_state(conn, self.source_id, self.mapping_id, SHAPE_KEY, shape, run_id)
        if self.new_connector_state is not None:
            save_state(
                conn,
                self.source_id,
                self.mapping_id,
                CONNECTOR_KEY,
                self.new_connector_state,
                run_id,
            )
        if cursor and self.incremental and self.max_cursor != self.cursor:
            save_cursor(conn, self.source_id, self.mapping_id, self.max_cursor, run_id)
            self.cursor = self.max_cursor


class Runner:
    """Runs syncs against one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        settings = store.settings
        self.attempts = settings.retry_attempts
        self.backoff = settings.retry_backoff_s

    # -- public ----------------------------------------------------------------------
    def sync(
        self,
        source_id: str,
        *,
        trigger: str = "manual",
        due: datetime | None = None,
        lease_owner: str | None = None,
    ) -> RunResult:
        """Run one sync now, in this thread (``lease_owner``: the worker holding its lease)."""
        return self.execute(
            self.claim(source_id, trigger=trigger, due=due, lease_owner=lease_owner)
        )

    def claim(
        self,
        source_id: str,
        *,
        trigger: str = "manual",
        due: datetime | None = None,
        lease_owner: str | None = None,
    ) -> ClaimedRun:
        """Commit the run's 'running' history row; raises AlreadyRunning if one is in progress.

        :meth:`execute` then runs it (possibly in another thread), so the API can answer
        with the run id before the run starts.
        """
        with _running_lock:
            if source_id in _running:
                raise AlreadyRunning(f"source {source_id!r} is already syncing")
            _running.add(source_id)
        try:
            return self._claim(source_id, trigger, due, lease_owner)
        except BaseException:
            with _running_lock:
                _running.discard(source_id)
            raise

    def execute(self, claim: ClaimedRun) -> RunResult:
        try:
            return self._execute(claim)
        finally:
            with _running_lock:
                _running.discard(claim.source_id)

    # -- steps -----------------------------------------------------------------------
    def _claim(
        self, source_id: str, trigger: str, due: datetime | None, lease_owner: str | None
    ) -> ClaimedRun:
        store = self.store
        started = utcnow()
        clock = time.perf_counter()
        with store.begin() as conn:
            source = get_source(conn, source_id)
            decl = declaration_of(source, store.box)
            sync_type = self._sync_type(decl)
            run_id = history.start_run(
                conn, source_id, sync_type, trigger, started, due, lease_owner
            )
        return ClaimedRun(run_id, source_id, sync_type, decl, source, started, clock)

    def _execute(self, claim: ClaimedRun) -> RunResult:
        decl, source = claim.decl, claim.source
        redact = Redactor()
        for c in decl.connections:
            redact.add(c.authentication_config)
            # The values ${env:NAME} references stand for are secrets too (an unset
            # variable is reported when the connection is built).
            with suppress(ConfigError):
                redact.add(resolve_env_refs(c.authentication_config, where="auth"))
        result = RunResult(claim.run_id, claim.source_id, claim.sync_type, "running")
        try:
            self._run(decl, source, result, redact, claim.started)
        except Exception as exc:  # every failure ends the run as 'failed', with a reason
            result.error_message = redact(self._describe(exc))
            result.sync_duration_ms = int((time.perf_counter() - claim.clock) * 1000)
            with self.store.begin() as conn:
                history.finish_failed(conn, source, result)
            if not isinstance(exc, FactorySyncError | OSError):
                log.exception("unexpected error in run %s of %s", claim.run_id, claim.source_id)
            return result
        result.sync_duration_ms = int((time.perf_counter() - claim.clock) * 1000)
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

    def _connectors(self, decl: SourceDecl) -> list[tuple[str, Connector]]:
        settings = self.store.settings
        context = ConnectorContext(decl.source_id, settings, settings.batch_size)
        ordered = [c for c in decl.connections if c.is_primary] + [
            c for c in decl.connections if c.is_backup and c.status == "active"
        ]
        built = []
        for c in ordered:
            assert c.connection_type is not None
            auth = resolve_env_refs(c.authentication_config, where=f"{c.connection_name} auth")
            connector = build_connector(c.connection_type, c.connection_config, auth, context)
            built.append((c.connection_name, connector))
        return built

    def _run(
        self,
        decl: SourceDecl,
        source: dict[str, Any],
        result: RunResult,
        redact: Redactor,
        started: datetime,
    ) -> None:
        """Read from the primary connection, failing over to each active backup in order."""
        notes: list[str] = []
        last: ConnectorError | None = None
        for index, (name, connector) in enumerate(self._connectors(decl)):
            if index:
                result.records_processed = 0
            result.connection_name = name
            try:
                self._attempts(connector, decl, source, result, started, notes, redact)
                return
            except ConnectorError as exc:
                notes.append(f"connection {name!r} failed: {redact(str(exc))}")
                last = exc
        assert last is not None
        raise type(last)("; ".join(notes))

    def _attempts(
        self,
        connector: Connector,
        decl: SourceDecl,
        source: dict[str, Any],
        result: RunResult,
        started: datetime,
        notes: list[str],
        redact: Redactor,
    ) -> None:
        """One connection, retrying transient errors with exponential back-off and jitter."""
        for attempt in range(1, self.attempts + 1):
            try:
                connector.check()
                self._run_with(connector, decl, source, result, started, notes)
                return
            except (ConnectorRetriable, OperationalError) as exc:
                if attempt == self.attempts:
                    raise
                delay = min(self.backoff * 2 ** (attempt - 1), 30.0) * random.uniform(0.5, 1.0)
                log.warning(
                    "%s: %s; attempt %d of %d again in %.1f s",
                    decl.source_id,
                    redact(self._describe(exc)),
                    attempt + 1,
                    self.attempts,
                    delay,
                )
                result.records_processed = 0
                time.sleep(delay)

    def _run_with(
        self,
        connector: Connector,
        decl: SourceDecl,
        source: dict[str, Any],
        result: RunResult,
        started: datetime,
        notes: list[str],
        *,
        direct: bool = True,
        use_relay: bool = True,
    ) -> None:
        mapping_ids = {m["target_table"]: m["id"] for m in source["mappings"]}
        run_id = result.run_id
        with self.store.connect() as conn:
            with conn.begin():
                runs = [
                    _MappingRun(
                        conn, decl.source_id, mapping_ids[m.target_table], m, connector.timezone
                    )
                    for m in decl.mappings
                    if m.is_active
                ]
                # First full load of a columnar source: rows go straight into the target,
                # all in one transaction that also ends the run (all or nothing).
                single = (
                    direct
                    and connector.columnar
                    and any(m.columnar and not m.target.owns_rows() for m in runs)
                )
            scans: list[KeyScan] = []
            try:
                if single:
                    with write_transaction(conn):
                        now = utcnow()
                        for mrun in runs:
                            if mrun.columnar:
                                mrun.target.start_direct(run_id, now)
                        self._read_all(
                            conn, connector, runs, result, single=True, use_relay=use_relay
                        )
                        scans = key_scans(conn, connector, runs, first_load=True)
                        finish_scans(scans, result)
                        self._finish(conn, runs, result, source, started, notes)
                else:
                    self._read_all(conn, connector, runs, result, single=False)
                    # Incremental mappings with detect_deletes: the source's keys, when due.
                    scans = key_scans(conn, connector, runs)
                    with write_transaction(conn):
                        finish_scans(scans, result)
                        self._finish(conn, runs, result, source, started, notes)
            except IntegrityError:
                if not single:
                    raise
                # A key repeated in the source broke the bulk first load (nothing was
                # committed): load again through staging, where the last row wins.
                result.records_processed = 0
                with conn.begin():
                    for mrun in runs:
                        mrun.target.forget_stage()
                self._run_with(connector, decl, source, result, started, notes, direct=False)
            except RelayFallback:
                # Relayed rows the Arrow path would have rejected: load again on it.
                result.records_processed = 0
                self._run_with(connector, decl, source, result, started, notes, use_relay=False)
            finally:
                if conn.in_transaction():
                    conn.rollback()
                with conn.begin():
                    for mrun in runs:
                        mrun.target.drop_stage()
                    for scan in scans:
                        scan.drop()

    def _read_all(
        self,
        conn: Connection,
        connector: Connector,
        runs: list[_MappingRun],
        result: RunResult,
        *,
        single: bool,
        use_relay: bool = False,
    ) -> None:
        for mrun in runs:
            if single and use_relay and self._relayed(connector, mrun, result):
                continue
            batches = connector.read(mrun.request())
            if mrun.columnar and connector.columnar:
                # Columnar reads parse the next batch while this one is written.
                batches = prefetched(batches)
            for batch in batches:
                with nullcontext() if single else conn.begin():
                    if batch.arrow is not None:
                        self._stage_arrow(mrun, batch, result)
                    else:
                        self._stage_batch(mrun, batch, result)
                if mrun.incremental:
                    self._merge(
                        conn,
                        mrun,
                        result,
                        result.run_id,
                        cursor=batch.cursor_ordered,
                        txn=not single,
                    )

    @staticmethod
    def _relayed(connector: Connector, mrun: _MappingRun, result: RunResult) -> bool:
        """A first load relayed from a PostgreSQL source as binary COPY (engine.relay)."""
        open_relay = getattr(connector, "relay", None)
        target = mrun.target
        if open_relay is None or mrun.incremental or not mrun.columnar or not target.direct:
            return False
        if target.dialect != "postgresql":
            return False
        with open_relay(mrun.request()) as source:
            if source is None:
                return False
            rows = relay.first_load(target, mrun.decl.mapping_config, source, mrun.columns)
        if rows is None:
            return False
        result.records_processed += rows
        return True

    def _finish(
        self,
        conn: Connection,
        runs: list[_MappingRun],
        result: RunResult,
        source: dict[str, Any],
        started: datetime,
        notes: list[str],
    ) -> None:
        """Merge what is staged, store checkpoints, history and registry (caller's txn)."""
        for mrun in runs:
            if mrun.target.direct:
                # Every row of this source in the target is new: counted once, here.
                self._merge(conn, mrun, result, result.run_id, cursor=True, txn=False)
                result.records_inserted += mrun.target.finish_direct()
            elif not mrun.incremental:
                # The staging table is dropped with the run: no need to empty it first.
                self._merge(conn, mrun, result, result.run_id, cursor=True, txn=False, clear=False)
            else:
                mrun.save_checkpoint(conn, result.run_id, cursor=True)
            result.records_rejected += mrun.rejected
        unread = {m.decl.target_table: m.unkeyed for m in runs if m.unkeyed}
        result.sync_status = "partial" if unread else "success"
        if notes:
            result.details["failover"] = notes
        if unread:
            result.details["delete_skipped"] = unread
            result.error_message = _delete_skipped(unread)
        history.finish_success(conn, source, result, started)
        if unread:
            conn.execute(
                update(hist_t)
                .where(hist_t.c.id == result.run_id)
                .values(error_message=result.error_message)
            )
            infolog.record(
                conn,
                "warning",
                "sync.delete_skipped",
                result.error_message or "",
                source_id=result.source_id,
                run_id=result.run_id,
                details={"unread": unread},
            )

    def _merge(
        self,
        conn: Connection,
        mrun: _MappingRun,
        result: RunResult,
        run_id: int,
        *,
        cursor: bool,
        txn: bool = True,
        clear: bool = True,
    ) -> None:
        def merge() -> None:
            target = mrun.target
            target.reload()
            # A first load (direct) has nothing of this source's to delete; a snapshot
            # with records of no known key may hold any row: nothing is deleted then.
            full = not (mrun.incremental or target.direct)
            if full:
                for index in target.kept_tags():
                    if 0 <= index < len(mrun.quarantine):
                        mrun.quarantine[index]["kept_previous"] = True
            counts = target.merge(
                run_id,
                utcnow(),
                delete_missing=mrun.decl.mapping_config.delete_mode
                if full and not mrun.unkeyed
                else None,
            )
            if not mrun.target.direct:  # a first load counts its rows when it finishes
                result.records_inserted += counts.inserted
                result.records_updated += counts.updated
                result.records_deleted += counts.deleted
            mrun.save_checkpoint(conn, run_id, cursor=cursor)
            if clear:
                mrun.target.clear_stage()

        if txn:
            with write_transaction(conn):
                merge()
        else:
            merge()

    def _stage_batch(self, mrun: _MappingRun, batch: Batch, result: RunResult) -> None:
        rows: list[dict[str, Any]] = []
        hashes: list[str] = []
        mapper = mrun.mapper
        if batch.state is not None:
            mrun.new_connector_state = batch.state
        if batch.envelope is not None and mrun.envelope is None:
            mrun.envelope = batch.envelope
        self._reject_unparsed(mrun, batch, result)
        for source_record in batch.records:
            try:
                expanded = mapper.expand(source_record)
            except MappingError as exc:
                result.records_processed += 1
                self._reject(mrun, source_record, [str(exc)], result, stage="source")
                continue
            for record in expanded:
                result.records_processed += 1
                try:
                    row = mapper.map(record)
                    problems = self._problems(mrun, row)
                except MappingError as exc:
                    row, problems = None, [str(exc)]
                if problems or row is None:
                    key = None
                    if not mrun.incremental:
                        key = (
                            key_of_record(mapper, record)
                            if row is None
                            else self._key_of_row(mrun, row)
                        )
                    self._reject(mrun, record, problems, result, key=key)
                    continue
                if mapper.auto and isinstance(record, dict) and len(mrun.columns) < len(row):
                    mrun.columns.update(mapper.source_fields(record))
                if mrun.incremental:
                    value = comparable(row.get(mrun.cursor_field or ""))
                    if not batch.prefiltered and not passes_cursor(value, mrun.floor):
                        continue
                    if mrun.max_cursor is None or value > mrun.max_cursor:
                        mrun.max_cursor = value
                digest = row_hash(row)
                if not mapper.key:
                    n = mrun.occurrences.get(digest, 0)
                    mrun.occurrences[digest] = n + 1
                    row["_row_key"] = f"{digest}:{n}"
                rows.append(row)
                hashes.append(digest)
        mrun.target.stage(rows, hashes)
        if mrun.kept:
            mrun.target.keep(mrun.kept)
            mrun.kept = []

    def _stage_arrow(self, mrun: _MappingRun, batch: Batch, result: RunResult) -> None:
        """Stage an Arrow batch on the columnar path, or row by row when it cannot."""
        assert mrun.columnar_mapper is not None
        arrow = batch.arrow
        try:
            mapped = mrun.columnar_mapper.map(arrow)
            if mrun.incremental and mrun.cursor_field:
                floor = None if batch.prefiltered else mrun.floor
                mapped, top = columnar.filter_cursor(mapped, mrun.cursor_field, floor)
                if top is not None and (mrun.max_cursor is None or top > mrun.max_cursor):
                    mrun.max_cursor = top
            stage_arrow(mrun.target, mapped)
        except NotColumnar:
            batch.records, batch.arrow = arrow.to_pylist(), None
            self._stage_batch(mrun, batch, result)
            return
        result.records_processed += arrow.num_rows
        self._reject_unparsed(mrun, batch, result)
        if batch.state is not None:
            mrun.new_connector_state = batch.state
        if batch.envelope is not None and mrun.envelope is None:
            mrun.envelope = batch.envelope
        if mrun.columnar_mapper.config.fields is None and len(mrun.columns) < arrow.num_columns:
            for name in arrow.schema.names:
                mrun.columns.setdefault(snake_case(name), name)

    def _reject_unparsed(self, mrun: _MappingRun, batch: Batch, result: RunResult) -> None:
        # Records the connector could not parse: no key known.
        for record, reasons in batch.rejected:
            result.records_processed += 1
            self._reject(mrun, record, reasons, result, stage="unparsed")
        batch.rejected = []

    @staticmethod
    def _reject(
        mrun: _MappingRun,
        record: Any,
        problems: list[str],
        result: RunResult,
        *,
        key: tuple[Any, ...] | None = None,
        stage: str = "record",
    ) -> None:
        """Count, quarantine (per ``on_invalid``) and, in a full sync, remember the key
        of a rejected record (None: no key known)."""
        policy = mrun.decl.mapping_config.on_invalid
        if policy == "fail":
            raise MappingError(f"record {result.records_processed} rejected: {'; '.join(problems)}")
        mrun.rejected += 1
        index = -1
        if policy == "quarantine" and mrun.quarantined < QUARANTINE_CAP:
            index = len(mrun.quarantine)
            mrun.quarantined += 1
            mrun.quarantine.append(
                reject(
                    mrun.source_id,
                    mrun.decl.target_table,
                    record,
                    problems,
                    result.run_id,
                    stage=stage,
                )
            )
        if mrun.incremental:
            return
        if key is None:
            mrun.unkeyed += 1
        else:
            mrun.kept.append((index, key))

    @staticmethod
    def _key_of_row(mrun: _MappingRun, row: dict[str, Any]) -> tuple[Any, ...] | None:
        """The target key of a mapped row that was rejected (None: a key column is empty)."""
        if mrun.mapper.key:
            key = mrun.mapper.key_of(row)
            return None if key is None or None in key else key
        # No primary key: rows are identified by their content, numbered as staged rows are.
        digest = row_hash(row)
        n = mrun.occurrences.get(digest, 0)
        mrun.occurrences[digest] = n + 1
        return (f"{digest}:{n}",)

    @staticmethod
    def _problems(mrun: _MappingRun, row: dict[str, Any]) -> list[str]:
        cursor = mrun.cursor_field if mrun.incremental else None
        return row_problems(mrun.mapper, mrun.validator, row, cursor)


def _delete_skipped(unread: dict[str, int]) -> str:
    counts = ", ".join(f"{n} for {table!r}" for table, n in unread.items())
    return (
        f"{sum(unread.values())} record(s) could not be read with a key ({counts}): "
        "the delete phase was skipped, so rows missing from this snapshot were kept "
        "until a full sync reads every record"
    )


def recover_interrupted(store: Store) -> list[str]:
    """On start of a long-running process: fail runs of dead processes on this host."""
    with store.begin() as conn:
        return history.recover_interrupted(conn)
