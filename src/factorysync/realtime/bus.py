"""Committed changes of target tables, fanned out to live subscribers in this process.

Writers publish after their transaction commits: the realtime writer the rows of every
flush, a batch sync a summary of its counts (``announce_run``). The SSE endpoint
subscribes per target table (``subscribe_async``, an asyncio queue fed from the writers'
threads); threads may use ``subscribe``. A subscriber that does not keep up loses its
oldest events (its queue is bounded) rather than slowing the writers down; the events it
lost are counted in the next event it gets (``missed``), so a dashboard knows to reload.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any, Protocol

QUEUE_SIZE = 1000


class _Sink(Protocol):
    def offer(self, event: dict[str, Any]) -> None: ...


class _ThreadSink:
    def __init__(self) -> None:
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue(QUEUE_SIZE)

    def offer(self, event: dict[str, Any]) -> None:
        while True:
            try:
                self.queue.put_nowait(event)
                return
            except queue.Full:
                with suppress(queue.Empty):
                    self.queue.get_nowait()


class AsyncSubscription:
    """Events of one table for one asyncio consumer; ``missed`` counts dropped events."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.missed = 0

    def offer(self, event: dict[str, Any]) -> None:  # any thread
        with suppress(RuntimeError):  # the loop closed: the subscriber is gone
            self.loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: dict[str, Any]) -> None:  # the loop's thread
        if self.queue.full():
            with suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
                self.missed += 1
        self.queue.put_nowait(event)

    async def get(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class ChangeBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[_Sink]] = {}

    def _add(self, table: str, sink: _Sink) -> None:
        with self._lock:
            self._subscribers.setdefault(table, set()).add(sink)

    def _remove(self, table: str, sink: _Sink) -> None:
        with self._lock:
            sinks = self._subscribers.get(table)
            if sinks is not None:
                sinks.discard(sink)
                if not sinks:
                    del self._subscribers[table]

    @contextmanager
    def subscribe(self, table: str) -> Iterator[queue.Queue[dict[str, Any]]]:
        sink = _ThreadSink()
        self._add(table, sink)
        try:
            yield sink.queue
        finally:
            self._remove(table, sink)

    @asynccontextmanager
    async def subscribe_async(self, table: str) -> AsyncIterator[AsyncSubscription]:
        sink = AsyncSubscription(asyncio.get_running_loop())
        self._add(table, sink)
        try:
            yield sink
        finally:
            self._remove(table, sink)

    def publish(self, table: str, event: dict[str, Any]) -> None:
        with self._lock:
            targets = list(self._subscribers.get(table, ()))
        for sink in targets:
            sink.offer(event)

    def subscribers(self, table: str) -> int:
        with self._lock:
            return len(self._subscribers.get(table, ()))

    def any_subscriber(self) -> bool:
        with self._lock:
            return bool(self._subscribers)


bus = ChangeBus()


def announce_run(store: Any, result: Any) -> None:
    """After a batch run committed: tell the subscribers of its target tables what
    changed (counts only; a dashboard reloads the rows it shows)."""
    changed = result.records_inserted + result.records_updated + result.records_deleted
    if not changed or not bus.any_subscriber():
        return
    from sqlalchemy import select

    from factorysync.store.schema import data_source_mappings as maps_t

    try:
        with store.connect() as conn:
            tables = conn.execute(
                select(maps_t.c.target_table).where(
                    maps_t.c.source_id == result.source_id, maps_t.c.is_active.is_(True)
                )
            ).scalars().all()  # fmt: skip
    except Exception:  # the stream is a courtesy: a run never fails for it
        return
    event = {
        "source_id": result.source_id,
        "run_id": result.run_id,
        "sync_status": result.sync_status,
        "inserted": result.records_inserted,
        "updated": result.records_updated,
        "deleted": result.records_deleted,
    }
    for table in set(tables):
        bus.publish(table, event)
