"""The local spool: what realtime and push sources received while the store could not take it.

A message is acknowledged to its sender (an MQTT PUBACK, a push's 200) once it is stored
for good. Normally that is the store's commit (:mod:`factorysync.realtime.writer`); while
the store cannot be reached it is the commit of this spool, and the writer moves the
messages on into the store, in order, once the store is back
(:mod:`factorysync.realtime.backlog`).

The spool is a SQLite file on the local disk: an embedded database whose commits are
atomic and survive a crash by design, rather than a log format of our own. It runs in
WAL mode with ``synchronous=FULL``, so an append has reached the disk before it returns
and a message acknowledged after it survives a SIGKILL or a power cut.

One file per process (:mod:`factorysync.realtime.spools`).

Table ``messages``: ``seq`` (``AUTOINCREMENT``: never reused, even after deletes, so a
sequence number names one message for the file's whole life), ``source_id``, the
message's ``records``, ``error``, ``raw`` (kept only with an error: it is what quarantine
keeps of a message that has no records), the stream ``state`` it carries and
``received_at``. Values are JSON; datetimes, dates, times, decimals and bytes are tagged
so they read back as what they were. ``meta.spool_id`` is a random id the file gets when
it is made: marks in the store name the file by it.

Size: ``FACTORYSYNC_SPOOL_MAX_MB`` bounds the pages the messages take (freed pages are
given back once the spool is empty). An append takes the leading messages that fit and
leaves the rest to the caller. Crossing ``ALERT_LEVEL`` (80 %) is logged and reported to
``on_level`` either way.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as time_of_day
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import orjson

log = logging.getLogger("factorysync.realtime")

ALERT_LEVEL = 0.8  # share of FACTORYSYNC_SPOOL_MAX_MB at which an alert opens
SUFFIX = ".sqlite"
# What a row takes beyond its values (row header, index entry), for the room check.
ROW_OVERHEAD = 48
_TAG = "$fs"
_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id TEXT NOT NULL,
    records BLOB NOT NULL,
    raw BLOB,
    error TEXT,
    state BLOB,
    typed INTEGER NOT NULL DEFAULT 0,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_source ON messages (source_id, seq, received_at);
"""


class Message(Protocol):
    """What the spool keeps of a message (:class:`factorysync.realtime.writer.Incoming`)."""

    records: list[Any]
    raw: Any
    error: str | None
    state: dict[str, Any] | None
    received_at: float


@dataclass
class Spooled:
    """One message read back from the spool."""

    seq: int
    records: list[Any]
    raw: Any
    error: str | None
    state: dict[str, Any] | None
    received_at: float


# -- values --------------------------------------------------------------------------
class _Encoder:
    """orjson's ``default``: tags the values JSON has no type for; notes that it did."""

    def __init__(self) -> None:
        self.typed = False

    def __call__(self, value: Any) -> Any:
        self.typed = True
        if isinstance(value, datetime):
            return {_TAG: "datetime", "v": value.isoformat()}
        if isinstance(value, date):
            return {_TAG: "date", "v": value.isoformat()}
        if isinstance(value, time_of_day):
            return {_TAG: "time", "v": value.isoformat()}
        if isinstance(value, Decimal):
            return {_TAG: "decimal", "v": str(value)}
        if isinstance(value, bytes | bytearray | memoryview):
            return {_TAG: "bytes", "v": base64.b64encode(bytes(value)).decode()}
        if isinstance(value, set | frozenset):
            return list(value)
        return str(value)  # what quarantine would keep of it too


_DECODE: dict[str, Callable[[str], Any]] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time_of_day.fromisoformat,
    "decimal": Decimal,
    "bytes": base64.b64decode,
}


def _dumps(value: Any, encoder: _Encoder) -> bytes:
    return orjson.dumps(value, default=encoder, option=_JSON)


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        kind = value.get(_TAG)
        if kind in _DECODE and len(value) == 2 and isinstance(value.get("v"), str):
            return _DECODE[kind](value["v"])
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def _loads(blob: bytes | None, typed: bool) -> Any:
    if blob is None:
        return None
    value = orjson.loads(blob)
    return _untag(value) if typed else value


# -- one file ----------------------------------------------------------------------------
class Spool:
    """One spool file (see the module docstring). Thread-safe: one connection, one lock."""

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        *,
        on_level: Callable[[Spool, bool], None] | None = None,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.on_level = on_level
        self._lock = threading.Lock()
        fresh = not path.exists() or path.stat().st_size == 0
        # Private from the start: the spool holds source data.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        db = self._db = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30
        )
        if fresh:
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # before the first table
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA journal_size_limit = 67108864")
        db.executescript(_SCHEMA)
        found = db.execute("SELECT value FROM meta WHERE key = 'spool_id'").fetchone()
        if found is None:
            self.spool_id = uuid.uuid4().hex
            db.execute("INSERT INTO meta (key, value) VALUES ('spool_id', ?)", (self.spool_id,))
        else:
            self.spool_id = str(found[0])
        self._page = int(db.execute("PRAGMA page_size").fetchone()[0])
        self._counts: dict[str, int] = {
            str(sid): int(n)
            for sid, n in db.execute("SELECT source_id, count(*) FROM messages GROUP BY source_id")
        }
        self.used_bytes = self._measure()
        self._filling = self.fill >= ALERT_LEVEL

    # -- state -------------------------------------------------------------------------
    @property
    def fill(self) -> float:
        """The share of ``max_bytes`` the messages take."""
        return self.used_bytes / self.max_bytes if self.max_bytes else 1.0

    def depth(self, source_id: str | None = None) -> int:
        """Messages held (of one source, or of all)."""
        with self._lock:
            if source_id is None:
                return sum(self._counts.values())
            return self._counts.get(source_id, 0)

    def sources(self) -> dict[str, int]:
        """Messages held, by source."""
        with self._lock:
            return dict(self._counts)

    def _measure(self) -> int:
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page

    def _level(self) -> None:
        filling = self.fill >= ALERT_LEVEL
        if filling == self._filling:
            return
        self._filling = filling
        if filling:
            log.warning(
                "spool %s is %.0f %% full (%.1f of %.1f MB) while the store is unreachable; "
                "when it is full, messages are no longer acknowledged",
                self.path, self.fill * 100, self.used_bytes / 2**20, self.max_bytes / 2**20,
            )  # fmt: skip
        else:
            log.info("spool %s is below %.0f %% again", self.path, ALERT_LEVEL * 100)
        if self.on_level is not None:
            try:
                self.on_level(self, filling)
            except Exception as exc:  # whoever listens, the spool goes on
                log.warning("spool level report failed: %s", exc)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- messages ----------------------------------------------------------------------
    def append(self, source_id: str, messages: Sequence[Message]) -> int:
        """Keep the leading ``messages`` that fit, in one transaction that has reached
        the disk when this returns; how many were kept (0: the spool is full)."""
        rows = []
        room = self.max_bytes - self.used_bytes
        for m in messages:
            encoder = _Encoder()
            records = _dumps(m.records, encoder)
            # ``raw`` stands for a message without records in quarantine; with records,
            # quarantine keeps the records themselves.
            raw = _dumps(m.raw, encoder) if m.error is not None and m.raw is not None else None
            state = _dumps(m.state, encoder) if m.state is not None else None
            size = len(records) + len(raw or b"") + len(state or b"") + len(m.error or "")
            size += ROW_OVERHEAD
            if size > room:
                break
            room -= size
            rows.append(
                (source_id, records, raw, m.error, state, int(encoder.typed), m.received_at)
            )
        if not rows:
            return 0
        with self._lock:
            with self._transaction() as db:
                db.executemany(
                    "INSERT INTO messages (source_id, records, raw, error, state, typed, "
                    "received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            self._counts[source_id] = self._counts.get(source_id, 0) + len(rows)
            self.used_bytes = self._measure()
        self._level()
        return len(rows)

    def read(self, source_id: str, limit: int) -> list[Spooled]:
        """The oldest ``limit`` messages of a source, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, records, raw, error, state, typed, received_at FROM messages "
                "WHERE source_id = ? ORDER BY seq LIMIT ?",
                (source_id, limit),
            ).fetchall()
        return [
            Spooled(
                seq=seq,
                records=_loads(records, typed),
                raw=_loads(raw, typed),
                error=error,
                state=_loads(state, typed),
                received_at=received_at,
            )
            for seq, records, raw, error, state, typed, received_at in rows
        ]

    def remove_through(self, source_id: str, seq: int) -> int:
        """Remove a source's messages up to ``seq`` (written to the store); how many."""
        with self._lock:
            with self._transaction() as db:
                removed = db.execute(
                    "DELETE FROM messages WHERE source_id = ? AND seq <= ?", (source_id, seq)
                ).rowcount
            left = self._counts.get(source_id, 0) - removed
            if left > 0:
                self._counts[source_id] = left
            else:
                self._counts.pop(source_id, None)
            if not self._counts:
                self._db.execute("PRAGMA incremental_vacuum")  # the disk space back
            self.used_bytes = self._measure()
        self._level()
        return int(removed)

    def latest_state(self, source_id: str) -> dict[str, Any] | None:
        """The stream state of a source's newest held message that carries one."""
        with self._lock:
            row = self._db.execute(
                "SELECT state, typed FROM messages WHERE source_id = ? AND state IS NOT NULL "
                "ORDER BY seq DESC LIMIT 1",
                (source_id,),
            ).fetchone()
        if row is None:
            return None
        found = _loads(row[0], bool(row[1]))
        return found if isinstance(found, dict) else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
