"""Committed changes of target tables, fanned out to live subscribers in this process.

Writers publish after their transaction commits: the realtime writer the rows of every
flush, a batch sync a summary of its counts (``announce_run``, subscribed to the engine's
run-finished events, so every run in this process is announced once). The SSE endpoint
subscribes per target table (``subscribe_async``, an asyncio queue fed from the writers'
threads); threads may use ``subscribe``. A subscriber that does not keep up loses its
oldest events (its queue is bounded) rather than slowing the writers down; the events it
lost are counted in the next event it gets (``missed``), so a dashboard knows to reload.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any, Protocol

from factorysync.engine import events

QUEUE_SIZE = 1000
ANNOUNCED_MEMORY = 1024  # runs remembered as announced (a run is announced once)


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


_announced: OrderedDict[tuple[str, int], None] = OrderedDict()
_announced_lock = threading.Lock()


def _first_announcement(store: Any, run_id: int) -> bool:
    key = (str(getattr(store, "url", id(store))), run_id)
    with _announced_lock:
        if key in _announced:
            return False
        _announced[key] = None
        while len(_announced) > ANNOUNCED_MEMORY:
            _announced.popitem(last=False)
    return True


def announce_run(store: Any, result: Any) -> None:
    """After a batch run committed: tell the subscribers of its target tables what
    changed (counts only; a dashboard reloads the rows it shows). Each run once, however
    many callers report it."""
    changed = result.records_inserted + result.records_updated + result.records_deleted
    if not changed or not bus.any_subscriber():
        return
    if not _first_announcement(store, result.run_id):
        return
    from sqlalchemy import select

    from factorysync.store.schema import data_source_mappings as maps_t
    from factorysync.store.schema import data_source_registry as reg_t

    try:
        with store.connect() as conn:
            tables = conn.execute(
                select(maps_t.c.target_table)
                .join(reg_t, reg_t.c.id == maps_t.c.registry_id)
                .where(reg_t.c.source_id == result.source_id, maps_t.c.is_active.is_not(False))
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


def _on_run_finished(event: events.RunFinished) -> None:
    if not event.streamed:  # a realtime window's rows went out flush by flush
        announce_run(event.store, event.result)


events.subscribe(_on_run_finished)
