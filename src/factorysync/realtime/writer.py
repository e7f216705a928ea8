"""Micro-batch writer of one realtime source.

Subscribers hand over :class:`Incoming` messages; the writer's thread flushes them when
``max_rows`` wait or the oldest has waited ``max_age_s``. One flush is one transaction:
the records go through the record pipeline of a batch sync
(:mod:`factorysync.engine.pipeline`: map, validate, quarantine decision under
``on_invalid`` with the same cap, row hash), the rows are merged into each target table
by key (latest state per key; a key that includes the timestamp appends a time series),
rejects are quarantined with their reasons, and the history window's counts grow. Only
after the commit are the messages acknowledged (an MQTT QoS 1/2 message is redelivered
when the process dies before that; writing it again changes nothing, because the merge is
by key) and the changed rows published to live subscribers
(:mod:`factorysync.realtime.bus`).

A flush that fails (store unreachable, locked) is retried with back-off; its messages
stay pending and unacknowledged, and while too many are pending ``put`` blocks, which
stops the subscriber from reading and lets the broker hold the rest. While a backlog
waits, flushes grow (up to ``BACKLOG_FACTOR`` × ``max_rows``) so the writer catches up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from factorysync.config import SourceDecl
from factorysync.engine.mapping import Mapper
from factorysync.engine.pipeline import Quarantine, RecordPipeline, Validator
from factorysync.engine.quarantine import store_rejects
from factorysync.errors import ConfigError
from factorysync.observability import infolog
from factorysync.realtime.bus import bus
from factorysync.realtime.window import HistoryWindow
from factorysync.security.secrets import redact_known
from factorysync.store.db import describe_db_error, write_transaction
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.store import Store
from factorysync.store.targets import MergeCounts, TargetTable
from factorysync.store.types import utcnow

log = logging.getLogger("factorysync.realtime")
MAX_RETRY_S = 30.0
BACKLOG_FACTOR = 10  # a flush takes up to this many times max_rows while behind


@dataclass
class Incoming:
    """One received message: its records, or why it has none."""

    records: list[Any]
    # What quarantine keeps of the message when it is refused (e.g. topic and payload).
    raw: Any = None
    error: str | None = None
    # Called after the flush holding this message committed (e.g. the MQTT PUBACK).
    ack: Callable[[], None] | None = None
    received: float = field(default_factory=time.monotonic)
    # Filled by the flush that commits it: why records were refused (quarantined).
    rejections: list[str] = field(default_factory=list)
    # The history run (window) the message was counted in.
    run_id: int | None = None


class _Target:
    """One active mapping of the source: its record pipeline and target table."""

    def __init__(self, conn: Connection, source_id: str, decl: Any) -> None:
        self.decl = decl
        self.mapper = Mapper(decl.mapping_config)
        if not self.mapper.key:
            raise ConfigError(
                f"source {source_id!r}: mapping {decl.target_table!r} needs a primary_key: "
                "realtime rows are upserted by key (add the timestamp to the key for a "
                "time series)"
            )
        self.pipeline = RecordPipeline(self.mapper, Validator(decl.mapping_config.validate_))
        # Refusals of the flush in progress (reset by each flush).
        self.quarantine = Quarantine(source_id, decl.target_table, decl.mapping_config.on_invalid)
        self.table = TargetTable(
            conn,
            decl.target_table,
            source_id=source_id,
            key=self.mapper.key,
            declared=self.mapper.declared_types(),
            contract=decl.mapping_config.schema_contract,
        )
        # schema_contract: freeze: records with fields the table has no column for are
        # quarantined; values that would retype a column stop the flush (not acknowledged,
        # so nothing is lost) with the reason in last_error.
        self.mapper.freeze(self.table.frozen_columns())


class MicroBatchWriter:
    def __init__(
        self,
        store: Store,
        source_id: str,
        *,
        max_rows: int = 500,
        max_age_s: float = 0.2,
        window_s: float | None = None,
        max_pending: int | None = None,
        owner: str | None = None,
        shared: bool = False,
    ) -> None:
        self.store = store
        self.source_id = source_id
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        settings = store.settings
        self.window = HistoryWindow(
            source_id,
            settings.realtime_window_s if window_s is None else window_s,
            owner=owner,
            shared=shared,
        )
        self.max_pending = max_pending or max(10 * max_rows, 10_000)
        self._pending: list[Incoming] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self._targets: list[_Target] = []
        self.flushes = 0
        self.last_error: str | None = None

    # -- lifecycle -------------------------------------------------------------------
    def open(self) -> SourceDecl:
        """Connect to the store and prepare the targets; raises ConfigError when invalid."""
        conn = self.store.connect()
        try:
            with conn.begin():
                decl = declaration_of(get_source(conn, self.source_id), self.store.box)
                self._targets = [
                    _Target(conn, self.source_id, m) for m in decl.mappings if m.is_active
                ]
        except BaseException:
            conn.close()
            raise
        if not self._targets:
            conn.close()
            raise ConfigError(f"source {self.source_id!r} has no active mapping")
        self._conn = conn
        return decl

    def start(self) -> None:
        if self._conn is None:
            self.open()
        self._thread = threading.Thread(
            target=self._loop, name=f"writer-{self.source_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Flush what is pending (once), close the history window and disconnect."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._conn is not None:
            try:
                self._close_window()
            except Exception as exc:
                log.warning("%s: could not close the history window: %s", self.source_id, exc)
            finally:
                if self._conn.in_transaction():
                    self._conn.rollback()
                for t in self._targets:
                    try:
                        with self._conn.begin():
                            t.table.drop_stage()
                    except Exception:
                        t.table.forget_stage()
                self._conn.close()
                self._conn = None

    # -- input -----------------------------------------------------------------------
    def put(self, item: Incoming) -> None:
        """Queue one message; blocks while too many are pending (back-pressure)."""
        with self._cond:
            while len(self._pending) >= self.max_pending and not self._stop:
                self._cond.wait(0.5)
            self._pending.append(item)
            # The first message starts the age clock; a full batch is written at once.
            if len(self._pending) == 1 or len(self._pending) >= self.max_rows:
                self._cond.notify_all()

    def _batch_size(self) -> int:
        """``max_rows``, or more while a backlog waits: fewer, larger transactions catch
        up faster than the store's per-transaction cost would allow (with the lock held)."""
        backlog = len(self._pending)
        if backlog <= 2 * self.max_rows:
            return self.max_rows
        return min(backlog, self.max_rows * BACKLOG_FACTOR)

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    # -- the flush loop --------------------------------------------------------------
    def _loop(self) -> None:
        delay = 0.5
        while True:
            with self._cond:
                while not self._stop:
                    if len(self._pending) >= self.max_rows:
                        break
                    if self._pending:
                        wait = self._pending[0].received + self.max_age_s - time.monotonic()
                        if wait <= 0:
                            break
                    elif self.window.due():
                        break
                    else:
                        wait = 1.0
                    self._cond.wait(wait)
                items = self._pending[: self._batch_size()]
                stopping = self._stop
            try:
                if items:
                    self._flush_or_isolate(items)
                elif self.window.due():
                    self._close_window()
                delay = 0.5
                if self.last_error is not None:
                    self._report(None)
            except Exception as exc:
                message = self._describe(exc)
                log.warning(
                    "%s: write failed (%s); again in %.1f s", self.source_id, message, delay
                )
                self._report(message)
                if stopping:
                    return
                with self._cond:
                    self._cond.wait(delay)
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            with self._cond:
                del self._pending[: len(items)]
                self._cond.notify_all()
                if stopping and not self._pending:
                    return

    def _flush_or_isolate(self, items: list[Incoming]) -> None:
        """Flush; when the store refuses the data itself, find and quarantine the culprit.

        A lost or locked store is retried by the caller; a value the store cannot hold
        (e.g. a NUL character in PostgreSQL JSON) would fail forever, so the batch is
        written message by message and the one the store refuses is quarantined alone.
        """
        try:
            self.flush(items)
            return
        except (OperationalError, InterfaceError):
            raise
        except DBAPIError:
            if len(items) == 1 and items[0].error is not None:
                raise
        for item in items:
            try:
                self.flush([item])
            except (OperationalError, InterfaceError):
                raise
            except DBAPIError as exc:
                reason = f"the store refused the record: {describe_db_error(exc)}"
                raw = item.raw if item.raw is not None else item.records
                blob = orjson.dumps(raw, default=str).decode().replace("\\u0000", "")
                self.flush([Incoming([], raw={"text": blob}, error=reason, ack=item.ack)])

    def flush(self, items: list[Incoming]) -> None:
        """Write ``items`` in one transaction, then acknowledge and publish them."""
        conn = self._conn
        assert conn is not None
        self.window.mark()
        published: list[tuple[str, list[dict[str, Any]]]] = []
        for item in items:
            item.rejections.clear()
        try:
            with write_transaction(conn):
                run_id = self.window.begin(conn)
                now = utcnow()
                quarantine: list[dict[str, Any]] = []
                rejected = 0
                counts = MergeCounts()
                processed = sum(max(len(i.records), 1) for i in items)
                for target in self._targets:
                    if target.table.contract == "freeze":
                        # The columns as they are now (the first flush makes the table).
                        target.table.reload()
                        target.mapper.freeze(target.table.frozen_columns())
                    rows, hashes = self._map(target, items, run_id)
                    rejected += target.quarantine.refused
                    quarantine += target.quarantine.take()
                    if rows:
                        table = target.table
                        table.reload()
                        # PostgreSQL upserts the batch in one statement where it can.
                        got = table.upsert(rows, hashes, run_id, now)
                        if got is None:
                            table.stage(rows, hashes)
                            got = table.merge(run_id, now, delete_missing=None)
                            table.clear_stage()
                        counts.inserted += got.inserted
                        counts.updated += got.updated
                        published.append((target.decl.target_table, rows))
                if quarantine:
                    store_rejects(conn, quarantine, now)
                self.window.add(conn, processed, counts, rejected)
        except BaseException:
            self.window.rollback()
            if conn.in_transaction():
                conn.rollback()
            for target in self._targets:
                target.table.forget_stage()
            if conn.in_transaction():
                conn.rollback()
            raise
        self.flushes += 1
        self.window.publish_closed(self.store)  # a window this flush closed first
        for item in items:
            if item.ack is not None:
                try:
                    item.ack()
                except Exception as exc:  # the message is then redelivered: harmless
                    log.debug("%s: acknowledgement failed: %s", self.source_id, exc)
        for name, rows in published:
            if bus.subscribers(name):
                bus.publish(name, {"source_id": self.source_id, "run_id": run_id, "rows": rows})

    def _close_window(self) -> None:
        """Close the open window in a transaction of its own, then publish it."""
        assert self._conn is not None
        self.window.mark()
        try:
            with write_transaction(self._conn):
                self.window.close(self._conn)
        except BaseException:
            self.window.rollback()
            raise
        self.window.publish_closed(self.store)

    def _map(
        self, target: _Target, items: list[Incoming], run_id: int
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The rows and row hashes of ``items`` for one target; refusals go to the
        target's quarantine (``on_invalid: fail`` raises) and to each item's
        ``rejections``."""
        rows: list[dict[str, Any]] = []
        hashes: list[str] = []
        pipeline, quarantine = target.pipeline, target.quarantine
        quarantine.reset()

        def refuse(record: Any, reasons: list[str], item: Incoming, stage: str) -> None:
            quarantine.refuse(record, reasons, run_id, stage=stage)
            item.rejections.append("; ".join(reasons))

        for item in items:
            item.run_id = run_id
            if item.error is not None:
                refuse(item.raw, [item.error], item, "unparsed")
                continue
            for source_record in item.records:
                for mapped in pipeline.run(source_record):
                    if mapped.row is None or not mapped.accepted:
                        refuse(mapped.record, mapped.problems, item, mapped.stage)
                        continue
                    hashes.append(pipeline.hashed(mapped.row))
                    rows.append(mapped.row)
        return rows, hashes

    # -- status ----------------------------------------------------------------------
    @staticmethod
    def _describe(exc: BaseException) -> str:
        if exc.__class__.__module__.startswith("sqlalchemy"):
            return f"store error: {describe_db_error(exc)}"
        return str(exc) or type(exc).__name__

    def _report(self, error: str | None) -> None:
        self.last_error = error
        report_status(self.store, self.source_id, error)


def report_status(
    store: Store, source_id: str, error: str | None, *, subscribed: str | None = None
) -> None:
    """Record a realtime source's health in the registry (``last_error``, ``error_count``).

    ``error`` comes from a broker or server; every secret the process knows is masked
    in it before it is stored. ``subscribed``: the subscription (broker or server) just
    came up, recorded as a ``realtime.subscribed`` event."""
    if error is not None:
        error = redact_known(error)
    if subscribed is not None:
        subscribed = redact_known(subscribed)
    values: dict[str, Any] = {"last_error": error}
    try:
        with store.begin() as conn:
            if error is None:
                values["error_count"] = 0
                status = conn.execute(
                    reg_t.select()
                    .with_only_columns(reg_t.c.status)
                    .where(reg_t.c.source_id == source_id)
                ).scalar_one_or_none()
                if status == "error":
                    values["status"] = "active"
            else:
                values["error_count"] = reg_t.c.error_count + 1
            conn.execute(update(reg_t).where(reg_t.c.source_id == source_id).values(**values))
            if subscribed is not None:
                # "Subscribed since" in status and source views is this event's time.
                infolog.record(
                    conn,
                    "info",
                    infolog.SUBSCRIBED_EVENT,
                    f"subscribed to {subscribed}",
                    source_id=source_id,
                    details={"where": subscribed},
                )
    except Exception as exc:  # the store itself may be what failed
        log.debug("%s: could not record status: %s", source_id, exc)
