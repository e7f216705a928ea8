"""The transactions a run stages its batches in.

A batch is staged in a transaction of its own: the staging table is temporary, so a
commit there changes nothing anyone else sees. A full sync into PostgreSQL stages its
batches in one transaction instead, so that one ``COPY`` stays open across them and is
sent while the next batch is parsed; on a slow source that transaction is committed and
begun again every :data:`STAGE_TXN_S` seconds, so that no transaction (which holds back
the server's clean-up of old rows) and no statement stays open for the whole read.
A first load (``per_batch`` False) runs in its caller's transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from sqlalchemy import Connection

STAGE_TXN_S = 10.0


class StagingTransactions:
    """Transactions around the batches one mapping stages into ``target``."""

    def __init__(self, conn: Connection, target: Any, *, whole: bool, per_batch: bool) -> None:
        self.conn, self.target = conn, target
        self.whole, self.per_batch = whole, per_batch and not whole
        self._txn: Any = None
        self._since = 0.0

    def __enter__(self) -> StagingTransactions:
        if self.whole:
            self._begin()
        return self

    @contextmanager
    def batch(self) -> Iterator[None]:
        if self.per_batch:
            with self.conn.begin():
                yield
            return
        yield
        if self.whole and time.monotonic() - self._since >= STAGE_TXN_S:
            self._commit()
            self._begin()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._txn is None:
            return
        if kind is None:
            self._commit()
        elif self._txn.is_active:
            self._txn.rollback()

    def _begin(self) -> None:
        self._txn = self.conn.begin()
        self._since = time.monotonic()

    def _commit(self) -> None:
        try:
            self.target.flush_bulk()  # the COPY ends (or fails) inside the transaction
        except BaseException:
            self._txn.rollback()
            raise
        self._txn.commit()
