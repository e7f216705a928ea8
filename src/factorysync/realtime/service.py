"""The realtime service: one long-running worker per realtime source.

``factorysync run`` starts it next to the scheduler. Every ``realtime_rescan_s`` it
compares the registry with what runs: sources of a streaming connection type (one whose
class ``streams``: MQTT, OPC UA, plugins) that are ``active`` (or ``error``) get a
worker; a worker whose source changed is restarted, one whose source was removed,
disabled or put in maintenance is stopped. File sources with ``auto_reload: true`` get a
watcher that syncs them when their file changes (:mod:`factorysync.realtime.filewatch`).

A streaming worker is the connector's ``subscribe(sink, stop)`` in a thread of its own,
its sink feeding the source's micro-batch writer (:mod:`factorysync.realtime.writer`).
The service knows no connection type by name: it asks the registry which ones stream.

A source whose configuration cannot run (bad mapping, missing driver) keeps the reason
in the registry's ``last_error`` and is tried again once its declaration changes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from sqlalchemy import or_, select

from factorysync.config import SourceDecl
from factorysync.connectors.registry import connector_class, open_connection
from factorysync.engine import leases
from factorysync.engine.runner import recover_interrupted
from factorysync.engine.state import pending_resets, take_reset
from factorysync.errors import ConfigError, FactorySyncError
from factorysync.realtime import REALTIME_CONNECTION_TYPES
from factorysync.realtime.health import report_status
from factorysync.realtime.leftovers import LeftoverDrains
from factorysync.realtime.spools import process_spool
from factorysync.realtime.stream import Stream
from factorysync.realtime.target import built_from
from factorysync.realtime.writer import GAP_EVENT, MicroBatchWriter
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.store import Store

log = logging.getLogger("factorysync.realtime")
__all__ = ["GAP_EVENT", "RealtimeService", "build_worker", "shared", "watched"]


class Worker(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def build_worker(
    store: Store, decl: SourceDecl, member: str | None = None, owner: str | None = None
) -> Worker:
    """The worker that runs ``decl``: a stream feeding a writer, or a file watcher.
    ``member``: this process's stable name among workers (streams shared between
    them); ``owner``: the lease holder running the source."""
    primary = decl.primary()
    kind = primary.connection_type
    if kind == "file":
        from factorysync.realtime.filewatch import FileWatcher

        return FileWatcher(store, decl, owner)
    if kind not in REALTIME_CONNECTION_TYPES:
        raise FactorySyncError(f"connection_type {kind!r} is not a realtime type")
    connector = open_connection(primary, decl.source_id, store.settings, worker=member)
    batch_rows = int(primary.connection_config.get("batch_rows", 500))
    batch_ms = float(primary.connection_config.get("batch_ms", 200))
    is_shared = shared(decl)
    writer = MicroBatchWriter(
        store,
        decl.source_id,
        max_rows=batch_rows,
        max_age_s=batch_ms / 1000,
        owner=None if is_shared else owner,
        shared=is_shared,
    )
    return Stream(connector, writer)


def _fingerprint(decl: SourceDecl) -> str:
    """What a worker is built from (a changed site zone restarts it too)."""
    return built_from(decl)


def shared(decl: SourceDecl) -> bool:
    """Whether every worker runs this source (an MQTT shared subscription), unleased."""
    primary = decl.primary()
    kind = primary.connection_type
    if kind is None or kind not in REALTIME_CONNECTION_TYPES:
        return False
    try:
        cls = connector_class(kind)
    except ConfigError:
        return False
    return cls.stream_shared(primary.connection_config)


def watched(decl: SourceDecl) -> bool:
    """Whether the realtime service runs this source (subscription or file watch)."""
    primary = decl.primary()
    if primary.connection_type in REALTIME_CONNECTION_TYPES:
        return True
    return primary.connection_type == "file" and bool(primary.connection_config.get("auto_reload"))


class RealtimeService:
    """Runs the realtime sources of this process.

    With ``owner`` on a PostgreSQL store (``factorysync worker``, or ``run`` beside
    workers) each source is leased (:func:`factorysync.engine.leases.claim_held`): this
    service runs the ones it holds — at most its fair share — renews their leases at every
    scan, and stops them when a lease is lost or cannot be renewed in time (the store is
    gone), so that another worker may take them — unless it was the only live worker at
    its last scan: no other can take them over then, and they go on receiving into the
    local spool until the store is back. MQTT sources with a ``shared_group`` run on every
    worker, unleased. Without ``owner`` (SQLite, one process) it runs them all.

    At each scan it also starts writers for what a previous run of this process left in
    its spool (:mod:`factorysync.realtime.leftovers`).
    """

    def __init__(
        self,
        store: Store,
        *,
        file_watch: bool = True,
        owner: str | None = None,
        member: str | None = None,
        lease_s: float | None = None,
    ) -> None:
        self.store = store
        self.file_watch = file_watch
        self.owner = owner if store.dialect == "postgresql" else None
        self.member = member
        self.lease_s = lease_s or store.settings.lease_s
        self.held: set[str] = set()
        self._renewed = time.monotonic()
        self.workers: dict[str, tuple[str, Worker]] = {}
        self.failed: dict[str, str] = {}  # source_id -> fingerprint that could not start
        self._resetting: dict[str, Worker] = {}  # stopped for a reset, maybe still writing
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._recovered = False
        # Whether this was the only live worker at the last scan that reached the store.
        self._alone = False
        self._kept = False  # said so in the log, during this outage
        process_spool(store.settings, member)  # the spool file is named after the worker
        self.leftovers = LeftoverDrains(store)

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self.reconcile()
        self._thread = threading.Thread(target=self._loop, name="realtime", daemon=True)
        self._thread.start()

    def run_forever(self) -> None:
        self.reconcile()
        self._loop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        for sid in list(self.workers):
            self._stop_worker(sid)
        self.leftovers.stop()
        self._release(self.held)

    def _loop(self) -> None:
        every = self.store.settings.realtime_rescan_s
        if self.owner is not None:
            every = min(every, self.lease_s / 3)
        while not self._stop.wait(every):
            try:
                self.reconcile()
            except Exception as exc:
                log.warning("realtime: registry scan failed (%s); retrying", exc)

    # -- reconcile -------------------------------------------------------------------
    def wanted(self) -> dict[str, SourceDecl]:
        """The sources this service should run now, by source id."""
        types = list(REALTIME_CONNECTION_TYPES) + (["file"] if self.file_watch else [])
        with self.store.connect() as conn:
            ids = (
                conn.execute(
                    select(reg_t.c.source_id).where(
                        reg_t.c.status.in_(("active", "error")),
                        or_(reg_t.c.connection_type.in_(types), reg_t.c.connection_type.is_(None)),
                    )
                )
                .scalars()
                .all()
            )
            found = {}
            for sid in ids:
                try:
                    decl = declaration_of(get_source(conn, sid), self.store.box)
                except FactorySyncError:
                    continue  # removed since, or unreadable: 'source show' tells why
                if watched(decl) and (self.file_watch or decl.primary().connection_type != "file"):
                    found[sid] = decl
        return found

    def _take_reset(self, sid: str, stamp: str) -> bool:
        """Once the reset source's old stream has stopped writing and no message of it waits
        in this process's spool (each would carry a position from before the reset), the
        mark goes and the new stream, starting from scratch, may store positions again.
        False: not yet, the stream starts at a later scan."""
        old = self._resetting.get(sid)
        writer = getattr(old, "writer", None)
        if writer is not None and writer.running():
            return False
        self._resetting.pop(sid, None)
        spool = self.leftovers.spools.get(create=False)
        if spool is not None and spool.depth(sid):
            return False  # written first by a drain, which stores no position meanwhile
        try:
            with self.store.begin() as conn:
                take_reset(conn, sid, stamp)
        except Exception as exc:
            log.warning("realtime: %s was reset; its stream starts later (%s)", sid, exc)
            return False
        return True

    def reconcile(self) -> None:
        if self._stop.is_set():
            return
        if not self._recovered:
            # Windows left 'running' by a process that died are marked interrupted.
            recover_interrupted(self.store)
            self._recovered = True
        try:
            wanted = self.wanted()
            with self.store.connect() as conn:  # sources reset since their stream started
                resets = pending_resets(conn)
        except Exception:
            if self.owner is not None:
                self._leased(None)  # stops the leased sources once the leases run out
            raise
        if self.owner is not None:
            wanted = self._leased(wanted)
        for sid in list(self.workers):
            fingerprint, worker = self.workers[sid]
            decl = wanted.get(sid)
            if getattr(worker, "failure", None):
                # A stream that ended for good (its reason is in last_error): tried
                # again once the declaration changes, as one that could not start.
                self._stop_worker(sid)
                self.failed[sid] = fingerprint
            elif decl is None or _fingerprint(decl) != fingerprint:
                self._stop_worker(sid)
            elif sid in resets:
                # Reset since it started: its position in memory is the one forgotten.
                log.info("realtime: %s was reset: restarting its stream", sid)
                self._stop_worker(sid)
                self._resetting[sid] = worker
        for sid, decl in wanted.items():
            fingerprint = _fingerprint(decl)
            if sid in self.workers or self.failed.get(sid) == fingerprint:
                continue
            if sid in resets and not self._take_reset(sid, resets[sid]):
                continue
            try:
                worker = build_worker(self.store, decl, self.member, self.owner)
                worker.start()
            except Exception as exc:
                message = str(exc) if isinstance(exc, FactorySyncError) else repr(exc)
                log.error("realtime: source %s cannot start: %s", sid, message)
                self.failed[sid] = fingerprint
                report_status(self.store, sid, message)
                continue
            self.failed.pop(sid, None)
            self.workers[sid] = (fingerprint, worker)
            log.info("realtime: %s started", sid)
        try:
            self.leftovers.check()
        except Exception as exc:
            log.warning("realtime: spool leftovers not written yet: %s", exc)

    # -- leases --------------------------------------------------------------------
    def _leased(self, wanted: dict[str, SourceDecl] | None) -> dict[str, SourceDecl]:
        """Of ``wanted``, the sources this service may run now: renew, rebalance, claim.
        ``None``: the registry could not be read (only the lease deadline is checked)."""
        assert self.owner is not None
        exclusive = sorted(sid for sid, decl in (wanted or {}).items() if not shared(decl))
        try:
            if wanted is None:
                raise ConnectionError("the registry could not be read")
            with self.store.begin() as conn:
                kept = leases.renew_held(
                    conn, self.owner, sorted(self.held & set(exclusive)), self.lease_s
                )
                alive = leases.alive_workers(conn, self.lease_s)
                fair = -(-len(exclusive) // alive)
                extra = sorted(kept)[fair:]  # more than its share: leave some to others
                room = fair - len(kept) + len(extra)
                claimed = leases.claim_held(
                    conn, self.owner, [s for s in exclusive if s not in kept], room, self.lease_s
                )
        except Exception as exc:
            # Without the store no lease can be renewed: before they expire, stop the
            # sources, so that the worker that takes them over is the only one running them.
            late = time.monotonic() - self._renewed
            if late >= 0.8 * self.lease_s and self.held and self._alone:
                if not self._kept:
                    self._kept = True
                    log.warning(
                        "realtime: leases not renewed for %.0f s (%s); no other worker is "
                        "alive: keeping %d source(s) running, their messages go to the local "
                        "spool", late, type(exc).__name__, len(self.held),
                    )  # fmt: skip
            elif late >= 0.8 * self.lease_s and self.held:
                log.error(
                    "realtime: leases not renewed for %.0f s (%s): stopping %d source(s)",
                    late, type(exc).__name__, len(self.held),
                )  # fmt: skip
                for sid in self.held & set(self.workers):
                    self._stop_worker(sid)
                self.held = set()
            else:
                log.warning("realtime: could not renew leases (%s)", type(exc).__name__)
        else:
            self._renewed = time.monotonic()
            self._alone, self._kept = alive <= 1, False
            lost = self.held - kept - set(exclusive)
            self._release(lost)  # no longer wanted (removed, disabled)
            for sid in extra:
                if sid in self.workers:
                    self._stop_worker(sid)
            self._release(set(extra))
            self.held = (kept - set(extra)) | claimed
        return {sid: d for sid, d in (wanted or {}).items() if shared(d) or sid in self.held}

    def _release(self, source_ids: set[str]) -> None:
        if self.owner is None or not source_ids:
            return
        try:
            with self.store.begin() as conn:
                for sid in source_ids:
                    leases.release(conn, self.owner, sid)
        except Exception as exc:  # they then simply expire
            log.warning("realtime: could not release leases (%s)", type(exc).__name__)

    def _stop_worker(self, sid: str) -> None:
        _, worker = self.workers.pop(sid)
        try:
            worker.stop()
        except Exception:
            log.exception("realtime: stopping %s failed", sid)
        log.info("realtime: %s stopped", sid)
