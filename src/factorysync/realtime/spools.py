"""The spools of this host: the one of this process, and what each of them holds.

Files (``FACTORYSYNC_SPOOL_DIR``): one per process, ``spool-<worker name>.sqlite`` or
``spool.sqlite``, held for as long as the process runs by an exclusive lock on the
``.lock`` file beside it. Another process on the same folder takes the next free slot
(``spool-2.sqlite`` …); a restarted process takes the first free one, which is the one it
left behind (unless another process took it meanwhile: that one then writes what it
holds). A file is made only when something has to be spooled.

``source list``, ``status`` and ``/metrics`` read every file of the folder
(:func:`local_spools`) without taking it: SQLite's WAL lets readers in beside the writer.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from factorysync.realtime.spool import SUFFIX, Spool

log = logging.getLogger("factorysync.realtime")
MAX_SLOTS = 64


class Drain(Protocol):
    """A writer moving into the store what a previous run of this process left here."""

    def stop(self, timeout: float = ...) -> None: ...


class ProcessSpool:
    """This process's spool in one folder: the file (opened once it is needed), which
    sources have a writer here, and which are drained of what a previous run left.

    At most one writer of a source uses the spool in a process: a live writer
    (:meth:`attach`) stops a drain of its source before it starts (it then goes on
    draining itself), and a drain starts only for sources without one
    (:meth:`claim_drain`)."""

    def __init__(self, folder: Path, max_bytes: int, name: str | None = None) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.name = name
        self._spool: Spool | None = None
        self._lock_fd: int | None = None
        self._mutex = threading.Lock()
        self._attached: dict[str, int] = {}
        self._drains: dict[str, Drain] = {}

    def get(self, *, create: bool) -> Spool | None:
        """The spool file; without ``create``, only one a previous run left (or None)."""
        with self._mutex:
            if self._spool is None:
                claimed = self._claim(create)
                if claimed is not None:
                    path, self._lock_fd = claimed
                    self._spool = Spool(path, self.max_bytes, on_level=self._report_level)
                    if self._spool.depth():
                        log.info(
                            "spool %s holds %d message(s) from a previous run",
                            path, self._spool.depth(),
                        )  # fmt: skip
            return self._spool

    def _claim(self, create: bool) -> tuple[Path, int] | None:
        """The first slot no running process holds, locked (see the module docstring)."""
        if not create and not self.folder.is_dir():
            return None
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        base = f"spool-{self.name}" if self.name else "spool"
        for slot in range(1, MAX_SLOTS + 1):
            stem = base if slot == 1 else f"{base}-{slot}"
            path = self.folder / f"{stem}{SUFFIX}"
            if not create and not path.exists():
                return None
            fd = os.open(self.folder / f"{stem}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return path, fd
        raise RuntimeError(f"{MAX_SLOTS} processes hold a spool in {self.folder}")

    def _report_level(self, spool: Spool, filling: bool) -> None:
        from factorysync.engine import events

        events.publish_spool(
            events.SpoolLevel(
                str(spool.path), filling, spool.used_bytes, spool.max_bytes, spool.sources()
            )
        )

    # -- writers ------------------------------------------------------------------------
    def attach(self, source_id: str, wait_s: float) -> None:
        """A live writer of ``source_id`` starts: a drain of the source stops first."""
        with self._mutex:
            self._attached[source_id] = self._attached.get(source_id, 0) + 1
            drain = self._drains.pop(source_id, None)
        if drain is not None:
            drain.stop(wait_s)

    def detach(self, source_id: str) -> None:
        with self._mutex:
            left = self._attached.get(source_id, 0) - 1
            if left > 0:
                self._attached[source_id] = left
            else:
                self._attached.pop(source_id, None)

    def claim_drain(self, source_id: str, drain: Drain) -> bool:
        """Register a drain of ``source_id``, unless a writer of it runs here."""
        with self._mutex:
            if source_id in self._attached or source_id in self._drains:
                return False
            self._drains[source_id] = drain
            return True

    def drain_done(self, source_id: str, drain: Drain) -> None:
        with self._mutex:
            if self._drains.get(source_id) is drain:
                del self._drains[source_id]

    def leftovers(self) -> list[str]:
        """Sources with messages here and no writer (live or drain) in this process."""
        spool = self.get(create=False)
        if spool is None:
            return []
        held = spool.sources()
        with self._mutex:
            busy = set(self._attached) | set(self._drains)
        return sorted(sid for sid, n in held.items() if n and sid not in busy)

    def close(self) -> None:
        with self._mutex:
            if self._spool is not None:
                self._spool.close()
                self._spool = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


_process_spools: dict[Path, ProcessSpool] = {}
_process_lock = threading.Lock()


def process_spool(settings: Any, name: str | None = None) -> ProcessSpool:
    """This process's spool in ``settings.spool_dir`` (the first caller names it)."""
    folder = Path(settings.spool_dir).expanduser().resolve()
    with _process_lock:
        found = _process_spools.get(folder)
        if found is None:
            found = _process_spools[folder] = ProcessSpool(
                folder, settings.spool_max_mb * 1024 * 1024, name
            )
        return found


def open_process_spools() -> list[ProcessSpool]:
    with _process_lock:
        return list(_process_spools.values())


def close_process_spools() -> None:
    """Close every spool of this process (tests; a process's spool otherwise lives as
    long as the process)."""
    with _process_lock:
        spools = list(_process_spools.values())
        _process_spools.clear()
    for spool in spools:
        spool.close()


# -- what the spools of this host hold, for status and metrics -----------------------------
@dataclass
class SourceSpooled:
    """A source's messages in the spools of this host."""

    messages: int = 0
    newest: float | None = None  # received_at of the newest (epoch seconds)
    last_minute: int = 0  # received in the last minute


@dataclass
class SpoolFile:
    path: Path
    used_bytes: int
    sources: dict[str, SourceSpooled]


def local_spools(settings: Any, now: float | None = None) -> list[SpoolFile]:
    """Every spool file in ``settings.spool_dir``, whichever process holds it, with what
    it holds by source (read without a lock: SQLite's WAL lets readers in beside the
    writer). A file that cannot be read is left out."""
    folder = Path(settings.spool_dir).expanduser()
    if not folder.is_dir():
        return []
    since = (time.time() if now is None else now) - 60.0
    found = []
    for path in sorted(folder.glob(f"spool*{SUFFIX}")):
        try:
            db = sqlite3.connect(str(path), timeout=5, isolation_level=None)
        except sqlite3.Error:
            continue
        try:
            db.execute("PRAGMA query_only = ON")
            page = int(db.execute("PRAGMA page_size").fetchone()[0])
            pages = int(db.execute("PRAGMA page_count").fetchone()[0])
            free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
            rows = db.execute(
                "SELECT source_id, count(*), max(received_at), "
                "sum(received_at >= ?) FROM messages GROUP BY source_id",
                (since,),
            ).fetchall()
        except sqlite3.Error:
            continue
        finally:
            db.close()
        found.append(
            SpoolFile(
                path,
                (pages - free) * page,
                {
                    str(sid): SourceSpooled(int(n), newest, int(recent or 0))
                    for sid, n, newest, recent in rows
                },
            )
        )
    return found


def spooled_by_source(settings: Any, now: float | None = None) -> dict[str, SourceSpooled]:
    """What the spools of this host hold, by source."""
    total: dict[str, SourceSpooled] = {}
    for spool in local_spools(settings, now):
        for sid, got in spool.sources.items():
            have = total.setdefault(sid, SourceSpooled())
            have.messages += got.messages
            have.last_minute += got.last_minute
            if got.newest is not None and (have.newest is None or got.newest > have.newest):
                have.newest = got.newest
    return total
