"""What a previous run of this process left in its spool, written for sources no writer of
this process takes up: push sources nothing is posted to yet, sources another worker holds
now, sources stopped since.

A source whose live writer starts here writes its backlog itself
(:mod:`factorysync.realtime.backlog`); for the others the realtime service starts a
*leftover* writer at each registry scan, which writes the source's spooled messages in
order and stops once none is left. A live writer of the source that starts meanwhile
takes over from it (:meth:`factorysync.realtime.spool.ProcessSpool.attach`). A source that
no longer exists, or cannot be written (no active mapping), keeps its messages in the
spool; the log says why, and ``source list`` shows them as its spool depth.
"""

from __future__ import annotations

import logging
import time

from factorysync.realtime.spools import process_spool
from factorysync.realtime.writer import MicroBatchWriter
from factorysync.store.store import Store

log = logging.getLogger("factorysync.realtime")
REFUSED_RETRY_S = 60.0  # a source whose writer could not open is tried again after this


class LeftoverDrains:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.spools = process_spool(store.settings)
        self.running: dict[str, MicroBatchWriter] = {}
        self._refused: dict[str, float] = {}  # source_id -> when to try again

    def check(self) -> None:
        """Start a leftover writer for each source that needs one (at a registry scan)."""
        for sid, writer in list(self.running.items()):
            if not writer.running():
                del self.running[sid]
        now = time.monotonic()
        for sid in self.spools.leftovers():
            if sid in self.running or self._refused.get(sid, 0.0) > now:
                continue
            writer = MicroBatchWriter(self.store, sid, shared=True, leftover=True)
            try:
                writer.open()
            except Exception as exc:
                log.warning("%s: messages in the spool cannot be written now: %s", sid, exc)
                self._refused[sid] = now + REFUSED_RETRY_S
                continue
            if not writer.backlog.waiting:  # the store had them all already
                writer.stop()
                continue
            log.info(
                "%s: writing %d message(s) a previous run left in the spool",
                sid, writer.backlog.depth(),
            )  # fmt: skip
            writer.start()
            self.running[sid] = writer

    def stop(self) -> None:
        running, self.running = list(self.running.values()), {}
        for writer in running:
            writer.stop()
