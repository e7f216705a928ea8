"""The scheduler: runs due sources by priority under a global concurrency limit.

A source is due when ``next_sync <= now`` and its status is ``active`` or ``error``
(an open circuit is retried on its back-off); ``inactive`` and ``maintenance`` sources
are skipped. A source never runs twice at the same time. Blocking connectors run in
worker threads. Retention purges run on their own interval.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from sqlalchemy import select

from factorysync.engine import retention
from factorysync.engine.runner import AlreadyRunning, Runner, recover_interrupted
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.store import Store
from factorysync.store.types import utcnow

log = logging.getLogger("factorysync.scheduler")


class Scheduler:
    def __init__(self, store: Store, *, max_concurrent: int | None = None) -> None:
        self.store = store
        self.runner = Runner(store)
        self.max_concurrent = max_concurrent or store.settings.max_concurrent_syncs
        self._pool = ThreadPoolExecutor(self.max_concurrent, thread_name_prefix="sync")
        self._in_flight: dict[str, Future[object]] = {}
        self._stop = threading.Event()
        self._last_retention = 0.0
        self.lag_s = 0.0  # how late the most overdue source was at the last tick

    def due(self) -> list[tuple[str, datetime]]:
        now = utcnow()
        with self.store.connect() as conn:
            rows = conn.execute(
                select(reg_t.c.source_id, reg_t.c.next_sync)
                .where(reg_t.c.status.in_(("active", "error")), reg_t.c.next_sync <= now)
                .order_by(reg_t.c.priority, reg_t.c.next_sync)
            ).all()
        return [(r.source_id, r.next_sync) for r in rows]

    def tick(self) -> int:
        """Start every due source that fits under the limit; returns how many started."""
        for sid, fut in list(self._in_flight.items()):
            if fut.done():
                del self._in_flight[sid]
        started = 0
        due = self.due()
        waiting = [d for sid, d in due if sid not in self._in_flight]
        self.lag_s = max(((utcnow() - min(waiting)).total_seconds() if waiting else 0.0), 0.0)
        for sid, when in due:
            if len(self._in_flight) >= self.max_concurrent:
                break
            if sid in self._in_flight:
                continue
            self._in_flight[sid] = self._pool.submit(self._run_one, sid, when)
            started += 1
        return started

    def _run_one(self, source_id: str, due: datetime) -> object:
        try:
            return self.runner.sync(source_id, trigger="schedule", due=due)
        except AlreadyRunning:
            return None
        except Exception:
            log.exception("scheduler: run of %s crashed", source_id)
            return None

    def purge_retention(self) -> None:
        for sid in retention.sources_with_retention(self.store):
            try:
                retention.purge(self.store, sid)
            except Exception:
                log.exception("retention purge of %s failed", sid)

    def run_forever(self, stop_after: float | None = None) -> None:
        recovered = recover_interrupted(self.store)
        if recovered:
            log.warning(
                "interrupted run(s) of %s marked failed and rescheduled", ", ".join(recovered)
            )
        tick = self.store.settings.scheduler_tick_s
        every = self.store.settings.retention_interval_s
        deadline = None if stop_after is None else time.monotonic() + stop_after
        while not self._stop.is_set():
            try:
                self.tick()
                if time.monotonic() - self._last_retention >= every:
                    self._last_retention = time.monotonic()
                    self._pool.submit(self.purge_retention)
            except Exception:
                log.exception("scheduler tick failed; retrying")
            if deadline is not None and time.monotonic() >= deadline:
                break
            self._stop.wait(tick)
        self._pool.shutdown(wait=True)

    def stop(self) -> None:
        self._stop.set()
