"""A SQLite first load's rows, written from Arrow in C: a private file, then one INSERT.

Python's ``sqlite3`` binds values one Python object at a time; building those objects
and binding them is most of a large CSV's load into a SQLite store. The ADBC SQLite
driver writes Arrow record batches in C instead, but it brings its own copy of the
SQLite library, and two copies of SQLite in one process must never open the same file
(each releases the other's POSIX locks on it). So the batches go to a private file of
their own — opened by the ADBC driver only, in a thread of its own, while the next
batches are parsed — and once they are all in, the driver closes the file and the run's
connection attaches it and copies its rows into the target with one
``INSERT … SELECT`` inside the run's transaction (all or nothing, as before).

The file sits beside the store (``<store>.stage-<pid>-<token>``, mode 0600). Its name is
deleted once its rows are copied; the connection detaches it when it goes back to the
pool (:func:`release`). A file left by a process that died is removed when a store opens
(:func:`sweep`). Without the driver, for an in-memory store, or where the file cannot be
made, the caller keeps to ``executemany`` (:func:`available`).
"""

from __future__ import annotations

import os
import queue
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factorysync.store.key_order import KeyOrder
from factorysync.store.processes import pid_alive

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy import Connection

# Batches waiting for the writer thread: enough to keep it busy while the next ones
# are parsed, few enough that memory stays flat.
QUEUE_BATCHES = 1
# A connection attaches at most this many stage files at once (SQLite allows 10
# attached databases); a further first load in the same transaction binds its rows.
MAX_ATTACHED = 6
_ATTACHED = "fs_arrow_stages"  # connection info: [(alias, path)] to detach on check-in
_END = object()


def available(database: str | None) -> bool:
    """Whether a store file at ``database`` can take Arrow stages (the driver is here)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return False
    try:
        import adbc_driver_sqlite.dbapi  # noqa: F401
    except ImportError:
        return False
    return True


class ArrowStage:
    """Record batches into a private SQLite file by a writer thread; :meth:`copy_into`
    then moves them into a table of the store through the run's connection."""

    def __init__(
        self, database: str, table: str, quote: Callable[[str], str], constants: dict[str, str]
    ) -> None:
        """Rows for ``table`` (quoted) of the store file ``database``; each target column
        is quoted by ``quote``, and ``constants`` (column: SQL literal) go in every row."""
        from factorysync.store.db import create_private_file

        self.table, self.quote, self.constants = table, quote, constants
        self.path = Path(f"{database}.stage-{os.getpid()}-{secrets.token_hex(6)}")
        create_private_file(self.path)
        # One table per run of batches with the same columns and types: a later batch
        # may add a column, or widen one (integers, then decimals).
        self.segments: list[tuple[str, list[str]]] = []
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_BATCHES)
        self._schema: pa.Schema | None = None
        self._names: list[str] = []
        self._after: Any = _END
        self.order = KeyOrder()  # whether every key so far is greater than the one before
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write, name="arrow-stage", daemon=True)
        self._thread.start()

    def put(self, names: list[str], columns: list[pa.Array], keys: pa.Array | None = None) -> None:
        """Queue a batch's ``columns`` (named ``names`` in the target); ``keys`` are its
        values of the target's key, whose order :attr:`ascending` follows."""
        import pyarrow as pa

        self.order.follow(keys)
        # Positional names in the file: a target column's name needs no quoting there.
        schema = pa.schema([pa.field(f"c{i}", c.type) for i, c in enumerate(columns)])
        if self._schema is None or not schema.equals(self._schema) or names != self._names:
            self._schema, self._names = schema, list(names)
            table = f"s{len(self.segments)}"
            self.segments.append((table, list(names)))
            self._send((table, schema))
        self._send(pa.RecordBatch.from_arrays(columns, schema=schema))

    @property
    def ascending(self) -> bool:
        """Whether the keys put so far ascend strictly (none repeated)."""
        return self.order.ascending

    def copy_into(self, conn: Connection) -> int:
        """Close the file, attach it to ``conn`` (the run's connection, in its transaction)
        and copy its rows into the table (``INSERT OR REPLACE``). Returns the rows."""
        self.close()
        quote, constants = self.quote, self.constants
        attached: list[tuple[str, str]] = conn.info.setdefault(_ATTACHED, [])
        alias = f"fs_stage{len(attached)}"
        attached.append((alias, str(self.path)))
        conn.exec_driver_sql(f"ATTACH DATABASE ? AS {alias}", (str(self.path),))
        rows = 0
        for segment, names in self.segments:
            into = ", ".join([*(quote(n) for n in names), *(quote(n) for n in constants)])
            values = ", ".join([*(f"c{i}" for i in range(len(names))), *constants.values()])
            rows += conn.exec_driver_sql(
                f"INSERT OR REPLACE INTO {self.table} ({into}) "
                f"SELECT {values} FROM {alias}.{segment}"
            ).rowcount
        # Read for good: the name goes now (the open file goes when it is detached), so
        # nothing is left even if the connection is closed without a check-in.
        _remove(str(self.path))
        return rows

    def close(self) -> None:
        """Let the writer finish; raises what it failed with."""
        if self._thread.is_alive():
            self._send(_END)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def discard(self) -> None:
        """Stop the writer and delete the file (a run that did not use it)."""
        with suppress(Exception):
            self.close()
        _remove(str(self.path))

    def _send(self, item: Any) -> None:
        while True:
            if self._error is not None or not self._thread.is_alive():
                if self._error is not None:
                    raise self._error
                raise RuntimeError("the Arrow stage's writer has stopped")
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _write(self) -> None:
        try:
            import adbc_driver_sqlite.dbapi as adbc
            import pyarrow as pa

            conn = adbc.connect(str(self.path), autocommit=True)
            try:
                cur = conn.cursor()
                # A scratch file: nothing to recover if the process dies.
                for pragma in ("journal_mode=OFF", "synchronous=OFF"):
                    cur.execute(f"PRAGMA {pragma}")
                    cur.fetchall()
                item = self._queue.get()
                while item is not _END:
                    table, schema = item
                    reader = pa.RecordBatchReader.from_batches(schema, self._segment())
                    cur.adbc_ingest(table, reader, mode="create")
                    item = self._after
                cur.close()
            finally:
                conn.close()
        except BaseException as exc:  # reported to the run by put() / close()
            self._error = exc
            _drain(self._queue)

    def _segment(self) -> Iterator[pa.RecordBatch]:
        """The queued batches up to the next segment or the end (kept in ``_after``)."""
        import pyarrow as pa

        while isinstance(item := self._queue.get(), pa.RecordBatch):
            yield item
        self._after = item


def attachable(conn: Connection) -> bool:
    """Whether ``conn`` can attach one more stage file."""
    return len(conn.info.get(_ATTACHED, ())) < MAX_ATTACHED


def release(dbapi_conn: Any, record: Any) -> None:
    """Detach a connection's stage files and delete them: the pool's check-in, when
    the connection's transaction has ended. One that cannot be detached keeps its name
    taken (its file is deleted all the same)."""
    info = getattr(record, "info", None)
    if not info or not info.get(_ATTACHED):
        return
    kept = []
    for alias, path in info.pop(_ATTACHED):
        try:
            dbapi_conn.execute(f"DETACH DATABASE {alias}")
        except Exception:
            kept.append((alias, ""))
        if path:
            _remove(path)
    if kept:
        info[_ATTACHED] = kept


def sweep(database: str) -> None:
    """Delete the stage files next to ``database`` left by processes no longer running."""
    store = Path(database)
    for path in store.parent.glob(f"{store.name}.stage-*-*"):
        pid = path.name[len(store.name) + len(".stage-") :].split("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            _remove(str(path))


def _drain(q: queue.Queue[Any]) -> None:
    with suppress(queue.Empty):
        while True:
            q.get_nowait()


def _remove(path: str) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        with suppress(FileNotFoundError):
            os.remove(path + suffix)
