"""The scheduler: runs due sources by priority under a global concurrency limit.

A source is due when ``next_sync <= now`` and its status is ``active`` or ``error``
(an open circuit is retried on its back-off); ``inactive`` and ``maintenance`` sources
are skipped. A source never runs twice at the same time. Blocking connectors run in
worker threads.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy import select

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

    def due(self) -> list[str]:
        now = utcnow()
        with self.store.connect() as conn:
            return list(
                conn.execute(
                    select(reg_t.c.source_id)
                    .where(reg_t.c.status.in_(("active", "error")), reg_t.c.next_sync <= now)
                    .order_by(reg_t.c.priority, reg_t.c.next_sync)
                ).scalars()
            )

    def tick(self) -> int:
        """Start every due source that fits under the limit; returns how many started."""
        for sid, fut in list(self._in_flight.items()):
            if fut.done():
                del self._in_flight[sid]
        started = 0
        for sid in self.due():
            if len(self._in_flight) >= self.max_concurrent:
                break
            if sid in self._in_flight:
                continue
            self._in_flight[sid] = self._pool.submit(self._run_one, sid)
            started += 1
        return started

    def _run_one(self, source_id: str) -> object:
        try:
            return self.runner.sync(source_id, trigger="schedule")
        except AlreadyRunning:
            return None
        except Exception:
            log.exception("scheduler: run of %s crashed", source_id)
            return None

    def run_forever(self) -> None:
        recovered = recover_interrupted(self.store)
        if recovered:
            log.warning("marked %d interrupted run(s) as failed", recovered)
        tick = self.store.settings.scheduler_tick_s
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("scheduler tick failed; retrying")
            self._stop.wait(tick)
        self._pool.shutdown(wait=True)

    def stop(self) -> None:
        self._stop.set()
