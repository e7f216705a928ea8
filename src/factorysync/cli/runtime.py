"""The long-running service: the one place that builds, starts and stops it.

Three commands keep a process running, each with a part of the same service:

- ``run`` (and ``demo`` once its syncs are done): the scheduler in a thread and the
  realtime service beside it, with the API and console in the foreground;
- ``worker``: the scheduler in the foreground and the realtime service, no API;
- ``serve``: the API alone.

Whichever parts run, SIGINT and SIGTERM stop them in one order: uvicorn (when it
serves) stops taking requests first and then hands the signal on; the scheduler lets
runs in progress finish; the realtime service ends its subscriptions and gives its
leases back, so that another worker takes its sources over.

The engine, realtime and API modules are imported when a service starts, not when the
command line loads, so that short commands start fast.

A service process also keeps its native memory down. On a SQLite store each of its
pooled connections (one per run in flight, per realtime writer, ...) keeps its own cache
of prepared statements, and a multi-row ``INSERT`` of a staging table takes about 100 KB
prepared: the service keeps :data:`SQLITE_CACHED_STATEMENTS` per connection instead of
the driver's 128. And a few dozen threads each allocating through glibc's malloc would
get an arena each, where memory freed in the middle (statements, pages, the runs'
batches) stays resident until it is trimmed (:class:`MallocTrim`).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from factorysync import services
from factorysync.cli.base import announce_admin, err, out
from factorysync.store.store import Store

if TYPE_CHECKING:
    from factorysync.engine.scheduler import Scheduler
    from factorysync.forward.publisher import Publisher
    from factorysync.realtime.service import RealtimeService


class _Service:
    """The scheduler and the realtime service of one process.

    On PostgreSQL the realtime service leases its sources under the scheduler's worker
    id, like the scheduler's runs, so that ``run`` and any ``worker`` processes share
    them; ``name`` is the worker's stable name (MQTT shared subscriptions keep its
    session across restarts)."""

    def __init__(
        self,
        store: Store,
        *,
        max_concurrent: int | None = None,
        lease_s: float | None = None,
        name: str | None = None,
    ) -> None:
        from factorysync.engine.scheduler import Scheduler
        from factorysync.realtime.service import RealtimeService

        self.scheduler: Scheduler = Scheduler(
            store, max_concurrent=max_concurrent, lease_s=lease_s, name=name
        )
        self.realtime: RealtimeService = RealtimeService(
            store, owner=self.scheduler.worker_id, member=name, lease_s=self.scheduler.lease_s
        )

    def stop_on_signals(self) -> None:
        """SIGINT and SIGTERM stop the scheduler (after uvicorn's own shutdown, when it
        serves: it handles the signal first, then hands it on to these handlers)."""

        def _stop(signum: int, _frame: Any) -> None:
            err.print(f"stopping ({signal.Signals(signum).name}): finishing runs in progress…")
            self.scheduler.stop()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)


# Prepared statements each SQLite connection of a service keeps (the driver's default is
# 128). With 500 sources over 20 tables the statements of all connections took 65-80 MB
# at 128 and about 30 MB at 16; a statement not kept is prepared again, in microseconds.
SQLITE_CACHED_STATEMENTS = 16


def _few_cached_statements(store: Store) -> None:
    """Make the store's SQLite connections keep :data:`SQLITE_CACHED_STATEMENTS`
    prepared statements each, from the next connection on (the pooled ones are closed)."""
    if store.dialect != "sqlite":
        return
    from sqlalchemy import event

    def _connect(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        cparams.setdefault("cached_statements", SQLITE_CACHED_STATEMENTS)

    event.listen(store.engine, "do_connect", _connect)
    store.engine.dispose()  # the connection that checked the store was opened before


# With 500 polled sources and 10 subscriptions, two arenas instead of one per thread
# held about 10 MB less, and trimming every 10-30 s about 20 MB less once the burst of
# first runs was over (bench/service_memory.py).
class MallocTrim:
    """Caps glibc's malloc arenas and hands freed memory back to the system every
    ``every_s`` seconds, in a daemon thread; does nothing on other C libraries.
    ``MALLOC_ARENA_MAX`` in the environment (read by glibc itself) wins over the cap."""

    ARENAS = 2
    M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)

    def __init__(self, every_s: float = 30.0, libc: Any = None) -> None:
        self.every_s = every_s
        self.libc = libc if libc is not None else _glibc()
        self.trims = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Cap the arenas (before the service's threads allocate) and start trimming."""
        if self.libc is None:
            return
        if "MALLOC_ARENA_MAX" not in os.environ:
            self.libc.mallopt(self.M_ARENA_MAX, self.ARENAS)
        self._thread = threading.Thread(target=self._loop, name="malloc-trim", daemon=True)
        self._thread.start()

    def trim(self) -> None:
        """Give memory malloc holds free back to the system."""
        if self.libc is not None:
            self.libc.malloc_trim(0)
            self.trims += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.trim()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _glibc() -> Any:
    """The process's C library when it is glibc (it has ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):  # musl and others: no malloc_trim
        return None
    return libc


def _log_at_setting(store: Store, *, echo_events: bool) -> None:
    """Log at FACTORYSYNC_LOG_LEVEL; ``echo_events`` also echoes the event log, which
    foreground commands keep quiet (they print their own outcome)."""
    level = getattr(logging, store.settings.log_level.upper(), logging.INFO)
    logging.getLogger("factorysync").setLevel(level)
    if echo_events:
        logging.getLogger("factorysync.infolog").setLevel(level)


def _greet_first_admin(store: Store) -> None:
    """A new store gets its first admin here too, so a service started on it can be
    logged in to."""
    admin = services.create_first_admin(store)
    if admin is not None:
        announce_admin(*admin)


def run(store: Store, host: str | None = None, port: int | None = None) -> None:
    """Run the scheduler and the realtime service, and serve the API and console, until
    SIGINT/SIGTERM.

    The scheduler runs in its own thread next to uvicorn; on a signal, uvicorn stops
    taking requests, then the scheduler lets runs in progress finish.
    """
    from factorysync.api.server import serve as serve_api

    settings = store.settings
    host = host or settings.api_host
    port = settings.api_port if port is None else port
    _log_at_setting(store, echo_events=True)
    trim = MallocTrim()
    trim.start()
    _few_cached_statements(store)
    checkpoints = store.checkpointer()
    if checkpoints is not None:
        checkpoints.start()
    service = _Service(store)
    service.stop_on_signals()
    _greet_first_admin(store)
    thread = threading.Thread(target=service.scheduler.run_forever, name="scheduler")
    thread.start()
    service.realtime.start()
    publisher = _start_forwarding(store)
    out.print(
        f"scheduler running on {store.safe_url}; API and console on http://{host}:{port} "
        "(Ctrl-C stops)"
    )
    try:
        serve_api(store, host, port)
    finally:
        service.realtime.stop()
        service.scheduler.stop()
        thread.join()
        if publisher is not None:
            publisher.stop()  # after the last runs: their changes are in the outbox
        if checkpoints is not None:
            checkpoints.stop()
        trim.stop()


def _start_forwarding(store: Store) -> Publisher | None:
    """The outbox publisher in a thread, when FACTORYSYNC_FORWARD_URL is set."""
    if not store.settings.forward_url:
        return None
    from factorysync.forward.publisher import Publisher

    publisher = Publisher(store)
    publisher.start()
    out.print(
        f"forwarding {store.settings.forward_tables} to {publisher.safe_url}",
        highlight=False,
        markup=False,
    )
    return publisher


def work(
    store: Store,
    *,
    concurrency: int | None = None,
    lease_s: float | None = None,
    name: str | None = None,
) -> None:
    """Run due sources and hold realtime ones together with the other workers of a
    PostgreSQL store, until SIGINT/SIGTERM; no API."""
    _log_at_setting(store, echo_events=False)
    trim = MallocTrim()
    trim.start()
    _few_cached_statements(store)
    service = _Service(store, max_concurrent=concurrency, lease_s=lease_s, name=name)
    scheduler = service.scheduler
    service.stop_on_signals()
    out.print(
        f"worker {scheduler.worker_id} on {store.safe_url}: {scheduler.max_concurrent} at once, "
        f"leases of {scheduler.lease_s:g} s (Ctrl-C stops)"
    )
    from factorysync.alerts import monitor as alert_monitor

    scheduler.beat()  # registered as alive before the realtime sources are shared out
    alert_monitor.acquire(store)  # periodic rules and deliveries, as under `run`
    service.realtime.start()
    try:
        scheduler.run_forever()
    finally:
        service.realtime.stop()
        alert_monitor.release(store)
        trim.stop()


def serve(
    store: Store,
    host: str | None = None,
    port: int | None = None,
    *,
    workers: int = 1,
    access_log: bool = True,
) -> None:
    """Serve the API and console only, until SIGINT/SIGTERM: syncs started over it run
    here; nothing is scheduled."""
    from factorysync.api.server import serve as serve_api

    settings = store.settings
    _greet_first_admin(store)
    # uvicorn shuts down gracefully on SIGTERM and then raises it again: end with 0 then.
    signal.signal(signal.SIGTERM, lambda *_: None)
    serve_api(
        store,
        host or settings.api_host,
        settings.api_port if port is None else port,
        workers=workers,
        access_log=access_log,
    )


def central(
    store: Store,
    host: str | None = None,
    port: int | None = None,
    *,
    serve: bool = True,
    url: str | None = None,
) -> None:
    """Apply every site's forwarded changes to the central store (PostgreSQL) and, with
    ``serve``, serve the API and console on it, until SIGINT/SIGTERM.

    The ingest runs in its own thread next to uvicorn; on a signal uvicorn stops taking
    requests, then the ingest commits and acknowledges the batch in hand and stops.
    Without ``serve`` the ingest runs in the foreground."""
    from factorysync.forward.central import CentralIngest

    settings = store.settings
    _log_at_setting(store, echo_events=True)
    ingest = CentralIngest(store, url=url)

    def _stop(signum: int, _frame: Any) -> None:
        err.print(f"stopping ({signal.Signals(signum).name}): finishing the batch in hand…")
        ingest.stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    where = f"central ingest from {ingest.safe_urls} (stream {ingest.stream}) into {store.safe_url}"
    if not serve:
        out.print(f"{where} (Ctrl-C stops)")
        ingest.run()
        return
    from factorysync.api.server import serve as serve_api

    host = host or settings.api_host
    port = settings.api_port if port is None else port
    _greet_first_admin(store)
    thread = threading.Thread(target=ingest.run, name="central-ingest")
    thread.start()
    out.print(f"{where}; API and console on http://{host}:{port} (Ctrl-C stops)")
    try:
        serve_api(store, host, port)
    finally:
        ingest.stop()
        thread.join()
