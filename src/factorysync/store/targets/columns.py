"""The columns of a target table: what the real table has, and what a run writes.

:class:`TargetColumns` is the bottom layer of
:class:`~factorysync.store.targets.TargetTable`. It holds the state of one table for
one source, which the layers above share (schema evolution, staging, merge), learns
column kinds from rows, and builds the SQLAlchemy tables that compiled SQL is cached on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, MetaData, Table, Text, inspect

from factorysync.config import REGISTRY_TABLES
from factorysync.config.mapping import SYSTEM_COLUMNS
from factorysync.errors import StoreError
from factorysync.kinds import PG_TYPES, infer_kind, kind_of_type, merge_kinds
from factorysync.store.key_order import KeyOrder
from factorysync.store.targets.changes import SchemaChange
from factorysync.store.targets.kinds import KIND_TYPES
from factorysync.store.types import UTCDateTime


def check_target_name(name: str) -> None:
    if name in REGISTRY_TABLES or name.startswith(("alembic", "_fs_", "sqlite_")):
        raise StoreError(f"target table {name!r} is reserved by factorysync")


@lru_cache(maxsize=2048)
def _build_table(
    name: str, key: tuple[str, ...], kinds: tuple[tuple[str, str], ...], temp: bool
) -> Table:
    kind_of = dict(kinds)
    cols = [Column(k, KIND_TYPES[kind_of[k]]) for k in key if k in kind_of]
    if "_row_key" in key:
        cols.append(Column("_row_key", Text()))
    cols += [Column(c, KIND_TYPES[k]) for c, k in kinds if c not in key]
    cols.append(Column("_row_hash", Text()))
    if not temp:
        cols += [
            Column("_source_id", Text()),
            Column("_run_id", BigInteger()),
            Column("_synced_at", UTCDateTime()),
            Column("_deleted_at", UTCDateTime()),
        ]
    return Table(name, MetaData(), *cols)


class TargetColumns:
    """One target table for one source: its key, its columns and the state of a run."""

    def __init__(
        self,
        conn: Connection,
        name: str,
        *,
        source_id: str,
        key: Sequence[str],
        declared: dict[str, str] | None = None,
        contract: str = "evolve",
    ) -> None:
        check_target_name(name)
        self.conn = conn
        self.name = name
        self.source_id = source_id
        self.key = list(key) or ["_row_key"]
        self.declared = dict(declared or {})
        self.contract = contract  # mapping_config.schema_contract: evolve | freeze
        self.run_id: int | None = None  # the run whose rows are written (for the infolog)
        self.schema_changes: list[SchemaChange] = []  # what this run changed
        self.dialect = conn.dialect.name
        # Columns this run stages → kind. Other columns of a shared table (written by
        # other sources, or fields this source no longer has) are set to NULL on the
        # rows this source owns.
        self.kinds: dict[str, str] = {}
        self.existing: dict[str, str] = {}  # columns the real table has now
        # The layers above share this state (a rollback resets parts of several):
        # the staging table and the direct first load (staging.py) ...
        self._stage_name = f"_fs_stage_{re.sub(r'[^a-z0-9_]', '_', name)}"
        self._stage_created: set[str] = set()
        self._stage_indexed = False  # PostgreSQL: deduplicated and ready to merge
        self._staged = 0
        # PostgreSQL: whether the staged keys ascend strictly (then none repeats)
        self.stage_order = KeyOrder()
        self._stage_kinds: dict[str, str] = {}  # staging columns' kinds as created
        self._row_staged = False  # whether any batch of the run took the row path
        self.direct = False
        self.direct_values: dict[str, Any] = {}
        self.direct_rows = 0  # rows a first load wrote straight into the target
        self.arrow_stage: Any = None  # SQLite rows on their way in C (bulk.py)
        self.bulk_staging = False  # a full sync: staged all at once, merged at the end
        self._indexes_pending = False
        # ... the keys a full sync keeps (staging.py) ...
        self._keep_name = f"_fs_keep_{re.sub(r'[^a-z0-9_]', '_', name)}"[:63]
        self._keep_kinds: dict[str, str] = {}  # key column → kind, once the table exists
        # ... and what PostgreSQL was asked once (merge.py, store/bulk.py).
        self._key_index = False  # the unique (_source_id, key) index was seen
        # (table, columns, kinds) → whether binary COPY fits its column types
        self.binary_layouts: dict[tuple[Any, ...], bool] = {}
        self._load_existing()

    def _load_existing(self) -> None:
        """Read the real table's columns (again at merge: another run may have changed it)."""
        self.existing = {}
        insp = inspect(self.conn)
        if not insp.has_table(self.name):
            return
        for col in insp.get_columns(self.name):
            self.existing[col["name"]] = kind_of_type(col["type"])
        for column in self.kinds:
            have = self.existing.get(column)
            if have is not None:
                self.kinds[column] = merge_kinds(have, self.kinds[column]) or have
        missing = [k for k in self.key if k not in self.existing]
        if missing:
            raise StoreError(
                f"target table {self.name!r} exists without key column(s) {missing}; "
                "choose another target_table or drop the old one"
            )

    def frozen_columns(self) -> frozenset[str] | None:
        """Under ``schema_contract: freeze``, the columns the table has now: records with
        other fields are refused by the mappers. None when every field may add a column
        (``evolve``, or no table yet: the first run makes it)."""
        if self.contract != "freeze" or not self.existing:
            return None
        return frozenset(self.existing)

    def plan(self, rows: Iterable[dict[str, Any]]) -> None:
        """Learn column kinds from a batch of rows (before staging it)."""
        seen: dict[str, str | None] = {}
        for row in rows:
            for column, value in row.items():
                if column in SYSTEM_COLUMNS:
                    continue
                seen[column] = merge_kinds(seen.get(column), infer_kind(value))
        for column, kind in seen.items():
            declared = self.declared.get(column)
            if declared is not None:
                kind = declared
            current = self.kinds.get(column) or self.existing.get(column)
            self.kinds[column] = merge_kinds(current, kind) or current or "string"

    def _others(self) -> dict[str, str]:
        """Mapped columns of the real table that this run does not stage."""
        return {
            c: k
            for c, k in self.existing.items()
            if c not in self.kinds and c not in SYSTEM_COLUMNS and c not in self.key
        }

    def _table(self, name: str, *, temp: bool = False, fresh: bool = False) -> Table:
        """The table as SQLAlchemy sees it; shared between runs so compiled SQL is reused."""
        build = _build_table.__wrapped__ if fresh else _build_table
        kinds = dict(self.kinds) if temp else {**self.kinds, **self._others()}
        return build(name, tuple(self.key), tuple(kinds.items()), temp)

    def _ddl_type(self, kind: str) -> str:
        if self.dialect == "postgresql":
            return PG_TYPES[kind]
        return str(KIND_TYPES[kind].compile(dialect=self.conn.dialect))

    def _quote(self, name: str) -> str:
        return self.conn.dialect.identifier_preparer.quote(name)

    def quote(self, name: str) -> str:
        return self._quote(name)

    def reload(self) -> None:
        """Re-read the real table (another run may have added or widened columns)."""
        self._load_existing()
