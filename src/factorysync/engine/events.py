"""Run-finished and spool-level events: how the layers above the engine learn that a run
ended, or that a local spool filled up.

The engine publishes a :class:`RunFinished` once the transaction that closed a run (its
history row, counters and registry) has committed: a batch run when it ends, a realtime
window when it closes. The alert rules and the live stream subscribe here, so the
engine names neither of them, and neither can hold up or undo a run.

Subscribers are called in the publishing thread, in the order they subscribed, right
after the commit: a sync that returns has been seen by every subscriber of this process.
A subscriber that raises is logged and skipped; the others still get the event.

A :class:`SpoolLevel` is published by the realtime service when its spool crosses the
alert level, either way (:mod:`factorysync.realtime.spool`); the alert rules subscribe
(``subscribe_spool``). The store is usually unreachable then, which is why the spool fills.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from factorysync.engine.history import RunResult
    from factorysync.store.store import Store

log = logging.getLogger("factorysync.events")


@dataclass(frozen=True)
class RunFinished:
    """A run whose outcome is committed.

    ``error``: the exception that ended a failed run (for rules that tell failures
    apart, such as a schema change refused by ``schema_contract: freeze``).
    ``streamed``: the run's rows were published as they were written (a realtime
    window), so a live stream has nothing to add for it."""

    store: Store
    result: RunResult
    error: BaseException | None = None
    streamed: bool = False


Subscriber = Callable[[RunFinished], None]
_subscribers: list[Subscriber] = []
_lock = threading.Lock()


def subscribe(subscriber: Subscriber) -> None:
    """Call ``subscriber`` with every run-finished event of this process (once, however
    often it subscribes)."""
    with _lock:
        if subscriber not in _subscribers:
            _subscribers.append(subscriber)


def unsubscribe(subscriber: Subscriber) -> None:
    with _lock:
        if subscriber in _subscribers:
            _subscribers.remove(subscriber)


def publish(event: RunFinished) -> None:
    """Hand ``event`` to every subscriber; never raises (the run is already committed)."""
    with _lock:
        subscribers = list(_subscribers)
    for subscriber in subscribers:
        try:
            subscriber(event)
        except Exception as exc:  # a subscriber's failure is its own, never the run's
            log.warning(
                "run-finished subscriber %s failed for run %s of %s: %s",
                getattr(subscriber, "__qualname__", subscriber),
                event.result.run_id,
                event.result.source_id,
                type(exc).__name__,
            )


@dataclass(frozen=True)
class SpoolLevel:
    """A local spool crossed the alert level (80 % of ``FACTORYSYNC_SPOOL_MAX_MB``):
    upwards (``filling``) or back below. ``messages``: what it holds, by source."""

    spool: str  # the file
    filling: bool
    used_bytes: int
    max_bytes: int
    messages: dict[str, int]


SpoolSubscriber = Callable[[SpoolLevel], None]
_spool_subscribers: list[SpoolSubscriber] = []


def subscribe_spool(subscriber: SpoolSubscriber) -> None:
    with _lock:
        if subscriber not in _spool_subscribers:
            _spool_subscribers.append(subscriber)


def unsubscribe_spool(subscriber: SpoolSubscriber) -> None:
    with _lock:
        if subscriber in _spool_subscribers:
            _spool_subscribers.remove(subscriber)


def publish_spool(event: SpoolLevel) -> None:
    """Hand ``event`` to every spool subscriber; never raises."""
    with _lock:
        subscribers = list(_spool_subscribers)
    for subscriber in subscribers:
        try:
            subscriber(event)
        except Exception as exc:
            log.warning("spool-level subscriber failed for %s: %s", event.spool, exc)
