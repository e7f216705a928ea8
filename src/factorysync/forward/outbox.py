"""The plant's outbox read back: entries in order, the changes they stand for, and cleanup.

The write paths add the entries (:mod:`factorysync.store.capture`); this module turns
them into batches to publish:

- entries are taken in ``seq`` order, a window at a time; the "rows" entries of one
  (table, source, run) in a window are one :class:`Work` item at the place of the first
  (a realtime window or an incremental run adds one per transaction);
- a "rows" item is read from the target when it is published (``_run_id = run AND
  _synced_at >= since``, in key order, a page at a time): a row changed again by a later
  run carries that run's id and goes with it, so what is sent is always the plant's
  current row;
- a "delete" item sends its captured keys less those present again in the target (a
  key deleted and inserted again goes with the later "rows" item only). So a batch that
  has to be read again after an outage, and lands behind later ones, still leaves the
  central table equal to the plant's.

Each item's entries are deleted in one transaction once every message of it is
acknowledged.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Table, and_, delete, func, inspect, select, tuple_

from factorysync.kinds import kind_of_type
from factorysync.store.capture import table_key
from factorysync.store.schema import forward_outbox as outbox_t
from factorysync.store.store import Store
from factorysync.store.targets import target_table
from factorysync.store.types import utcnow

Rows = list[tuple[Any, ...]]  # values as read, in the order of Shape.kinds (or key)
PAGE_ROWS = 1000  # rows of one message at most
PAGE_BYTES = 512 * 1024  # encoded rows of one message at most (NATS takes 1 MB)
# Kinds of the provenance columns whatever their column type in this store says.
PROVENANCE_KINDS = {
    "_row_hash": "string",
    "_row_key": "string",
    "_run_id": "integer",
    "_synced_at": "datetime",
    "_deleted_at": "datetime",
}


@dataclass
class Work:
    """One thing to publish: a (table, source, run)'s changed rows, or deleted keys."""

    table: str
    source_id: str
    run_id: int
    op: str  # "rows" | "delete"
    seqs: list[int]
    since: datetime | None = None  # "rows": the earliest change among the entries
    keys: list[list[Any]] = field(default_factory=list)  # "delete": as captured

    @property
    def first_seq(self) -> int:
        return self.seqs[0]


@dataclass
class Shape:
    """A target table as messages describe it: key, columns and their kinds."""

    table: Table
    key: list[str]
    kinds: dict[str, str]  # column -> kind, in message order (no _source_id)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"{type(value).__name__} is not a value of a target table")


def to_json(value: Any) -> bytes:
    """``value`` (rows as read) as JSON: datetimes ISO 8601 with their offset (they are
    read in UTC; a naive one is UTC), dates ISO, decimals as strings, bytes base64; the
    rest JSON's own. orjson does it without a Python call per value."""
    return orjson.dumps(
        value,
        default=_json_default,
        option=orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS,
    )


def decode_key(value: Any, kind: str) -> Any:
    """A captured key value (JSON from the database's own JSON functions) as the
    column's Python value, for looking it up again."""
    if value is None:
        return None
    if kind == "datetime" and isinstance(value, str):
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    if kind == "date" and isinstance(value, str):
        return date.fromisoformat(value[:10])
    if kind == "decimal":
        return Decimal(str(value))
    if kind == "boolean":
        return bool(value)
    if kind == "float" and isinstance(value, int | str):
        return float(value)
    return value


class Outbox:
    """The outbox of one store, read and emptied by the publisher."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._shapes: dict[str, Shape] = {}

    # -- entries ---------------------------------------------------------------------
    def take(self, limit: int = 200) -> list[Work]:
        """The oldest ``limit`` entries as work items, in order (see the module's text)."""
        with self.store.connect() as conn:
            rows = conn.execute(select(outbox_t).order_by(outbox_t.c.seq).limit(limit)).all()
        self._shapes.clear()  # columns may have changed since the last window
        found: list[Work] = []
        grouped: dict[tuple[str, str, int], Work] = {}
        for row in rows:
            if row.op == "rows":
                at = (row.table_name, row.source_id, row.run_id)
                work = grouped.get(at)
                if work is None:
                    work = grouped[at] = Work(
                        row.table_name, row.source_id, row.run_id, "rows", [], row.created_at
                    )
                    found.append(work)
                work.seqs.append(row.seq)
                if work.since is None or row.created_at < work.since:
                    work.since = row.created_at
            else:
                captured = row._mapping["keys"]  # (Row.keys is not the column)
                keys = orjson.loads(captured) if captured else []
                found.append(
                    Work(row.table_name, row.source_id, row.run_id, "delete", [row.seq], None, keys)
                )
        return found

    def done(self, works: list[Work]) -> None:
        """Delete the entries of items whose every message was acknowledged."""
        seqs = [s for w in works for s in w.seqs]
        with self.store.begin() as conn:
            for start in range(0, len(seqs), 500):
                conn.execute(delete(outbox_t).where(outbox_t.c.seq.in_(seqs[start : start + 500])))

    def depth(self) -> dict[str, Any]:
        """Entries waiting, and the age of the oldest in seconds (0 when none)."""
        with self.store.connect() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(outbox_t.c.created_at))
            ).one()
        if isinstance(oldest, str):  # SQLite hands an aggregate back as text
            oldest = datetime.fromisoformat(oldest)
        if isinstance(oldest, datetime) and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = max((utcnow() - oldest).total_seconds(), 0.0) if oldest else 0.0
        return {"outbox_depth": int(count), "oldest_entry_age_s": round(age, 3)}

    # -- what an item sends ----------------------------------------------------------
    def shape(self, name: str) -> Shape | None:
        """The table as messages describe it (None when it no longer exists)."""
        found = self._shapes.get(name)
        if found is not None:
            return found
        with self.store.connect() as conn:
            if not inspect(conn).has_table(name):
                return None
            table = target_table(conn, name)
            key = table_key(conn, name)
        kinds = {  # plain str names: SQLAlchemy's are a str subclass
            str(c.name): PROVENANCE_KINDS.get(c.name) or kind_of_type(c.type)
            for c in table.columns
            if c.name != "_source_id"
        }
        found = self._shapes[name] = Shape(table, [str(k) for k in key], kinds)
        return found

    def batches(self, work: Work) -> Iterator[tuple[Shape, Rows]]:
        """The rows of ``work`` as read, a message's worth at a time (none when the
        table is gone or nothing is left to send)."""
        shape = self.shape(work.table)
        if shape is None:
            return
        if work.op == "delete":
            yield from self._deleted(work, shape)
        else:
            yield from self._rows(work, shape)

    def _rows(self, work: Work, shape: Shape) -> Iterator[tuple[Shape, Rows]]:
        t = shape.table
        names = list(shape.kinds)
        key = [t.c[k] for k in shape.key]
        query = (
            select(*(t.c[n] for n in names))
            .where(t.c._source_id == work.source_id, t.c._run_id == work.run_id)
            .order_by(*key)
            .limit(PAGE_ROWS)
        )
        if work.since is not None:
            query = query.where(t.c._synced_at >= work.since)
        at = [names.index(k) for k in shape.key]
        last: tuple[Any, ...] | None = None
        while True:
            page = query if last is None else query.where(tuple_(*key) > tuple_(*last))
            # A short read per page: no snapshot is held while messages are in flight.
            with self.store.connect() as conn:
                rows = conn.execute(page).all()
            if not rows:
                return
            last = tuple(rows[-1][i] for i in at)
            yield from _by_size(shape, [tuple(row) for row in rows])
            if len(rows) < PAGE_ROWS:
                return

    def _deleted(self, work: Work, shape: Shape) -> Iterator[tuple[Shape, Rows]]:
        t = shape.table
        kinds = [shape.kinds[k] for k in shape.key]
        wanted = [
            tuple(decode_key(v, k) for v, k in zip(keys, kinds, strict=True))
            for keys in work.keys
            if isinstance(keys, list) and len(keys) == len(kinds)
        ]
        if not wanted:
            return
        columns = [t.c[k] for k in shape.key]
        with self.store.connect() as conn:
            present = {
                tuple(row)
                for row in conn.execute(
                    select(*columns).where(
                        and_(t.c._source_id == work.source_id, tuple_(*columns).in_(wanted))
                    )
                )
            }
        gone = [keys for keys in wanted if keys not in present]
        if gone:
            yield from _by_size(shape, gone)


def _by_size(shape: Shape, rows: Rows) -> Iterator[tuple[Shape, Rows]]:
    """``rows`` split so that no message's rows pass :data:`PAGE_BYTES` encoded."""
    if len(to_json(rows)) <= PAGE_BYTES:
        yield shape, rows  # the usual case: one look at the whole page
        return
    batch: Rows = []
    size = 0
    for row in rows:
        grows = len(to_json(row))
        if batch and size + grows > PAGE_BYTES:
            yield shape, batch
            batch, size = [], 0
        batch.append(row)
        size += grows
    if batch:
        yield shape, batch
