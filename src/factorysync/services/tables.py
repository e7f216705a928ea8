"""Target tables as readers see them (the API, the console's data browser).

Reflecting a table takes several catalog queries, so each table is reflected once per
shape: a request reads only the table's column list (one cheap catalog query) and reuses
the reflection while that list is unchanged. A sync that adds or widens a column changes
the list, and the next request reflects again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, inspect, text

from factorysync.engine.mapping import IDENTIFIER
from factorysync.errors import NotFoundError, StoreError
from factorysync.kinds import kind_of_type
from factorysync.store.targets import check_target_name, target_table

# Provenance columns a reader sees; the others are bookkeeping of the writer.
SHOWN_SYSTEM = ("_source_id", "_synced_at")
HIDDEN_SYSTEM = ("_run_id", "_row_hash", "_row_key", "_deleted_at")


@dataclass(frozen=True)
class TableInfo:
    name: str
    table: Table
    columns: tuple[str, ...]  # what a reader sees: mapped columns, then _source_id, _synced_at
    kinds: dict[str, str]  # column → integer, float, decimal, boolean, string, date, ...
    identity: tuple[str, ...]  # columns that tell rows apart (last tie-break of any order)


def _missing(name: str) -> NotFoundError:
    return NotFoundError(f"no target table {name!r} (see the target_table of each mapping)")


def _signature(conn: Connection, name: str) -> tuple[Any, ...]:
    """The table's columns and their types, cheaply; empty when there is no such table."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        quoted = conn.dialect.identifier_preparer.quote(name)
        return tuple(tuple(r) for r in conn.exec_driver_sql(f"PRAGMA main.table_info({quoted})"))
    if dialect == "postgresql":
        rows = conn.execute(
            text(
                "SELECT a.attname, a.atttypid FROM pg_catalog.pg_attribute a "
                "WHERE a.attrelid = to_regclass(:name) AND a.attnum > 0 "
                "AND NOT a.attisdropped ORDER BY a.attnum"
            ),
            {"name": conn.dialect.identifier_preparer.quote(name)},
        )
        return tuple(tuple(r) for r in rows)
    insp = inspect(conn)
    if not insp.has_table(name):
        return ()
    return tuple((c["name"], str(c["type"])) for c in insp.get_columns(name))


def _identity(conn: Connection, name: str, columns: list[str]) -> tuple[str, ...]:
    for index in inspect(conn).get_indexes(name):
        cols = [c for c in index.get("column_names") or [] if c]
        if index.get("unique") and "_source_id" in cols:
            return tuple(cols)
    if "_row_key" in columns:
        return ("_source_id", "_row_key")
    return tuple(c for c in columns if c not in HIDDEN_SYSTEM)


def _signatures(conn: Connection, names: list[str]) -> dict[str, tuple[Any, ...]]:
    """:func:`_signature` of each of ``names`` (PostgreSQL: one query for them all)."""
    if conn.dialect.name != "postgresql" or not names:
        return {name: _signature(conn, name) for name in names}
    quote = conn.dialect.identifier_preparer.quote
    by_oid = {quote(name): name for name in names}
    rows = conn.execute(
        text(
            "SELECT q.name, a.attname, a.atttypid FROM unnest(CAST(:names AS text[])) AS q(name) "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = to_regclass(q.name) "
            "WHERE a.attnum > 0 AND NOT a.attisdropped ORDER BY q.name, a.attnum"
        ),
        {"names": list(by_oid)},
    )
    found: dict[str, list[tuple[Any, ...]]] = {}
    for quoted, column, type_oid in rows:
        found.setdefault(by_oid[quoted], []).append((column, type_oid))
    return {name: tuple(found.get(name, ())) for name in names}


class TableCache:
    """Reflected target tables, keyed by name and column signature (LRU, bounded)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, tuple[Any, ...]], TableInfo] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, conn: Connection, name: str) -> TableInfo:
        """The table, or NotFoundError for unknown, reserved or malformed names."""
        self._check_name(name)
        return self._get(conn, name, _signature(conn, name))

    def get_many(self, conn: Connection, names: list[str]) -> dict[str, TableInfo]:
        """The tables of ``names`` that exist and factorysync wrote (the others are left
        out), with their column lists read in one catalog query on PostgreSQL."""
        wanted = []
        for name in names:
            try:
                self._check_name(name)
            except NotFoundError:
                continue
            wanted.append(name)
        signatures = _signatures(conn, wanted)
        found = {}
        for name in wanted:
            try:
                found[name] = self._get(conn, name, signatures.get(name, ()))
            except NotFoundError:
                continue
        return found

    @staticmethod
    def _check_name(name: str) -> None:
        if not IDENTIFIER.match(name):
            raise _missing(name)
        try:
            check_target_name(name)
        except StoreError:
            raise _missing(name) from None

    def _get(self, conn: Connection, name: str, signature: tuple[Any, ...]) -> TableInfo:
        if not signature:
            raise _missing(name)
        key = (name, signature)
        with self._lock:
            info = self._entries.get(key)
            if info is not None:
                self._entries.move_to_end(key)
                return info
        info = self._reflect(conn, name)
        with self._lock:
            self._entries[key] = info
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return info

    @staticmethod
    def _reflect(conn: Connection, name: str) -> TableInfo:
        try:
            table = target_table(conn, name)
        except StoreError:
            raise _missing(name) from None
        names = [str(c.name) for c in table.columns]
        if "_source_id" not in names or "_deleted_at" not in names:
            raise _missing(name)  # not a table factorysync wrote
        mapped = [c for c in names if c not in (*SHOWN_SYSTEM, *HIDDEN_SYSTEM)]
        columns = (*mapped, *(c for c in SHOWN_SYSTEM if c in names))
        kinds = {c: kind_of_type(table.c[c].type) for c in columns}
        kinds["_source_id"] = "string"
        return TableInfo(name, table, columns, kinds, _identity(conn, name, names))
