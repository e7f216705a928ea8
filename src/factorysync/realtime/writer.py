"""Micro-batch writer of one realtime source.

Subscribers hand over :class:`Incoming` messages; the writer's thread flushes them when
``max_rows`` wait or the oldest has waited ``max_age_s``. One flush is one transaction
(:mod:`factorysync.realtime.flush`): the records go through the record pipeline of a
batch sync (:mod:`factorysync.engine.pipeline`: map, validate, quarantine decision under
``on_invalid`` with the same cap, row hash), the rows are merged into each target table
by key (latest state per key; a key that includes the timestamp appends a time series),
rejects are quarantined with their reasons, and the history window's counts grow. Only
after the commit are the messages acknowledged (an MQTT QoS 1/2 message is redelivered
when the process dies before that; writing it again changes nothing, because the merge is
by key) and the changed rows published to live subscribers
(:mod:`factorysync.realtime.bus`).

A flush that fails because the store cannot be reached hands its messages to the
process's local spool and acknowledges them once they are there; the source's later
messages follow them into the spool until the store is back, and the writer then moves
the backlog over in order, exactly once (:mod:`factorysync.realtime.backlog`). A flush
that fails otherwise (a schema contract, a locked table) is retried with back-off; its
messages stay pending and unacknowledged. While too many are pending (the store and the
spool both refuse), ``put`` blocks, which stops the subscriber from reading and lets the
broker hold the rest. While a backlog waits, flushes grow (up to ``BACKLOG_FACTOR`` ×
``max_rows``) so the writer catches up.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from factorysync.config import SourceDecl
from factorysync.errors import ConfigError, FactorySyncError
from factorysync.realtime.backlog import Backlog
from factorysync.realtime.bus import bus
from factorysync.realtime.flush import flush_or_isolate, write_items
from factorysync.realtime.health import record_event, report_status
from factorysync.realtime.incoming import Incoming, acknowledge
from factorysync.realtime.spools import process_spool
from factorysync.realtime.target import Target, targets_of
from factorysync.realtime.window import Gaps, HistoryWindow
from factorysync.security.redaction import redact_known
from factorysync.store.db import describe_db_error, store_unreachable, write_transaction
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.store import Store
from factorysync.store.types import utcnow

__all__ = ["GAP_EVENT", "Incoming", "MicroBatchWriter", "record_event", "report_status"]

log = logging.getLogger("factorysync.realtime")
MAX_RETRY_S = 30.0
# While messages wait in the spool, the store is tried at least this often.
SPOOL_PROBE_MAX_S = 5.0
SPOOL_FULL_RETRY_S = 0.5  # a full spool is tried again this soon
BACKLOG_FACTOR = 10  # a flush takes up to this many times max_rows while behind
# A time range in which a source could not be read (infolog event; history details.gaps).
GAP_EVENT = "realtime.gap"


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
        leftover: bool = False,
    ) -> None:
        """``leftover``: this writer only moves into the store what a previous run of
        the process left in the spool, and stops once that is done."""
        self.store = store
        self.source_id = source_id
        self.leftover = leftover
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
        self._targets: list[Target] = []
        self.flushes = 0
        self.last_error: str | None = None
        # Time ranges the source could not be read in, for the next window's history row.
        self._gaps = Gaps()
        self.spools = process_spool(settings)
        self.backlog = Backlog(self.spools, source_id)
        self._delay = 0.5  # the next back-off after a failed write
        self._retry_at = 0.0  # no write to the store before this (monotonic clock)
        self._spool_retry_at = 0.0  # no append to a full spool before this
        self._full_since: datetime | None = None  # the spool is full since
        self._full_message = ""
        self._gave_up = False  # stopping, with messages neither written nor spooled

    # -- lifecycle -------------------------------------------------------------------
    def open(self) -> SourceDecl:
        """Connect to the store, prepare the targets and find the source's backlog in
        the spool; raises ConfigError when invalid."""
        if not self.leftover:
            self.backlog.attach()  # a drain of the source hands its backlog over first
        elif not self.spools.claim_drain(self.source_id, self):
            raise FactorySyncError(f"source {self.source_id!r} has a writer in this process")
        conn = self.store.connect()
        try:
            with conn.begin():
                decl = declaration_of(get_source(conn, self.source_id), self.store.box)
                self._targets = targets_of(conn, decl)  # naive timestamps: source_zone
                if not self._targets:
                    raise ConfigError(f"source {self.source_id!r} has no active mapping")
                self.backlog.open(conn)
        except BaseException:
            conn.close()
            self._release()
            raise
        self._conn = conn
        if self.backlog.waiting:
            log.info(
                "%s: %d message(s) wait in the spool; they are written first",
                self.source_id, self.backlog.depth(),
            )  # fmt: skip
        return decl

    def _release(self) -> None:
        """Let go of the source's part of the spool (another writer may take it)."""
        if self.leftover:
            self.spools.drain_done(self.source_id, self)
        else:
            self.backlog.detach()

    def start(self) -> None:
        if self._conn is None:
            self.open()
        self._thread = threading.Thread(
            target=self._loop, name=f"writer-{self.source_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is pending (once; into the spool when the store is unreachable),
        close the history window and disconnect.

        The flush thread does the closing itself as it ends, so a flush still running
        after ``timeout`` finishes on its connection, alone, and disconnects then."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is None:
            self._shutdown()
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning(
                "%s: still writing after %.0f s; it disconnects once done", self.source_id, timeout
            )

    def running(self) -> bool:
        """Whether the writer's thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _shutdown(self) -> None:
        """Close the history window, drop the staging tables and disconnect (once).

        With the store unreachable each step fails on its own; the connection is closed
        and the source's part of the spool let go of whatever happens."""
        conn = self._conn
        if conn is None:
            return
        try:
            try:
                self._close_window()
            except Exception as exc:
                log.warning("%s: could not close the history window: %s", self.source_id, exc)
            with contextlib.suppress(Exception):
                if conn.in_transaction():
                    conn.rollback()
            for t in self._targets:
                try:
                    with conn.begin():
                        t.table.drop_stage()
                except Exception:
                    with contextlib.suppress(Exception):  # it asks the store too
                        t.table.forget_stage()
        finally:
            with contextlib.suppress(Exception):
                conn.close()
            self._conn = None
            self._release()

    # -- input -----------------------------------------------------------------------
    def put(self, item: Incoming) -> None:
        """Queue one message; blocks while too many are pending (back-pressure)."""
        self.put_many([item])

    def put_many(self, items: list[Incoming]) -> None:
        """Queue messages in their order; blocks while too many are pending."""
        with self._cond:
            while len(self._pending) >= self.max_pending and not self._stop:
                self._cond.wait(0.5)
            first = not self._pending
            self._pending += items
            # The first message starts the age clock; a full batch is written at once.
            if first or len(self._pending) >= self.max_rows:
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

    def refusing(self) -> bool:
        """Whether messages are not being acknowledged now: the store is unreachable and
        the spool is full."""
        return self._full_since is not None

    def spooled_state(self) -> dict[str, Any] | None:
        """The stream state of the newest message waiting in the spool (None: none waits,
        the store has the latest)."""
        return self.backlog.latest_state()

    # -- the flush loop --------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._write_until_stopped()
        finally:
            self._shutdown()

    def _write_until_stopped(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._due():
                    self._cond.wait(self._wait_s())
                items = self._pending[: self._batch_size()]
                stopping = self._stop
            taken = self._step(items, stopping)
            with self._cond:
                del self._pending[:taken]
                self._cond.notify_all()
                if stopping and (not self._pending or self._gave_up):
                    return
                if self.leftover and not self.backlog.waiting:
                    self._stop = True  # what the previous run left is written

    def _batch_ready(self, now: float) -> bool:
        pending = self._pending
        return len(pending) >= self.max_rows or pending[0].received + self.max_age_s <= now

    def _due(self) -> bool:
        """Whether the loop has something to do now (called with the lock held)."""
        now = time.monotonic()
        waiting = self.backlog.waiting
        if waiting and now >= self._retry_at:
            return True  # the store may be back: move the backlog on
        if self._pending:
            gate = self._spool_retry_at if waiting else self._retry_at
            return self._batch_ready(now) and now >= gate
        return not waiting and self.window.due() and now >= self._retry_at

    def _wait_s(self) -> float:
        """How long nothing can be due (called with the lock held)."""
        now = time.monotonic()
        until = now + 1.0  # the history window's end is looked at once a second
        waiting = self.backlog.waiting
        if self._pending:
            first = self._pending[0].received + self.max_age_s
            ready = now if len(self._pending) >= self.max_rows else first
            gate = self._spool_retry_at if waiting else self._retry_at
            until = min(until, max(ready, gate))
        if waiting:
            until = min(until, self._retry_at)
        return max(until - now, 0.005)

    def _step(self, items: list[Incoming], stopping: bool) -> int:
        """One round: write ``items`` to the store, or behind the backlog into the spool,
        and move the backlog on; returns how many of ``items`` are taken (acknowledged)."""
        now = time.monotonic()
        if self.backlog.waiting:
            taken = 0
            if items and (stopping or now >= self._spool_retry_at):
                taken = self._hold(items, stopping)
            if not stopping and now >= self._retry_at:
                self._attempt(self._drain_some)
            return taken
        if items:
            try:
                flush_or_isolate(self.flush, items)
            except Exception as exc:
                self._failed(exc)
                if store_unreachable(exc):
                    return self._hold(items, stopping)
                self._gave_up = stopping  # unacknowledged: a broker delivers them again
                return 0
            self._succeeded()
            return len(items)
        if not stopping and self.window.due() and now >= self._retry_at:
            self._attempt(self._close_window)
        return 0

    def _attempt(self, write: Callable[[], None]) -> None:
        try:
            write()
        except Exception as exc:
            self._failed(exc)
        else:
            self._succeeded()

    def _failed(self, exc: Exception) -> None:
        """A write to the store failed: report it, and try again after a back-off."""
        message = self._describe(exc)
        spooling = self.backlog.waiting or store_unreachable(exc)
        log.warning(
            "%s: write failed (%s); again in %.1f s%s",
            self.source_id, message, self._delay,
            "; messages are kept in the local spool meanwhile" if spooling else "",
        )  # fmt: skip
        if self._full_since is not None:
            message = self._full_message
        elif spooling:
            message += "; messages are kept in the local spool until it is back"
        self._report(message)
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, SPOOL_PROBE_MAX_S if spooling else MAX_RETRY_S)

    def _succeeded(self) -> None:
        self._delay, self._retry_at = 0.5, 0.0
        if self._full_since is not None and not self.backlog.waiting:
            self._spool_room()  # written to the store directly again
        if self.last_error is not None and self._full_since is None:
            self._report(None)

    # -- the spool -------------------------------------------------------------------
    def _hold(self, items: list[Incoming], stopping: bool) -> int:
        """Put ``items`` into the spool behind the backlog and acknowledge the ones that
        fit; returns how many did."""
        try:
            kept = self.backlog.hold(items)
        except Exception as exc:  # the spool itself failed (a full disk, permissions)
            log.error("%s: the local spool failed (%s); messages wait unacknowledged",
                      self.source_id, exc)  # fmt: skip
            self.last_error = f"the store is unreachable and the local spool failed: {exc}"
            self._spool_retry_at = time.monotonic() + SPOOL_FULL_RETRY_S
            self._gave_up = stopping
            return 0
        for item in items[:kept]:
            # Not counted in a window nor refused yet: that happens once it is written.
            item.spooled, item.run_id = True, None
            item.rejections.clear()
        acknowledge(items[:kept], self.source_id)
        if kept < len(items):
            self._spool_full()
            self._gave_up = stopping
        elif self._full_since is not None:
            self._spool_room()
        return kept

    def _spool_full(self) -> None:
        self._spool_retry_at = time.monotonic() + SPOOL_FULL_RETRY_S
        if self._full_since is not None:
            return
        self._full_since = utcnow()
        spool = self.backlog.spool
        where = f"{spool.path} ({spool.max_bytes // 2**20} MB)" if spool is not None else ""
        self._full_message = (
            f"the store is unreachable and the local spool {where} is full "
            "(FACTORYSYNC_SPOOL_MAX_MB): messages are not acknowledged until there is room"
        )
        log.error("%s: %s", self.source_id, self._full_message)
        self._report(self._full_message)

    def _spool_room(self) -> None:
        """The spool takes messages again: the time it did not is a gap of the source."""
        start, end = self._full_since, utcnow()
        assert start is not None
        self._full_since = None
        reason = (
            "the local spool was full: messages were held back unacknowledged (a broker "
            "or sender keeps them; polled and subscribed values of that time were not read)"
        )
        self.note_gap(start, end, reason)
        record_event(
            self.store,
            self.source_id,
            "warning",
            GAP_EVENT,
            f"no data from {start.isoformat()} to {end.isoformat()}: {reason}",
            {"from": start.isoformat(), "to": end.isoformat(), "reason": reason},
        )

    def _drain_some(self) -> None:
        """Write the oldest batch of the backlog to the store (with its mark)."""
        spooled = self.backlog.take(self.max_rows * BACKLOG_FACTOR)
        if not spooled:
            return
        items = [
            Incoming(
                s.records,
                raw=s.raw,
                error=s.error,
                state=s.state,
                received_at=s.received_at,
                spool_seq=s.seq,
            )
            for s in spooled
        ]
        flush_or_isolate(self.flush, items)  # each commit takes its messages out of the spool
        if not self.backlog.waiting:
            log.info("%s: the spooled messages are written; back to the store", self.source_id)

    def flush(self, items: list[Incoming]) -> None:
        """Write ``items`` in one transaction (with the stream state the last of them
        carries), then acknowledge and publish them."""
        conn = self._conn
        assert conn is not None
        self.window.mark()
        gaps = self._gaps.take()
        try:
            done = write_items(
                conn, self.source_id, self._targets, self.window, self.backlog, items, gaps
            )
        except BaseException:
            self.window.rollback()
            self._gaps.give_back(gaps)
            if conn.in_transaction():
                conn.rollback()
            for target in self._targets:
                target.table.forget_stage()
            if conn.in_transaction():
                conn.rollback()
            raise
        self.flushes += 1
        if done.marked is not None:
            self.backlog.written(done.marked)  # committed: out of the spool
        self.window.publish_closed(self.store)  # a window this flush closed first
        acknowledge(items, self.source_id)
        for name, rows in done.published:
            if bus.subscribers(name):
                message = {"source_id": self.source_id, "run_id": done.run_id, "rows": rows}
                bus.publish(name, message)

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

    # -- gaps --------------------------------------------------------------------------
    def note_gap(self, start: datetime, end: datetime, reason: str) -> None:
        """Keep a time range the source could not be read in: the history row of the
        window the next flush writes to lists it under ``details.gaps``."""
        gap = {"from": start.isoformat(), "to": end.isoformat(), "reason": redact_known(reason)}
        self._gaps.add(gap)

    # -- status ----------------------------------------------------------------------
    @staticmethod
    def _describe(exc: BaseException) -> str:
        if exc.__class__.__module__.startswith("sqlalchemy"):
            return f"store error: {describe_db_error(exc)}"
        return str(exc) or type(exc).__name__

    def _report(self, error: str | None) -> None:
        self.last_error = error
        report_status(self.store, self.source_id, error)
