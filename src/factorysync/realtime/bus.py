"""Committed changes of target tables, fanned out to live subscribers in this process.

The realtime writer publishes the rows of every flush after its transaction commits;
the SSE endpoint subscribes per target table. A subscriber that does not keep up loses
its oldest events (its queue is bounded) rather than slowing the writers down.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

QUEUE_SIZE = 1000


class ChangeBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[queue.Queue[dict[str, Any]]]] = {}

    @contextmanager
    def subscribe(self, table: str) -> Iterator[queue.Queue[dict[str, Any]]]:
        q: queue.Queue[dict[str, Any]] = queue.Queue(QUEUE_SIZE)
        with self._lock:
            self._subscribers.setdefault(table, set()).add(q)
        try:
            yield q
        finally:
            with self._lock:
                self._subscribers.get(table, set()).discard(q)

    def publish(self, table: str, event: dict[str, Any]) -> None:
        with self._lock:
            targets = list(self._subscribers.get(table, ()))
        for q in targets:
            while True:
                try:
                    q.put_nowait(event)
                    break
                except queue.Full:
                    with suppress(queue.Empty):
                        q.get_nowait()

    def subscribers(self, table: str) -> int:
        with self._lock:
            return len(self._subscribers.get(table, ()))


bus = ChangeBus()
