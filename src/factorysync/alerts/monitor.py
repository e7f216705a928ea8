"""The alert monitor: one background thread per process and store, and the run-driven
rules of every run this process finishes (:func:`run_finished`).

Every ``alert_check_s`` it checks staleness and realtime silence, and it delivers pending
notices (alerts opened or resolved and not yet announced) to the configured channels —
at once when a run in this process raised or resolved an alert. Delivery happens here,
outside any sync and any transaction, with a timeout per attempt: a slow or failing
channel never holds up or fails a sync. Failures are logged without URLs or credentials.

The API app (``serve``, ``run``, ``demo``) and the scheduler (``run``, ``worker``) each
:func:`acquire` the monitor of their store; a process runs one per store however many
ask for it. Several processes may share a store: each notice is claimed by exactly one.

Spool levels (:func:`spool_level`) wake the monitor: it raises ``spool_filling`` for the
sources in a spool past 80 %, and resolves them once it is below again. A spool fills
because the store is unreachable, so when the store cannot take the alerts the monitor
announces their opening on its channels directly, and once the store is back records
them as announced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from factorysync.alerts import records, rules
from factorysync.alerts.channels import Channel, DeliveryError, Notice, configured_channels
from factorysync.engine.events import RunFinished, SpoolLevel
from factorysync.settings import get_settings
from factorysync.store.store import Store
from factorysync.store.types import utcnow

log = logging.getLogger("factorysync.alerts")
RETRY_DELAYS_S = (1.0, 3.0)  # waits between the attempts of one delivery
SETTLE_S = 0.2  # after a wake-up: lets a burst of runs end before one delivery round
# Monitors of this process wait on these; a run that raised or resolved an alert sets
# them, so its notice goes out at once instead of at the next periodic check.
_wakers: set[threading.Event] = set()
_wakers_lock = threading.Lock()
# The spools of this process: the latest level of each file, the ones that crossed the
# alert level since the store last took their alerts, those announced without the store,
# and the sources alerted for each.
_spool_lock = threading.Lock()
_spool_levels: dict[str, SpoolLevel] = {}
_spool_latched: dict[str, SpoolLevel] = {}
_spool_announced: set[str] = set()
_spool_raised: dict[str, set[str]] = {}


def run_finished(event: RunFinished) -> None:
    """The run-driven rules for a run whose outcome just committed, in a transaction of
    their own; a problem here is logged and never touches the run."""
    result = event.result
    try:
        with event.store.begin() as conn:
            touched = rules.evaluate_run(conn, result, get_settings(), utcnow(), error=event.error)
    except Exception as exc:
        log.warning(
            "alert rules after run %s of %s failed: %s",
            result.run_id,
            result.source_id,
            type(exc).__name__,
        )
        return
    if touched:
        with _wakers_lock:
            for waker in _wakers:
                waker.set()


def spool_level(event: SpoolLevel) -> None:
    """A spool of this process crossed its alert level: its alerts are due at once."""
    with _spool_lock:
        _spool_levels[event.spool] = event
        if event.filling:
            _spool_latched[event.spool] = event
    with _wakers_lock:
        for waker in _wakers:
            waker.set()


def _spool_alerts(conn: Any, now: datetime) -> tuple[int, Callable[[], None]]:
    """Raise and resolve ``spool_filling`` for this process's spools (in ``conn``'s
    transaction); how many changed, and what to note here once it has committed."""
    with _spool_lock:
        levels, latched = dict(_spool_levels), dict(_spool_latched)
        announced = set(_spool_announced)
        raised = {path: set(sids) for path, sids in _spool_raised.items()}
    touched = 0
    raised_now: dict[str, set[str]] = {}
    for path, level in levels.items():
        raising = level if level.filling else latched.get(path)
        if raising is not None:
            rows = rules.spool_alerts(raising)
            sids = raised_now[path] = {r["source_id"] for r in rows}
            touched += records.raise_alerts(conn, rows, now)
            if path in announced:
                records.mark_announced(conn, rules.SPOOL_RULE, sids, now)
        if not level.filling:
            sids = raised.get(path, set()) | raised_now.pop(path, set())
            if sids:
                touched += records.resolve(conn, (rules.SPOOL_RULE,), now, source_ids=sids)

    def committed() -> None:
        with _spool_lock:
            for path, sids in raised_now.items():
                _spool_raised.setdefault(path, set()).update(sids)
            for path, level in levels.items():
                if level.filling:
                    continue
                _spool_raised.pop(path, None)
                if _spool_levels.get(path) is level:  # no newer level came meanwhile
                    del _spool_levels[path]
            for path, level in latched.items():
                if _spool_latched.get(path) is level:
                    del _spool_latched[path]
                    _spool_announced.discard(path)

    return touched, committed


def forget_spools() -> None:
    """Forget every spool level seen (tests, which make and drop spools by the dozen)."""
    with _spool_lock:
        _spool_levels.clear()
        _spool_latched.clear()
        _spool_announced.clear()
        _spool_raised.clear()


class AlertMonitor:
    def __init__(
        self,
        store: Store,
        channels: Sequence[Channel] | None = None,
        *,
        retry_delays: Sequence[float] = RETRY_DELAYS_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.channels = list(
            channels if channels is not None else configured_channels(store.settings)
        )
        self.retry_delays = tuple(retry_delays)
        self.sleep = sleep
        self.delivered = 0
        self.failed = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one round -----------------------------------------------------------------
    def check(self) -> int:
        """Staleness and silence of every source, and the spools of this process, in one
        write transaction."""
        now = utcnow()
        with self.store.begin() as conn:
            touched = rules.check_sources(conn, self.store.settings, now)
            spooled, committed = _spool_alerts(conn, now)
        committed()
        return touched + spooled

    def announce_spools(self) -> int:
        """Announce the opening of ``spool_filling`` alerts on the channels without the
        store (which cannot be written: that is why the spool fills); how many."""
        if not self.channels:
            return 0
        with _spool_lock:
            due = {p: lvl for p, lvl in _spool_latched.items() if p not in _spool_announced}
        now, sent = utcnow(), 0
        for path, level in due.items():
            for row in rules.spool_alerts(level):
                alert = {
                    "id": None,
                    "state": "open",
                    "occurrences": 1,
                    "opened_at": now,
                    "last_seen_at": now,
                    "acknowledged_at": None,
                    "acknowledged_by": None,
                    "resolved_at": None,
                    **row,
                }
                for channel in self.channels:
                    self._send(channel, Notice("opened", alert))
                sent += 1
            with _spool_lock:
                _spool_announced.add(path)
        return sent

    def deliver(self) -> int:
        """Announce pending notices on every channel; how many notices were sent."""
        if not self.channels:
            return 0
        with self.store.begin() as conn:
            claimed = records.claim_notifications(conn, utcnow())
        for event, alert in claimed:
            notice = Notice("opened" if event == "open" else "resolved", alert)
            for channel in self.channels:
                self._send(channel, notice)
        return len(claimed)

    def _send(self, channel: Channel, notice: Notice) -> None:
        attempts = len(self.retry_delays) + 1
        for attempt in range(attempts):
            try:
                channel.send(notice)
                self.delivered += 1
                return
            except DeliveryError as exc:
                problem = str(exc)
            except Exception as exc:  # a channel's bug must not stop the monitor
                problem = f"{channel.name}: {type(exc).__name__}"
            if attempt < len(self.retry_delays) and not self._stop.is_set():
                self.sleep(self.retry_delays[attempt])
        self.failed += 1
        log.error(
            "alert %s (%s on %s) not delivered after %d attempt(s): %s",
            notice.alert["id"],
            notice.event,
            notice.alert["source_id"],
            attempts,
            problem,
        )

    def run_once(self) -> None:
        self.check()
        self.deliver()

    # -- thread --------------------------------------------------------------------
    def _loop(self) -> None:
        every = self.store.settings.alert_check_s
        next_check = 0.0
        while not self._stop.is_set():
            try:
                with _spool_lock:
                    spools_due = bool(_spool_latched) or any(
                        not lvl.filling for lvl in _spool_levels.values()
                    )
                if spools_due or time.monotonic() >= next_check:
                    next_check = time.monotonic() + every
                    self.check()
                self.deliver()
            except Exception as exc:  # the store may be busy or away: try again later
                log.warning("alert monitor round failed: %s", type(exc).__name__)
                try:
                    self.announce_spools()
                except Exception as problem:
                    log.warning("spool alert not announced: %s", type(problem).__name__)
            timeout = max(next_check - time.monotonic(), 0.05)
            if self._wake.wait(timeout):
                self._wake.clear()
                self._stop.wait(SETTLE_S)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            with _wakers_lock:
                _wakers.add(self._wake)
            self._thread = threading.Thread(target=self._loop, name="alert-monitor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with _wakers_lock:
            _wakers.discard(self._wake)
        if self._thread is not None:
            self._thread.join()
            self._thread = None


_monitors: dict[str, tuple[AlertMonitor, int]] = {}
_lock = threading.Lock()


def acquire(store: Store) -> AlertMonitor:
    """The running monitor of ``store`` in this process (started on first use)."""
    with _lock:
        monitor, users = _monitors.get(store.url, (None, 0))
        if monitor is None:
            monitor = AlertMonitor(store)
            monitor.start()
        _monitors[store.url] = (monitor, users + 1)
        return monitor


def release(store: Store) -> None:
    """Stop the monitor of ``store`` when its last user lets go."""
    with _lock:
        monitor, users = _monitors.get(store.url, (None, 0))
        if monitor is None:
            return
        if users > 1:
            _monitors[store.url] = (monitor, users - 1)
            return
        del _monitors[store.url]
    monitor.stop()
