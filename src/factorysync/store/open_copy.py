"""A PostgreSQL ``COPY … FROM STDIN`` kept open across the batches of a bulk first load.

Both the columnar writers (:mod:`factorysync.store.bulk`) and the target table (which
ends the COPY before it builds the indexes of a first load) use it; it imports nothing
of either.
"""

from __future__ import annotations

import queue
import threading
import weakref
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError


class OpenCopy:
    """A ``COPY … FROM STDIN`` kept open across the batches of a bulk first load.

    A thread sends each batch while the next one is prepared, and the server parses one
    continuous stream instead of waiting for a round trip per batch; at most ``QUEUED``
    batches wait for the thread (memory stays bounded when the server is the slower).
    The COPY ends before anything else happens on the connection: any other statement,
    savepoint, commit or rollback ends it first (a rollback aborts it), so callers need
    not know it is open. An error of the server surfaces when the COPY ends.
    """

    QUEUED = 1
    _open: ClassVar[weakref.WeakKeyDictionary[Connection, OpenCopy]] = weakref.WeakKeyDictionary()

    def __init__(
        self, conn: Connection, statement: str, *, head: bytes = b"", tail: bytes = b""
    ) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        self.conn, self.statement, self.tail = conn, statement, tail
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue(maxsize=self.QUEUED)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._send, name="copy-writer", daemon=True)
        self.cursor = raw.cursor()
        self._context = self.cursor.copy(statement)
        self.copy = self._context.__enter__()
        # From here the driver holds the connection until the COPY ends: it is known at
        # once, so whatever happens next on the connection (a rollback too) ends it.
        OpenCopy._open[conn] = self
        self._thread.start()
        if head:
            self.write(head)

    @classmethod
    def get(
        cls, conn: Connection, statement: str, *, head: bytes = b"", tail: bytes = b""
    ) -> OpenCopy:
        """The connection's open COPY of ``statement``; another one open is ended first.
        ``head`` is sent when it opens (a binary COPY's signature), ``tail`` when it ends."""
        current = cls._open.get(conn)
        if current is not None and current.statement == statement:
            return current
        cls.end(conn)
        return cls(conn, statement, head=head, tail=tail)

    @classmethod
    def end(cls, conn: Connection, *, abort: bool = False, wrap: bool = True) -> None:
        """End the connection's open COPY, if any; the server's error is raised as
        SQLAlchemy raises a statement's (an IntegrityError for a repeated key), or as the
        driver's own with ``wrap`` False (the hooks below: SQLAlchemy wraps it then)."""
        current = cls._open.pop(conn, None)
        if current is None:
            return
        if not wrap:
            current._close(abort)
            return
        driver_error = conn.dialect.loaded_dbapi.Error
        try:
            current._close(abort)
        except driver_error as exc:
            raise DBAPIError.instance(
                current.statement, None, exc, driver_error, dialect=conn.dialect
            ) from exc

    def write(self, data: bytes | memoryview) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def _send(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.copy.write(data)
                except BaseException as exc:  # reported by write() or when the COPY ends
                    self._error = exc

    def _close(self, abort: bool) -> None:
        if self.tail and not abort and self._error is None:
            self._queue.put(self.tail)
        self._queue.put(None)
        self._thread.join()
        error = self._error
        try:
            if abort or error is not None:
                failure = error or RuntimeError("the transaction was rolled back")
                self._context.__exit__(type(failure), failure, None)
            else:
                self._context.__exit__(None, None, None)
        except Exception:
            if not abort:
                raise
        finally:
            self.cursor.close()
        if error is not None and not abort:
            raise error


def _end_hook(abort: bool) -> Any:
    def hook(conn: Connection, *_args: Any, **_kwargs: Any) -> None:
        OpenCopy.end(conn, abort=abort, wrap=False)

    return hook


# The hooks listen on every engine, registered once when this module loads, so nothing
# is left to fail between starting a COPY and being able to end it (a COPY that could
# not be ended would hold its connection, and the server's DROP DATABASE, forever).
# With no COPY open a hook is one dictionary look-up.
for _name in ("before_cursor_execute", "commit", "savepoint", "rollback", "rollback_savepoint"):
    event.listen(Engine, _name, _end_hook(_name.startswith("rollback")))
