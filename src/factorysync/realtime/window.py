"""History of a realtime source: one ``data_source_sync_history`` row per time window.

A window opens with the first flush after the previous one closed (an idle source adds
no rows), its counts grow with every flush in the flush's own transaction, and it is
closed as ``success`` once ``window_s`` have passed. A process that dies leaves its
window ``running``; the next start of ``factorysync run`` on that host, or the worker that
takes the source's lease over, marks it interrupted.

A closed window is a finished run: once the transaction that closed it has committed, the
writer publishes it (:meth:`HistoryWindow.publish_closed`) as a run-finished event
(:mod:`factorysync.engine.events`), which the alert rules evaluate as they do every run.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, update

from factorysync.engine import events, history
from factorysync.engine.history import RunResult
from factorysync.store.registry import data_changed, get_source
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.targets import MergeCounts
from factorysync.store.types import utcnow

SYNC_TYPE = "realtime"


class Gaps:
    """Time ranges a source could not be read in, kept (from any thread) for the history
    row of the window the next flush writes to, which lists them under ``details.gaps``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gaps: list[dict[str, Any]] = []

    def add(self, gap: dict[str, Any]) -> None:
        with self._lock:
            self._gaps.append(gap)

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            gaps, self._gaps = self._gaps, []
        return gaps

    def give_back(self, gaps: list[dict[str, Any]]) -> None:
        """Gaps taken by a flush that did not commit: first again."""
        if gaps:
            with self._lock:
                self._gaps[:0] = gaps


class HistoryWindow:
    """``owner``: the lease holder running the source (a worker on PostgreSQL), whose
    window replaces one left running by a worker that died. ``shared``: several workers
    run the source at once (an MQTT shared subscription), each with windows of its own."""

    def __init__(
        self, source_id: str, window_s: float, *, owner: str | None = None, shared: bool = False
    ) -> None:
        self.source_id = source_id
        self.window_s = window_s
        self.owner = owner
        self.shared = shared
        self.result: RunResult | None = None
        self.started: datetime | None = None
        self._opened = 0.0
        self._committed: tuple[RunResult | None, datetime | None, float] = (None, None, 0.0)
        self._closed: list[RunResult] = []  # closed in the transaction in progress

    @property
    def run_id(self) -> int | None:
        return None if self.result is None else self.result.run_id

    def due(self) -> bool:
        """Whether the open window has reached its end."""
        return self.result is not None and time.monotonic() - self._opened >= self.window_s

    def begin(self, conn: Connection) -> int:
        """The run id of the current window, opening one (closing an expired one) first."""
        if self.result is not None and self.due():
            self.close(conn)
        if self.result is None:
            self.started = utcnow()
            run_id = history.start_run(
                conn,
                self.source_id,
                SYNC_TYPE,
                SYNC_TYPE,
                self.started,
                None,
                lease_owner=self.owner,
                alongside=self.shared,
            )
            self.result = RunResult(run_id, self.source_id, SYNC_TYPE, "running")
            self._opened = time.monotonic()
        return self.result.run_id

    def add(
        self, conn: Connection, processed: int, counts: MergeCounts, rejected: int
    ) -> RunResult:
        """Add one flush to the window's counts (in the flush's transaction)."""
        assert self.result is not None and self.started is not None
        r = self.result
        r.records_processed += processed
        r.records_inserted += counts.inserted
        r.records_updated += counts.updated
        r.records_deleted += counts.deleted
        r.records_rejected += rejected
        conn.execute(
            update(hist_t)
            .where(hist_t.c.id == r.run_id)
            .values(
                records_processed=r.records_processed,
                records_inserted=r.records_inserted,
                records_updated=r.records_updated,
                records_deleted=r.records_deleted,
                records_rejected=r.records_rejected,
                sync_duration_ms=int((utcnow() - self.started).total_seconds() * 1000),
            )
        )
        if counts.inserted or counts.updated or counts.deleted:
            data_changed(conn, self.source_id, last_sync=utcnow())
        else:
            conn.execute(
                update(reg_t).where(reg_t.c.source_id == self.source_id).values(last_sync=utcnow())
            )
        return r

    def close(self, conn: Connection) -> None:
        """End the window as 'success' (in the caller's transaction)."""
        if self.result is None or self.started is None:
            return
        self.result.sync_status = "success"
        source: dict[str, Any] = get_source(conn, self.source_id)
        history.finish_success(conn, source, self.result, self.started)
        self._closed.append(self.result)
        self.result = None
        self.started = None

    def publish_closed(self, store: Any) -> None:
        """After the commit: a run-finished event for each window the transaction closed."""
        closed, self._closed = self._closed, []
        for result in closed:
            events.publish(events.RunFinished(store, result, streamed=True))

    # A flush whose transaction rolled back must not leave the window pointing at a row
    # that was never committed (or a close that never happened).
    def mark(self) -> None:
        self._committed = (self._copy(), self.started, self._opened)

    def rollback(self) -> None:
        result, self.started, self._opened = self._committed
        self.result = result
        self._closed = []

    def _copy(self) -> RunResult | None:
        if self.result is None:
            return None
        return RunResult(**{**self.result.as_dict(), "details": dict(self.result.details)})
