"""One sync run of one source, start to finish.

1. A ``data_source_sync_history`` row is committed as ``running``.
2. The primary connection is read (then, if it fails, each active backup in order);
   transient errors are retried under the one retry policy (:mod:`factorysync.retry`).
   Records go through the record pipeline (:mod:`factorysync.engine.pipeline`): good
   rows to a private staging table, bad ones to quarantine (or the run fails, per
   ``on_invalid``). A first full load takes a faster path (:class:`LoadPath`).
3. Incremental mappings merge every batch in its own transaction, with the connector
   state (and, for cursor-ordered reads, the cursor) as its checkpoint: a crash loses
   at most the batch in flight, and re-reading it upserts the same rows again.
   Full mappings merge once, after the whole snapshot was read, deleting rows that are
   gone. The final transaction stores the cursor, quarantine, history and registry.
   Nothing of a failed full read reaches the target tables.

Once the run's outcome is committed, a run-finished event is published
(:mod:`factorysync.engine.events`): alert rules and live streams subscribe to it.

Nothing vanishes because it could not be read. A full sync never deletes the row of a
key its snapshot holds, even when that record was rejected (bad value, failed rule): the
previous row stays, and the quarantine entry says so (``kept_previous``). A record whose
key is unknown (a ragged CSV line, a record the mapping cannot even key) could stand for
any row: the run then skips the delete phase and ends ``partial``, with the reason in the
history row's ``error_message`` and the infolog.
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, update
from sqlalchemy.exc import IntegrityError

from factorysync.config import SourceDecl
from factorysync.connectors.base import Connector
from factorysync.connectors.registry import connector_class, open_connection
from factorysync.engine import events, history, relay, slots, unchanged_mark
from factorysync.engine.history import AlreadyRunning, NotPolled, RunResult
from factorysync.engine.key_scan import KeyScan, finish_scans, key_scans
from factorysync.engine.mapping_run import MappingRun, mapping_runs
from factorysync.engine.relay import RelayFallback
from factorysync.engine.slots import run_slot
from factorysync.engine.stage_txn import StagingTransactions
from factorysync.errors import ConfigError, ConnectorError, FactorySyncError
from factorysync.observability import infolog
from factorysync.prefetch import prefetched
from factorysync.retry import RetryPolicy
from factorysync.security.redaction import Redactor
from factorysync.security.secrets import resolve_env_refs
from factorysync.store.db import describe_db_error, write_transaction
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.store.types import utcnow

__all__ = ["AlreadyRunning", "NotPolled", "RunResult", "Runner", "mapping_runs", "run_slot"]
log = logging.getLogger("factorysync.runner")
_running = slots.running  # the sources with a run in progress in this process


@dataclass(frozen=True)
class LoadPath:
    """How a run loads its rows.

    ``direct``: a first full load of a columnar source goes straight into its empty
    targets, in one transaction that also ends the run; otherwise (and always for later
    runs) rows are staged and merged. ``relay``: such a first load may be relayed by the
    connector (:mod:`factorysync.engine.relay`) instead of read through Arrow.

    A run starts on :data:`FIRST_PATH` and moves down at most twice, each time from
    nothing loaded: relayed rows the Arrow path would reject → the Arrow path; a key
    repeated in the source (the first load's unique index refuses it) → staging, where
    the last row of a key wins.
    """

    direct: bool
    relay: bool

    def without_relay(self) -> LoadPath:
        return LoadPath(direct=self.direct, relay=False)


FIRST_PATH = LoadPath(direct=True, relay=True)
STAGED_PATH = LoadPath(direct=False, relay=False)


def _first_load(connector: Connector, runs: list[MappingRun]) -> bool:
    """Whether a direct first load applies: a columnar source, and a columnar mapping
    whose target holds no row of this source yet."""
    return connector.columnar and any(m.columnar and not m.target.owns_rows() for m in runs)


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


def refuse_unpolled(decl: SourceDecl) -> None:
    """Raise NotPolled for a source that runs do not read: its rows arrive through a
    subscription (MQTT, OPC UA, a polled device) or are pushed, while ``factorysync run``
    or a worker holds it. Nothing is recorded: a run that could never read is no run."""
    kind = decl.primary().connection_type
    try:
        if kind is None or (cls := connector_class(kind)).polls:
            return
    except ConfigError:  # a type this process cannot load: the run fails saying so
        return
    raise NotPolled(
        cls.unpolled_reason(decl.source_id)
        + "; its live state is in 'factorysync source list' and 'factorysync status'"
    )


class Runner:
    """Runs syncs against one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.retry = RetryPolicy.from_settings(store.settings)

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
        slots.take(source_id)
        try:
            return self._claim(source_id, trigger, due, lease_owner)
        except BaseException:
            slots.release(source_id)
            raise

    def execute(self, claim: ClaimedRun) -> RunResult:
        """Run a claimed run to its end; once its outcome is committed, publish it
        (:mod:`factorysync.engine.events`: alerts and live streams listen there)."""
        try:
            result, error = self._execute(claim)
        finally:
            slots.release(claim.source_id)
        events.publish(events.RunFinished(self.store, result, error))
        return result

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
            refuse_unpolled(decl)
            sync_type = self._sync_type(decl)
            run_id = history.start_run(
                conn, source_id, sync_type, trigger, started, due, lease_owner
            )
        return ClaimedRun(run_id, source_id, sync_type, decl, source, started, clock)

    def _execute(self, claim: ClaimedRun) -> tuple[RunResult, BaseException | None]:
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
                unchanged_mark.clear(conn, claim.source_id, claim.run_id)
            if not isinstance(exc, FactorySyncError | OSError):
                log.exception("unexpected error in run %s of %s", claim.run_id, claim.source_id)
            return result, exc
        result.sync_duration_ms = int((time.perf_counter() - claim.clock) * 1000)
        return result, None

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
        ordered = [c for c in decl.connections if c.is_primary] + [
            c for c in decl.connections if c.is_backup and c.status == "active"
        ]
        settings = self.store.settings
        return [(c.connection_name, open_connection(c, decl.source_id, settings)) for c in ordered]

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
        connectors = self._connectors(decl)
        if connectors:
            unchanged_mark.before(result.run_id, connectors[0][1])
        for index, (name, connector) in enumerate(connectors):
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
        """One connection, retrying transient errors under the run's retry policy (a
        failure whose retries the connector already spent is not tried again)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                connector.check()
                self._load(connector, decl, source, result, started, notes)
                return
            except Exception as exc:
                if not self.retry.retriable(exc) or self.retry.gives_up(attempt):
                    raise
                delay = self.retry.delay(attempt)
                log.warning(
                    "%s: %s; attempt %d of %d again in %.1f s",
                    decl.source_id,
                    redact(self._describe(exc)),
                    attempt + 1,
                    self.retry.attempts,
                    delay,
                )
                result.records_processed = 0
                time.sleep(delay)

    # -- load paths ----------------------------------------------------------------------
    def _load(
        self,
        connector: Connector,
        decl: SourceDecl,
        source: dict[str, Any],
        result: RunResult,
        started: datetime,
        notes: list[str],
    ) -> None:
        """Load on the fastest path that applies, then on each fallback it asks for
        (:class:`LoadPath`); every path starts from nothing loaded."""
        path: LoadPath | None = FIRST_PATH
        while path is not None:
            path = self._load_on(path, connector, decl, source, result, started, notes)

    def _load_on(
        self,
        path: LoadPath,
        connector: Connector,
        decl: SourceDecl,
        source: dict[str, Any],
        result: RunResult,
        started: datetime,
        notes: list[str],
    ) -> LoadPath | None:
        """Load on ``path``; None when the run is loaded and closed, or the path to load
        again on when this one cannot stand (nothing of it was committed)."""
        mapping_ids = {m["target_table"]: m["id"] for m in source["mappings"]}
        with self.store.connect() as conn:
            with conn.begin():
                runs = [
                    MappingRun(
                        conn, decl.source_id, mapping_ids[m.target_table], m, connector.timezone
                    )
                    for m in decl.mappings
                    if m.is_active
                ]
                single = path.direct and _first_load(connector, runs)
            scans: list[KeyScan] = []
            try:
                if single:
                    # First full load: rows go straight into the targets, all in one
                    # transaction that also ends the run (all or nothing).
                    with write_transaction(conn):
                        now = utcnow()
                        for mrun in runs:
                            if mrun.columnar:
                                mrun.target.start_direct(result.run_id, now)
                        self._read_all(
                            conn, connector, runs, result, single=True, use_relay=path.relay
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
                return STAGED_PATH
            except RelayFallback:
                # Relayed rows the Arrow path would have rejected: load again on it.
                result.records_processed = 0
                return path.without_relay()
            finally:
                if conn.in_transaction():
                    conn.rollback()
                with conn.begin():
                    for mrun in runs:
                        mrun.target.drop_stage()
                    for scan in scans:
                        scan.drop()
        return None

    def _read_all(
        self,
        conn: Connection,
        connector: Connector,
        runs: list[MappingRun],
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
            # A full sync into PostgreSQL stages its batches in one transaction: one COPY
            # then stays open across them (engine/stage_txn.py).
            whole = not single and not mrun.incremental and conn.dialect.name == "postgresql"
            with StagingTransactions(conn, mrun.target, whole=whole, per_batch=not single) as txns:
                for batch in batches:
                    with txns.batch():
                        mrun.stage(batch, result)
                    if mrun.incremental:
                        mrun.merge(conn, result, cursor=batch.cursor_ordered, txn=not single)

    @staticmethod
    def _relayed(connector: Connector, mrun: MappingRun, result: RunResult) -> bool:
        """A first load relayed by the connector (:mod:`factorysync.engine.relay`)."""
        return relay.relayed(connector, mrun, result)

    def _finish(
        self,
        conn: Connection,
        runs: list[MappingRun],
        result: RunResult,
        source: dict[str, Any],
        started: datetime,
        notes: list[str],
    ) -> None:
        """Merge what is staged, store checkpoints, history and registry (caller's txn)."""
        for mrun in runs:
            if mrun.target.direct:
                # Every row of this source in the target is new: counted once, here.
                mrun.merge(conn, result, cursor=True, txn=False)
                result.records_inserted += mrun.target.finish_direct()
            elif not mrun.incremental:
                # The staging table is dropped with the run: no need to empty it first.
                mrun.merge(conn, result, cursor=True, txn=False, clear=False)
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
        unchanged_mark.write(conn, self.store.settings, source, result)


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
