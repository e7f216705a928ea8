"""Run slots: at most one piece of work on a source's rows at a time in this process.

A sync holds its source's slot from claim to end; a quarantine replay (or any other
work on the rows outside a sync) holds it with :func:`run_slot`. Across processes the
history row (and, on PostgreSQL, the lease) keeps runs apart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from factorysync.engine.history import AlreadyRunning

running: set[str] = set()  # sources whose slot is held
_lock = threading.Lock()


def take(source_id: str) -> None:
    """Hold the source's slot; AlreadyRunning while it is held."""
    with _lock:
        if source_id in running:
            raise AlreadyRunning(f"source {source_id!r} is already syncing")
        running.add(source_id)


def release(source_id: str) -> None:
    with _lock:
        running.discard(source_id)


@contextmanager
def run_slot(source_id: str) -> Iterator[None]:
    """Hold the source's run slot in this process for the block (AlreadyRunning while a
    run of it is in progress here): for work on a source's rows outside a sync."""
    take(source_id)
    try:
        yield
    finally:
        release(source_id)
