"""Change capture of forwarded target tables: outbox entries written with the change.

A plant forwards the committed changes of chosen target tables to a central store
(:mod:`factorysync.forward`). What changed is written to ``forward_outbox`` in the
transaction that changes the rows, so an entry exists exactly when its change committed:

- ``rows``: one entry per statement group that inserted or updated rows of (table,
  source, run), with ``created_at`` the time the changed rows carry in ``_synced_at``.
  Every write path stamps the rows it changes with the run's id and that time, so the
  publisher reads them back (``_run_id = run_id AND _synced_at >= created_at``) instead of
  the outbox holding a copy of each row;
- ``delete``: before a hard ``DELETE``, the keys it is about to remove, captured with
  one ``INSERT … SELECT`` on the same condition, one entry per 1,000 keys (a JSON list of
  key-value lists). A soft delete is an ordinary row change.

Which tables are forwarded is an execution option of the store's engine
(:data:`FORWARD_OPTION`, set by :class:`~factorysync.store.store.Store` from the settings),
so a write to a table that is not forwarded costs one dictionary look-up and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    String,
    Table,
    Text,
    cast,
    func,
    insert,
    inspect,
    literal,
    select,
)

from factorysync.errors import StoreError
from factorysync.store.types import UTCDateTime

# The engine execution option holding the :class:`ForwardedTables` (absent: forwarding off).
FORWARD_OPTION = "factorysync_forward"
DELETE_BATCH = 1000  # keys per "delete" entry


class ForwardedTables:
    """The target tables whose changes are captured: named ones, or all (``*``)."""

    __slots__ = ("names",)

    def __init__(self, names: Iterable[str] | None = None) -> None:
        self.names = None if names is None else frozenset(names)

    @classmethod
    def parse(cls, listed: str) -> ForwardedTables:
        names = [n.strip() for n in listed.split(",") if n.strip()]
        return cls(None if not names or "*" in names else names)

    def __contains__(self, table: object) -> bool:
        return self.names is None or table in self.names

    def __repr__(self) -> str:
        return (
            "ForwardedTables(*)" if self.names is None else f"ForwardedTables({sorted(self.names)})"
        )


def forwarded(conn: Connection, table: str) -> bool:
    """Whether changes of ``table`` made on ``conn`` are captured."""
    tables = conn.get_execution_options().get(FORWARD_OPTION)
    return tables is not None and table in tables


def table_key(conn: Connection, table: str) -> list[str]:
    """The key columns of a target table: its unique index on (``_source_id``, key…)."""
    for index in inspect(conn).get_indexes(table):
        columns = [c for c in index["column_names"] if c is not None]
        if index["unique"] and len(columns) > 1 and columns[0] == "_source_id":
            return columns[1:]
    raise StoreError(f"target table {table!r} has no unique (_source_id, key) index")


def forwarded_key(conn: Connection, table: str) -> list[str] | None:
    """The key columns of ``table`` when its changes are captured, else None."""
    return table_key(conn, table) if forwarded(conn, table) else None


def capture_rows(conn: Connection, table: str, source_id: str, run_id: int, now: datetime) -> None:
    """Record that rows of (``table``, ``source_id``) now carry ``run_id`` and ``now``
    (``_synced_at``); in the caller's transaction. Nothing when ``table`` is not forwarded."""
    if not forwarded(conn, table):
        return
    from factorysync.store.schema import forward_outbox  # the store's start stays light

    conn.execute(
        insert(forward_outbox).values(
            table_name=table, source_id=source_id, run_id=run_id, op="rows", created_at=now
        )
    )


def capture_deleted(
    conn: Connection,
    target: Table,
    key: Sequence[str],
    where: Sequence[Any],
    *,
    table: str,
    source_id: str,
    run_id: int | None,
    now: datetime,
) -> None:
    """Before ``DELETE FROM target WHERE <where>``: the keys it will remove, as "delete"
    entries of at most :data:`DELETE_BATCH` keys, set-based (no row passes through Python).
    ``run_id`` None: a delete outside a run (retention, a source removed). Nothing when
    ``table`` is not forwarded."""
    if not forwarded(conn, table):
        return
    from factorysync.store.schema import forward_outbox

    columns = [target.c[k] for k in key]
    numbered = (
        select(
            *columns,
            ((func.row_number().over(order_by=columns) - 1) // DELETE_BATCH).label("_fs_batch"),
        )
        .where(*where)
        .subquery("gone")
    )
    values = [numbered.c[k] for k in key]
    if conn.dialect.name == "postgresql":
        keys: Any = cast(func.json_agg(func.json_build_array(*values)), Text())
    else:
        keys = func.json_group_array(func.json_array(*values))
    picked = (
        select(
            literal(table, String()),
            literal(source_id, String()),
            literal(run_id or 0, BigInteger()),
            literal("delete", String()),
            keys,
            literal(now, UTCDateTime()),
        )
        .select_from(numbered)
        .group_by(numbered.c._fs_batch)
        .order_by(numbered.c._fs_batch)
    )
    conn.execute(
        insert(forward_outbox).from_select(
            ["table_name", "source_id", "run_id", "op", "keys", "created_at"], picked
        )
    )
