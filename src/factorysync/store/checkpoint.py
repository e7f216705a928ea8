"""The running service's write-ahead-log checkpoints, in a thread of their own (SQLite).

SQLite copies the write-ahead log into the database file when a commit finds the log
past ``wal_autocheckpoint`` pages, in the committing connection: a first load of
1,000,000 rows then waits 0.2-0.3 s at its commit for pages it has already written
once. In the service (``factorysync run``) a :class:`Checkpointer` does that copy every
``every_s`` seconds instead, in the background: runs end when their rows are committed,
and readers see them at once, as before. The copy is SQLite's own passive checkpoint,
which never blocks a reader or a writer.

A commit still checkpoints by itself once the log passes :data:`DEFERRED_BYTES` (the
thread stopped, or a long reader holding the log): the log cannot grow without bound.
One-off commands keep SQLite's default, and their last connection checkpoints when it
closes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

log = logging.getLogger(__name__)

DEFERRED_BYTES = 512 * 1024 * 1024  # a commit checkpoints itself past this much log
EVERY_S = 1.0


class Checkpointer:
    """Checkpoints the SQLite store ``path`` every ``every_s`` seconds in a daemon thread,
    once :meth:`start` has made ``engine``'s connections leave it the log."""

    def __init__(self, engine: Engine, path: Path, every_s: float = EVERY_S) -> None:
        self.engine, self.path, self.every_s = engine, path, every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        event.listen(self.engine, "connect", _defer_checkpoints)
        self.engine.dispose()  # pooled connections were opened with the default
        self._thread = threading.Thread(target=self._loop, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; the connections keep deferring (the service is ending)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        conn: sqlite3.Connection | None = None
        while not self._stop.wait(self.every_s):
            try:
                if conn is None:
                    conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
                    conn.execute("PRAGMA busy_timeout=5000")
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # the next pass tries again; commits still can
                log.warning("write-ahead log checkpoint of %s: %s", self.path.name, exc)
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()


def _defer_checkpoints(dbapi_conn: Any, _record: Any) -> None:
    """A connection's commits leave the log to the thread up to :data:`DEFERRED_BYTES`."""
    cur = dbapi_conn.cursor()
    page = int(cur.execute("PRAGMA page_size").fetchone()[0])
    cur.execute(f"PRAGMA wal_autocheckpoint={max(1000, DEFERRED_BYTES // page)}")
    cur.close()
