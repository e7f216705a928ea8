"""HTTP push: records posted to ``POST /api/ingest/{source_id}``, written like realtime data.

Each push source gets one :class:`~factorysync.realtime.writer.MicroBatchWriter` in this
process, opened on its first request and reopened when the source's declaration changes.
Requests that arrive together share a micro-batch (one transaction); a request is answered
only after the batch holding its records committed, so a 200 means stored. Records the
mapping or the validation rules refuse are quarantined, and the answer says which and why.

While the store is unreachable, a source this process has a writer for goes on taking
records: they are answered 200 once they are in the local spool (``spooled`` in the
answer; mapping and validation happen when they are written to the store), and 503 when
the spool is full. A source without a writer here gets 503 until the store is back.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from factorysync.errors import ConfigError, FactorySyncError
from factorysync.realtime import PUSH_CONNECTION_TYPES
from factorysync.realtime.target import built_from
from factorysync.realtime.writer import Incoming, MicroBatchWriter
from factorysync.store.db import describe_db_error, store_unreachable
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.store import Store

log = logging.getLogger("factorysync.api")
REASONS_SHOWN = 20
RECHECK_S = 2.0  # how often a writer's source declaration is compared with the registry


class IngestRefused(FactorySyncError):
    """The source cannot take pushed records now (``status``: the HTTP status to answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class IngestResult:
    source_id: str
    received: int
    stored: int
    rejected: int
    reasons: list[str]
    run_id: int | None
    spooled: int = 0


class _Writer:
    def __init__(self, writer: MicroBatchWriter, fingerprint: str, max_records: int) -> None:
        self.writer = writer
        self.fingerprint = fingerprint
        self.max_records = max_records
        self.checked = time.monotonic()


class IngestHub:
    """The micro-batch writers of the push sources this process has received records for."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._writers: dict[str, _Writer] = {}
        self._closed = False

    def _source(self, source_id: str) -> Any:
        with self.store.connect() as conn:
            return conn.execute(
                select(reg_t.c.status, reg_t.c.connection_type).where(
                    reg_t.c.source_id == source_id
                )
            ).first()

    def _fingerprint(self, source_id: str) -> str:
        with self.store.connect() as conn:
            decl = declaration_of(get_source(conn, source_id), self.store.box)
        return built_from(decl)

    def _held(self, source_id: str, exc: SQLAlchemyError) -> _Writer:
        """The store cannot be asked about the source: its writer, if one is open here."""
        if not store_unreachable(exc):
            raise exc
        with self._lock:
            current = self._writers.get(source_id)
        if current is None:
            raise IngestRefused(
                503,
                f"the store is unreachable ({describe_db_error(exc)}) and this process has "
                f"received no records of {source_id!r} since it started: send them again later",
            )
        return current

    def writer_for(self, source_id: str) -> _Writer:
        """This source's writer (opened or reopened as needed); IngestRefused when it can't."""
        try:
            row = self._source(source_id)
        except SQLAlchemyError as exc:
            return self._held(source_id, exc)
        if row is None:
            raise IngestRefused(404, f"source {source_id!r} not found")
        if row.connection_type not in PUSH_CONNECTION_TYPES:
            raise IngestRefused(
                409,
                f"source {source_id!r} is a {row.connection_type!r} source; only push "
                "sources (connection_type 'push') accept records over HTTP",
            )
        if row.status in ("inactive", "maintenance"):
            raise IngestRefused(409, f"source {source_id!r} is {row.status}: records refused")
        with self._lock:
            if self._closed:
                raise IngestRefused(503, "the service is shutting down")
            current = self._writers.get(source_id)
            if current is not None:
                if time.monotonic() - current.checked < RECHECK_S:
                    return current
                try:
                    fingerprint = self._fingerprint(source_id)
                except SQLAlchemyError as exc:
                    if not store_unreachable(exc):
                        raise
                    return current
                if fingerprint == current.fingerprint:
                    current.checked = time.monotonic()
                    return current
                del self._writers[source_id]
                current.writer.stop()
            writer = MicroBatchWriter(self.store, source_id)
            try:
                decl = writer.open()
            except ConfigError as exc:
                raise IngestRefused(409, str(exc)) from None
            fingerprint = built_from(decl)
            config = decl.primary().connection_config
            writer.max_rows = int(config.get("batch_rows", 500))
            writer.max_age_s = float(config.get("batch_ms", 50)) / 1000
            writer.start()
            made = _Writer(writer, fingerprint, int(config.get("max_records", 10_000)))
            self._writers[source_id] = made
            return made

    def ingest(self, source_id: str, records: list[Any], timeout: float) -> IngestResult:
        """Write ``records``; returns once they are committed (IngestRefused otherwise)."""
        held = self.writer_for(source_id)
        if len(records) > held.max_records:
            raise IngestRefused(
                413,
                f"{len(records)} records in one request; source {source_id!r} takes at most "
                f"{held.max_records} (connection_config.max_records)",
            )
        if not records:
            return IngestResult(source_id, 0, 0, 0, [], None)
        if held.writer.refusing():
            raise IngestRefused(
                503,
                f"records of {source_id!r} not taken: {held.writer.last_error}; "
                "send them again later",
            )
        done = threading.Event()
        item = Incoming(records, raw={"records": records}, ack=done.set)
        held.writer.put(item)
        if not done.wait(timeout):
            problem = held.writer.last_error or "the store did not confirm the write in time"
            raise IngestRefused(
                503,
                f"records of {source_id!r} not confirmed within {timeout:g} s ({problem}); "
                "send them again: rows are written by key, so a repeat stores nothing twice",
            )
        rejected = len(item.rejections)
        return IngestResult(
            source_id=source_id,
            received=len(records),
            stored=max(len(records) - rejected, 0),
            rejected=rejected,
            reasons=item.rejections[:REASONS_SHOWN],
            run_id=item.run_id,
            spooled=len(records) if item.spooled else 0,
        )

    def recheck(self) -> None:
        """Compare every writer's source with the registry before its next use."""
        with self._lock:
            for held in self._writers.values():
                held.checked = float("-inf")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            writers, self._writers = list(self._writers.values()), {}
        for held in writers:
            try:
                held.writer.stop()
            except Exception as exc:
                log.warning("push writer %s did not stop cleanly: %s", held.writer.source_id, exc)
