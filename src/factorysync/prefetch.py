"""Producing an iterator's items in a thread, a few ahead of the consumer."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def prefetched(batches: Iterator[T], depth: int = 1) -> Iterator[T]:
    """``batches``, produced by a thread up to ``depth`` ahead of the consumer.

    Arrow parsing, network reads and the store's own work release the GIL, so producing
    the next item overlaps with consuming this one. The producer's exceptions are raised
    here, in order; when the consumer stops early, the producer stops at its next
    hand-over and the iterator is closed in the producer's thread.
    """
    done = object()
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not hand_over(batch):
                    break
            else:
                hand_over(done)
        except BaseException as exc:  # raised in the consumer
            hand_over(exc)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="factorysync-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
