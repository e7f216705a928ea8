"""The scheduler: runs due sources by priority under a concurrency limit.

A source is due when ``next_sync <= now`` and its status is ``active`` or ``error``
(an open circuit is retried on its back-off); ``inactive`` and ``maintenance`` sources
are skipped, and so is a source stopped by the crash-loop rule (status ``error`` without
a ``next_sync``, see :mod:`factorysync.engine.history`) until an operator runs it. A
source never runs twice at the same time. Blocking connectors run in worker threads.
Retention purges run on their own interval. What else runs beside the scheduler (the
alert monitor, live streams) is started by the process that runs it, and learns of each
run from its run-finished event (:mod:`factorysync.engine.events`).

On SQLite one process schedules (``factorysync run``). On PostgreSQL every scheduler —
``run`` or any number of ``factorysync worker`` processes on any hosts — claims due
sources through leases (:mod:`factorysync.engine.leases`), renews them while it runs
them and releases them when the run has committed.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from sqlalchemy import select

from factorysync.engine import leases, retention
from factorysync.engine.runner import AlreadyRunning, Runner, recover_interrupted
from factorysync.store.registry import is_due
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.store import Store
from factorysync.store.types import utcnow

log = logging.getLogger("factorysync.scheduler")


class Scheduler:
    def __init__(
        self,
        store: Store,
        *,
        max_concurrent: int | None = None,
        lease_s: float | None = None,
        name: str | None = None,
    ) -> None:
        self.store = store
        self.runner = Runner(store)
        self.max_concurrent = max_concurrent or store.settings.concurrent_syncs
        self._pool = ThreadPoolExecutor(self.max_concurrent + 1, thread_name_prefix="sync")
        self._in_flight: dict[str, Future[object]] = {}
        self._stop = threading.Event()
        self._last_retention = 0.0
        self.lag_s = 0.0  # how late the most overdue source was at the last tick
        self.leased = store.dialect == "postgresql"
        self.lease_s = lease_s or store.settings.lease_s
        self.worker_id = leases.new_worker_id(name)
        self.store_ok = True

    # -- claiming --------------------------------------------------------------------
    def due(self) -> list[tuple[str, datetime]]:
        now = utcnow()
        with self.store.connect() as conn:
            rows = conn.execute(
                select(reg_t.c.source_id, reg_t.c.next_sync)
                .where(reg_t.c.status.in_(("active", "error")), is_due(now))
                .where(leases.batch_source())
                .order_by(reg_t.c.priority, reg_t.c.next_sync)
            ).all()
        return [(r.source_id, r.next_sync) for r in rows]

    def _claim(self, room: int) -> list[tuple[str, datetime]]:
        if not self.leased:
            return [d for d in self.due() if d[0] not in self._in_flight][:room]
        with self.store.begin() as conn:
            return leases.claim(conn, self.worker_id, room, self.lease_s)

    def tick(self) -> int:
        """Start due sources that fit under the limit; returns how many started."""
        for sid, fut in list(self._in_flight.items()):
            if fut.done():
                del self._in_flight[sid]
        room = self.max_concurrent - len(self._in_flight)
        if room <= 0:
            return 0
        claimed = self._claim(room)
        self.lag_s = max(((utcnow() - claimed[0][1]).total_seconds() if claimed else 0.0), 0.0)
        for sid, when in claimed:
            self._in_flight[sid] = self._pool.submit(self._run_one, sid, when)
        return len(claimed)

    def _run_one(self, source_id: str, due: datetime) -> object:
        owner = self.worker_id if self.leased else None
        try:
            return self.runner.sync(source_id, trigger="schedule", due=due, lease_owner=owner)
        except AlreadyRunning:
            return None
        except Exception:
            log.exception("scheduler: run of %s crashed", source_id)
            return None
        finally:
            if self.leased:
                try:
                    with self.store.begin() as conn:
                        leases.release(conn, self.worker_id, source_id)
                except Exception:  # the lease then simply expires
                    log.warning("could not release the lease of %s", source_id)

    # -- heartbeat -------------------------------------------------------------------
    def _heartbeat(self) -> None:
        """Renew the leases of runs in progress and report this worker as alive."""
        while not self._stop.wait(self.lease_s / 3):
            self.beat()

    def beat(self, status: str = "alive") -> None:
        """Renew this worker's leases, record its heartbeat and mark silent workers dead."""
        try:
            with self.store.begin() as conn:
                leases.renew(conn, self.worker_id, list(self._in_flight), self.lease_s)
                leases.heartbeat(
                    conn, self.worker_id, self.max_concurrent, len(self._in_flight), status
                )
                dead = leases.mark_dead(conn, self.lease_s)
            for worker_id in dead:
                log.warning(
                    "worker %s sent no heartbeat for %g s: marked dead", worker_id, self.lease_s
                )
            if not self.store_ok:
                log.warning("store reachable again: claiming resumes")
            self.store_ok = True
        except Exception as exc:
            # Without the store nothing can be renewed or committed: stop claiming and
            # let the leases expire, so other workers take over.
            if self.store_ok:
                log.error("store unreachable (%s): claiming stops", type(exc).__name__)
            self.store_ok = False

    # -- loop ------------------------------------------------------------------------
    def purge_retention(self) -> None:
        for sid in retention.sources_with_retention(self.store):
            try:
                retention.purge(self.store, sid)
            except Exception:
                log.exception("retention purge of %s failed", sid)

    def run_forever(self, stop_after: float | None = None) -> None:
        # Runs a dead process left 'running' are failed; their sources run again now,
        # unless they keep crashing (those are logged and left in status 'error').
        recovered = recover_interrupted(self.store)
        if recovered:
            log.warning(
                "interrupted run(s) of %s marked failed and rescheduled", ", ".join(recovered)
            )
        beat = None
        if self.leased:
            self.beat()
            beat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
            beat.start()
        tick = self.store.settings.scheduler_tick_s
        every = self.store.settings.retention_interval_s
        deadline = None if stop_after is None else time.monotonic() + stop_after
        while not self._stop.is_set():
            try:
                if self.store_ok:
                    self.tick()
                if time.monotonic() - self._last_retention >= every:
                    self._last_retention = time.monotonic()
                    self._pool.submit(self.purge_retention)
            except Exception as exc:
                log.warning("scheduler tick failed (%s); retrying", type(exc).__name__)
            if deadline is not None and time.monotonic() >= deadline:
                break
            self._stop.wait(tick)
        self._pool.shutdown(wait=True)
        self._stop.set()
        if self.leased:
            self.beat(status="stopped")

    def stop(self) -> None:
        self._stop.set()
