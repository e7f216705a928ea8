"""A streaming connector at work: its ``subscribe(sink, stop)`` in a thread of its own
(:class:`Stream`), subscribed again after a transient error with a growing back-off, and
the sink it hands its messages to (:class:`Feed`), which feeds the source's micro-batch
writer and reports the stream's health in the registry. The realtime service
(:mod:`factorysync.realtime.service`) builds one per streaming source.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from factorysync.connectors.base import Connector
from factorysync.errors import ConnectorRetriable, FactorySyncError
from factorysync.realtime.health import record_event, report_status
from factorysync.realtime.writer import GAP_EVENT, Incoming, MicroBatchWriter
from factorysync.retry import Reconnects

log = logging.getLogger("factorysync.realtime")
MAX_BACKOFF_S = 30.0
# How long stopping waits for a stream to write, acknowledge and disconnect.
STOP_WAIT_S = 30.0


class Feed:
    """The sink a stream hands its messages to: the source's writer, and its health in
    the registry. ``connected``: the subscription is up; ``received``: messages taken.

    The stream's state travels with its messages and is stored by the flush that commits
    them; ``state()`` reads it back (the source's connector state, mapping 0 of
    ``data_source_sync_state``), so a stream started after a restart or by another worker
    resumes from what was committed. While messages of the source wait in the local
    spool, the state of the newest of them is the one committed."""

    def __init__(self, writer: MicroBatchWriter, stopping: Callable[[], bool]) -> None:
        self.writer = writer
        self.stopping = stopping
        self.connected = threading.Event()
        self.received = 0

    def put(
        self,
        records: list[Any],
        *,
        raw: Any = None,
        error: str | None = None,
        ack: Callable[[], None] | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.received += 1
        self.writer.put(Incoming(records, raw=raw, error=error, ack=ack, state=state))

    def put_many(self, messages: list[tuple[list[Any], Any, str | None, Any]]) -> None:
        """Messages as ``(records, raw, error, ack)``, in their order: ``put`` for many."""
        self.received += len(messages)
        now, wall = time.monotonic(), time.time()  # received together
        self.writer.put_many(
            [
                Incoming(r, raw=w, error=e, ack=a, received=now, received_at=wall)
                for r, w, e, a in messages
            ]
        )

    def state(self) -> dict[str, Any]:
        from sqlalchemy.exc import SQLAlchemyError

        from factorysync.engine.state import CONNECTOR_KEY, load_state
        from factorysync.store.db import describe_db_error

        spooled = self.writer.spooled_state()
        if spooled is not None:
            return spooled
        try:
            with self.writer.store.connect() as conn:
                found = load_state(conn, self.writer.source_id, 0, CONNECTOR_KEY)
        except SQLAlchemyError as exc:  # the stream is subscribed again after a back-off
            raise ConnectorRetriable(
                f"the stored state of the stream cannot be read: {describe_db_error(exc)}"
            ) from None
        return found if isinstance(found, dict) else {}

    def status(self, error: str | None, *, subscribed: str | None = None) -> None:
        # The registry first: whoever sees the stream down then also finds the reason.
        report_status(self.writer.store, self.writer.source_id, error, subscribed=subscribed)
        if error is not None:
            self.connected.clear()
        if error is None and subscribed is not None:
            self.connected.set()

    def event(
        self,
        event: str,
        message: str,
        *,
        level: str = "info",
        details: dict[str, Any] | None = None,
    ) -> None:
        record_event(self.writer.store, self.writer.source_id, level, event, message, details)

    def gap(self, start: datetime, end: datetime, reason: str) -> None:
        self.writer.note_gap(start, end, reason)
        self.event(
            GAP_EVENT,
            f"no data from {start.isoformat()} to {end.isoformat()}: {reason}",
            level="warning",
            details={"from": start.isoformat(), "to": end.isoformat(), "reason": reason},
        )

    def drain(self) -> None:
        """Once the source is being stopped: write and acknowledge what is pending, close
        the history window. Before that, the writer keeps flushing on its own."""
        if self.stopping():
            self.writer.stop()


class Stream:
    """A streaming connector's ``subscribe`` in a thread, and its writer."""

    def __init__(self, connector: Connector, writer: MicroBatchWriter) -> None:
        self.connector = connector
        self.writer = writer
        self._stop = threading.Event()
        self.subscriber = Feed(writer, self._stop.is_set)
        self.failure: str | None = None  # why the stream ended for good
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.writer.open()  # a mapping that cannot run is refused here, before anything
        self.writer.start()
        self._thread = threading.Thread(
            target=self._run, name=f"stream-{self.writer.source_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop taking messages, then write and acknowledge the ones taken."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT_S)
        self.writer.stop()  # nothing left to do when the stream drained it

    def _run(self) -> None:
        sid, waits = self.writer.source_id, Reconnects(max_s=MAX_BACKOFF_S)
        while not self._stop.is_set():
            began = time.monotonic()
            problem = None
            try:
                self.connector.subscribe(self.subscriber, self._stop)
            except ConnectorRetriable as exc:
                problem = str(exc)
            except Exception as exc:
                self.failure = str(exc) if isinstance(exc, FactorySyncError) else repr(exc)
                log.error("realtime: source %s stopped: %s", sid, self.failure)
                self.subscriber.status(self.failure)
                return
            delay = waits.after(time.monotonic() - began)
            if problem is not None:
                self.subscriber.status(f"{problem}; subscribing again in {delay:.0f} s")
            if self._stop.wait(delay):
                break
        self.subscriber.drain()
