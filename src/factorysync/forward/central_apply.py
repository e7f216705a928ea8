"""Fetched messages applied to the central store: one transaction per fetched batch.

Messages are applied in stream order. The transaction that applies them also records,
per (site, table) in ``central_sites``, the last applied stream sequence: the ingest
starts again after the highest one, so a message is applied once even when JetStream
delivers it again (an acknowledgement lost, a crash between commit and ack), and a
message delivered again is recognised by its sequence and skipped. Applying a message
twice would change nothing anyway (rows are upserted only where a value differs).

A message that cannot be applied — not the forwarding format, a value that does not fit
its column, a table whose key differs — is rolled back alone (a savepoint), counted as
rejected with the reason in ``central_sites.last_error`` and a ``forward.rejected``
event, and passed over: one bad message never holds up its site. A store that cannot be
reached fails the whole batch, which is delivered again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError

from factorysync.errors import StoreError
from factorysync.forward.central_message import BadMessage, parse, subject_parts
from factorysync.forward.central_table import CentralTable
from factorysync.observability import infolog
from factorysync.security.redaction import redact_known
from factorysync.store.db import describe_db_error, store_unreachable
from factorysync.store.schema import central_sites as sites_t
from factorysync.store.schema import sites as registry_sites_t
from factorysync.store.store import Store
from factorysync.store.types import utcnow

REJECTED_EVENT = "forward.rejected"


@dataclass
class Delivered:
    """A message as JetStream delivered it: its stream sequence, subject and payload."""

    seq: int
    subject: str
    data: bytes


@dataclass
class _Tally:
    last_seq: int = 0
    last_published_at: datetime | None = None
    rows: int = 0
    messages: int = 0
    rejected: int = 0
    last_error: str | None = None


@dataclass
class BatchResult:
    """What a batch did: the highest sequence it handled, messages applied, skipped
    (applied before) and rejected, and rows written (inserted, changed or deleted)."""

    position: int
    applied: int = 0
    skipped: int = 0
    rejected: int = 0
    changed: int = 0
    errors: list[str] = field(default_factory=list)


def applied_position(conn: Connection) -> int:
    """The highest stream sequence applied (0 before the first message)."""
    found = conn.execute(select(func.max(sites_t.c.last_seq))).scalar()
    return int(found or 0)


def forget_positions_after(conn: Connection, last_seq: int) -> int:
    """Forget positions beyond ``last_seq`` (the stream was made again and numbers its
    messages from 1): those (site, table) rows start over. Returns the rows changed."""
    return int(
        conn.execute(
            update(sites_t).where(sites_t.c.last_seq > last_seq).values(last_seq=None)
        ).rowcount
    )


APPLY_LOCK = "factorysync.central.apply"


class PositionMoved(StoreError):
    """The store's stream position moved past the one this ingest read: another ingest
    applied the stream meanwhile (the one-ingest lock was lost with its connection)."""


def apply_batch(store: Store, delivered: list[Delivered], after: int) -> BatchResult:
    """Apply ``delivered`` (in stream order) in one transaction, skipping sequences at
    or below ``after`` (applied before).

    The batch applies only from the position ``after`` was read from: one batch at a time
    (a transaction lock), and PositionMoved when the store's position is beyond it. So
    even two ingests at once (the session lock of :mod:`~factorysync.forward.central`
    lost with its connection) never apply a message twice or an older one over a newer
    one; the refused one reads its position from the store again."""
    result = BatchResult(position=after)
    tallies: dict[tuple[str, str], _Tally] = {}
    with store.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": APPLY_LOCK})
        current = applied_position(conn)
        if current > after:
            raise PositionMoved(
                f"the store has applied the stream up to message {current}, past this "
                f"ingest's {after}: another central ingest applies it too; reading again "
                "from the store's position"
            )
        tables: dict[tuple[str, tuple[str, ...]], CentralTable] = {}
        for item in delivered:
            result.position = max(result.position, item.seq)
            if item.seq <= after:
                result.skipped += 1
                continue
            try:
                place = subject_parts(item.subject)
            except BadMessage:
                place = ("", "")
            tally = tallies.setdefault(place, _Tally())
            tally.last_seq = max(tally.last_seq, item.seq)
            try:
                message = parse(item.subject, item.data)
                at = (message.table, tuple(message.key))
                with conn.begin_nested():
                    target = tables.get(at) or CentralTable(conn, message.table, message.key)
                    tables[at] = target
                    result.changed += target.apply(message)
            except (BadMessage, StoreError, SQLAlchemyError) as exc:
                if isinstance(exc, SQLAlchemyError) and store_unreachable(exc):
                    raise
                tables.clear()  # a rolled-back change of a table is not in the table
                reason = _reason(exc)
                _reject(conn, item, place, reason)
                error = f"message {item.seq}: {reason}"
                tally.rejected += 1
                tally.last_error = error
                result.rejected += 1
                result.errors.append(error)
                continue
            result.applied += 1
            tally.messages += 1
            tally.rows += len(message.rows)
            if message.published_at is not None:
                tally.last_published_at = message.published_at
        if tallies:
            _save(conn, tallies)
    return result


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SQLAlchemyError):
        return redact_known(describe_db_error(exc))[:500]
    return redact_known(str(exc))[:500]


def _reject(conn: Connection, item: Delivered, place: tuple[str, str], reason: str) -> None:
    site, table = place
    infolog.record(
        conn,
        "warning",
        REJECTED_EVENT,
        f"forwarded message {item.seq} of site {site or '?'} for table {table or '?'} "
        f"not applied: {reason}",
        details={"site": site, "table": table, "stream_seq": item.seq, "reason": reason},
    )


def _save(conn: Connection, tallies: dict[tuple[str, str], _Tally]) -> None:
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "site": site,
            "table_name": table,
            "last_seq": t.last_seq,
            "last_published_at": t.last_published_at,
            "rows_applied": t.rows,
            "messages_applied": t.messages,
            "messages_rejected": t.rejected,
            "last_error": t.last_error,
            "pending_messages": 0,
            "created_at": now,
            "updated_at": now,
        }
        for (site, table), t in sorted(tallies.items())
    ]
    # The sites seen become sites of the central store too (/api/sites, ?site= filters).
    names = sorted({site for site, _ in tallies if site})
    if names:
        conn.execute(
            pg_insert(registry_sites_t)
            .values([{"name": name} for name in names])
            .on_conflict_do_nothing(index_elements=[registry_sites_t.c.name])
        )
    stmt = pg_insert(sites_t).values(rows)
    new, old = stmt.excluded, sites_t.c
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[old.site, old.table_name],
            set_={
                "last_seq": func.greatest(old.last_seq, new.last_seq),
                "last_published_at": func.coalesce(new.last_published_at, old.last_published_at),
                "rows_applied": old.rows_applied + new.rows_applied,
                "messages_applied": old.messages_applied + new.messages_applied,
                "messages_rejected": old.messages_rejected + new.messages_rejected,
                "last_error": func.coalesce(new.last_error, old.last_error),
                "updated_at": new.updated_at,
            },
        )
    )
