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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from factorysync.alerts import records, rules
from factorysync.alerts.channels import Channel, DeliveryError, Notice, configured_channels
from factorysync.engine.events import RunFinished
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
        """Staleness and silence of every source, in one write transaction."""
        with self.store.begin() as conn:
            return rules.check_sources(conn, self.store.settings, utcnow())

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
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + every
                    self.check()
                self.deliver()
            except Exception as exc:  # the store may be busy or away: try again later
                log.warning("alert monitor round failed: %s", type(exc).__name__)
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
