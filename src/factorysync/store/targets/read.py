"""Target tables read back: typed rows (JSON decoded, timestamps in UTC) and row counts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, Text, func, inspect, select

from factorysync.errors import StoreError
from factorysync.kinds import kind_of_type
from factorysync.store.targets.columns import check_target_name
from factorysync.store.targets.kinds import KIND_TYPES


def count_rows(conn: Connection, table: str, source_id: str | None = None) -> int:
    t = Table(table, MetaData(), Column("_source_id", Text()), Column("_deleted_at", Text()))
    stmt = select(func.count()).select_from(t).where(t.c._deleted_at.is_(None))
    if source_id is not None:
        stmt = stmt.where(t.c._source_id == source_id)
    return int(conn.execute(stmt).scalar_one())


def target_table(conn: Connection, name: str) -> Table:
    """The target table as a typed Table (JSON decoded, timestamps in UTC on every store)."""
    check_target_name(name)
    insp = inspect(conn)
    if not insp.has_table(name):
        raise StoreError(f"target table {name!r} does not exist (has its source synced yet?)")
    cols = []
    for col in insp.get_columns(name):
        kind = kind_of_type(col["type"])
        if col["name"] in ("_row_hash", "_row_key", "_source_id"):
            kind = "string"
        cols.append(Column(col["name"], KIND_TYPES[kind]))
    return Table(name, MetaData(), *cols)


def read_rows(
    conn: Connection,
    name: str,
    *,
    source_id: str | None = None,
    include_deleted: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    table = target_table(conn, name)
    stmt = select(table)
    if source_id is not None:
        stmt = stmt.where(table.c._source_id == source_id)
    if not include_deleted:
        stmt = stmt.where(table.c._deleted_at.is_(None))
    if limit is not None:
        stmt = stmt.limit(limit)
    return [{str(k): v for k, v in r.items()} for r in conn.execute(stmt).mappings()]
