"""Target tables: created and evolved from mapped rows, written through a staging table.

Every target table carries provenance columns next to the mapped ones:

    _source_id   the source that owns the row (several sources may share a table)
    _run_id      the run that last inserted or changed the row
    _synced_at   when that happened
    _row_hash    hash of the mapped values, so an unchanged row is never counted as updated
    _row_key     synthetic identity when the mapping has no primary key
    _deleted_at  soft-delete marker (``delete_mode: soft``)

A run first writes its rows into a private staging table (a temporary table of its own
connection), then merges them into the target in one transaction with set-based SQL
that also yields the exact inserted/updated/deleted counts. The keys of records a full
sync read but rejected go to a second temporary table (``keep``): its delete phase
leaves their rows alone. Until that transaction
commits, the target is untouched: a read that fails half-way changes nothing. On
PostgreSQL a merge with nothing to delete is one ``INSERT … ON CONFLICT`` from staging,
and a small batch of the realtime writer skips staging altogether (``upsert``); both
yield the same counts.

Column types are inferred from values when the mapping does not fix them, and widened
(integer → float → string, anything → json) when later values do not fit. A column the
source adds or stops sending, or one that is widened, is a schema change: each is written
to the infolog as a ``schema.changed`` event in the transaction that makes it (the alert
rules turn the run's events into a ``schema_change`` alert). Under the mapping's
``schema_contract: freeze`` a run whose values would widen a column fails instead
(:class:`SchemaContractError`). SQLite cannot change a column's type in place: the table
is rebuilt with the wider declared type, so its values keep the type they were written
with (text stays text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    Float,
    Index,
    MetaData,
    Numeric,
    Table,
    Text,
    and_,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeEngine

from factorysync.engine.mapping import SYSTEM_COLUMNS
from factorysync.errors import MappingError, StoreError
from factorysync.observability import infolog
from factorysync.store.schema import REGISTRY_TABLES
from factorysync.store.types import JSONType, UTCDateTime

KIND_TYPES: dict[str, TypeEngine[Any]] = {
    "integer": BigInteger(),
    "float": Float(precision=53),
    "decimal": Numeric(),
    "boolean": Boolean(),
    "string": Text(),
    "date": Date(),
    "datetime": UTCDateTime(),
    "json": JSONType,
}
PG_TYPES = {
    "integer": "BIGINT",
    "float": "DOUBLE PRECISION",
    "decimal": "NUMERIC",
    "boolean": "BOOLEAN",
    "string": "TEXT",
    "date": "DATE",
    "datetime": "TIMESTAMP WITH TIME ZONE",
    "json": "JSONB",
}
ISO_DATE = _ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_DATETIME = _ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$"
)
_NUMERIC = ("integer", "decimal", "float")
MERGE_WORK_MEM = "256MB"  # PostgreSQL work_mem for the merge's join (server memory)


def infer_kind(value: Any) -> str | None:
    """The column kind a single value suggests (None for null: no information)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, str):
        # Only timestamps with an explicit offset: a naive one's zone would be a guess.
        if _ISO_DATETIME.match(value):
            return "datetime"
        if _ISO_DATE.match(value):
            return "date"
        return "string"
    return "json"


def merge_kinds(a: str | None, b: str | None) -> str | None:
    """The narrowest kind that holds values of both kinds."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    if "json" in (a, b):
        return "json"
    if a in _NUMERIC and b in _NUMERIC:
        return "float" if "float" in (a, b) else "decimal"
    if {a, b} == {"date", "datetime"}:
        return "string"
    return "string"


def kind_of_type_name(name: str) -> str:
    """The kind of a column declared with this SQL type name (as SQLite reports it)."""
    upper = name.upper()
    if "JSON" in upper:
        return "json"
    if "BOOL" in upper:
        return "boolean"
    if "INT" in upper:
        return "integer"
    if any(t in upper for t in ("FLOAT", "DOUBLE", "REAL")):
        return "float"
    if "NUMERIC" in upper or "DECIMAL" in upper:
        return "decimal"
    if "TIMESTAMP" in upper or "DATETIME" in upper:
        return "datetime"
    if "DATE" in upper:
        return "date"
    return "string"


def _sqlite_cast(column: str, old: str, new: str) -> str:
    """SQL giving an SQLite column's values as a column of kind ``new`` holds them (the
    conversion PostgreSQL's ``ALTER … TYPE … USING`` does)."""
    as_words = f"CASE WHEN {column} IS NULL THEN NULL WHEN {column} THEN 'true' ELSE 'false' END"
    numeric = old in ("integer", "float", "decimal")
    if new == "string":
        if old == "boolean":
            return as_words
        return f"CAST({column} AS TEXT)" if numeric else column
    if new == "float":
        return f"CAST({column} AS REAL)"
    if new == "json":
        if old == "boolean":
            return as_words
        if numeric:
            return f"CAST({column} AS TEXT)"
        return column if old == "json" else f"json_quote({column})"
    return column


def kind_of_type(sqltype: Any) -> str:
    return kind_of_type_name(type(sqltype).__name__)


def to_kind(value: Any, kind: str) -> tuple[bool, Any]:
    """(fits, value converted for a column of ``kind``)."""
    if value is None:
        return True, None
    got = infer_kind(value)
    if got == kind:
        if kind == "datetime" and isinstance(value, str):
            return True, datetime.fromisoformat(value)
        if kind == "date" and isinstance(value, str):
            return True, date.fromisoformat(value)
        return True, value
    if kind == "json":
        return True, value
    if kind == "float" and got in ("integer", "decimal"):
        return True, float(value)
    if kind == "decimal" and got == "integer":
        return True, Decimal(value)
    if kind == "string" and got != "json":
        if isinstance(value, datetime | date):
            return True, value.isoformat()
        return True, value if isinstance(value, str) else orjson.dumps(value).decode()
    return False, value


def row_hash(row: dict[str, Any]) -> str:
    import hashlib

    blob = orjson.dumps(row, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


@dataclass(frozen=True)
class SchemaChange:
    """A column of a target table that a run added, widened or found gone upstream."""

    table: str
    column: str
    old_type: str | None  # None: the column is new
    new_type: str | None  # None: the source no longer sends the field
    kind: str  # "added", "dropped" or "retyped"

    def message(self) -> str:
        where = f"{self.table}.{self.column}"
        if self.kind == "added":
            return f"{where}: new column ({self.new_type})"
        if self.kind == "dropped":
            return (
                f"{where}: no longer sent by the source (was {self.old_type}); emptied on "
                "the source's rows"
            )
        return f"{where}: type changed from {self.old_type} to {self.new_type}"

    def details(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "column": self.column,
            "old_type": self.old_type,
            "new_type": self.new_type,
            "kind": self.kind,
        }


class SchemaContractError(MappingError):
    """Values of a run would change a column's type under ``schema_contract: freeze``."""

    def __init__(self, source_id: str, changes: list[SchemaChange]) -> None:
        self.source_id = source_id
        self.changes = changes
        listed = "; ".join(
            f"column {c.column!r} of target table {c.table!r} would change type from "
            f"{c.old_type} to {c.new_type}"
            for c in changes
        )
        super().__init__(
            f"schema change refused (mapping_config.schema_contract is freeze): {listed}; "
            "the source now sends values of another type: fix the source, or set "
            "schema_contract: evolve to widen the column"
        )


@dataclass
class MergeCounts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


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


class TargetTable:
    """One target table for one source: its columns, staging and merge."""

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
        self._stage_name = f"_fs_stage_{re.sub(r'[^a-z0-9_]', '_', name)}"
        self._stage_created: set[str] = set()
        self._stage_indexed = False
        self._staged = 0
        self.direct = False
        self.direct_values: dict[str, Any] = {}
        self._indexes_pending = False
        self._stage_kinds: dict[str, str] = {}  # staging columns' kinds as created
        self._key_index = False  # PostgreSQL: the unique (_source_id, key) index was seen
        self.direct_rows = 0  # rows a first load wrote straight into the target
        # PostgreSQL: (table, columns, kinds) → whether binary COPY fits its column types
        self.binary_layouts: dict[tuple[Any, ...], bool] = {}
        self._row_staged = False  # whether any batch of the run took the row path
        self._keep_name = f"_fs_keep_{re.sub(r'[^a-z0-9_]', '_', name)}"[:63]
        self._keep_kinds: dict[str, str] = {}  # key column → kind, once the table exists
        self._load_existing()

    # -- schema ----------------------------------------------------------------------
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

    def _needs_ddl(self) -> bool:
        if not self.existing:
            return True
        return any(
            self.existing.get(c) != k and merge_kinds(self.existing.get(c), k) == k
            for c, k in self.kinds.items()
        )

    def ensure_target(self) -> None:
        """Create the target table or add/widen its columns to hold the planned kinds."""
        if self._needs_ddl() and self.dialect == "postgresql":
            # Several sources may share a table: their first runs must not race to
            # create it or add the same column. The lock lasts until the merge commits.
            self.conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                {"name": f"factorysync.target.{self.name}"},
            )
            self._load_existing()
        if not self.existing:
            table = self._table(self.name, fresh=True)
            if self.direct:
                # A bulk first load builds the indexes once, after the rows are in (a
                # sort instead of a B-tree insert per row); a repeated key then fails
                # the unique index, and the runner loads again through staging.
                self._indexes_pending = True
            else:
                self._add_indexes(table)
            table.create(self.conn)
            self.existing = {c.name: kind_of_type(c.type) for c in table.columns}
            return
        changes: list[SchemaChange] = []
        for column, kind in self.kinds.items():
            have = self.existing.get(column)
            if have is None:
                changes.append(SchemaChange(self.name, column, None, kind, "added"))
            elif have != kind and merge_kinds(have, kind) == kind:
                changes.append(SchemaChange(self.name, column, have, kind, "retyped"))
            elif have != kind:
                # The table is wider than the values: keep the table's kind.
                self.kinds[column] = have
        if self.contract == "freeze":
            # A type the mapping declares is its author's choice; one the values bring
            # is the source's change, which freeze refuses.
            refused = [
                c
                for c in changes
                if c.kind == "retyped" and self.declared.get(c.column) != c.new_type
            ]
            if refused:
                raise SchemaContractError(self.source_id, refused)
        for change in changes:
            assert change.new_type is not None
            if change.kind == "added":
                self.conn.execute(
                    text(
                        f"ALTER TABLE {self._quote(self.name)} ADD COLUMN "
                        f"{self._quote(change.column)} {self._ddl_type(change.new_type)}"
                    )
                )
            else:
                self._widen(self.name, change.column, change.new_type)
            self.existing[change.column] = change.new_type
            self._record(change)

    def _record(self, change: SchemaChange) -> None:
        """A schema change, as an infolog event in the transaction that makes it."""
        self.schema_changes.append(change)
        infolog.record(
            self.conn,
            "warning",
            "schema.changed",
            change.message(),
            source_id=self.source_id,
            run_id=self.run_id,
            details=change.details(),
        )

    def _report_dropped(self) -> None:
        """A full snapshot without a field this source filled before: the merge empties
        that column on the source's rows, which is reported as the column dropped."""
        others = self._others()
        if not others:
            return
        q = self._quote
        filled = self.conn.execute(
            text(
                f"SELECT {', '.join(f'count({q(c)})' for c in others)} FROM {q(self.name)} "
                "WHERE _source_id = :source_id AND _deleted_at IS NULL"
            ),
            {"source_id": self.source_id},
        ).one()
        for (column, kind), count in zip(others.items(), filled, strict=True):
            if count:
                self._record(SchemaChange(self.name, column, kind, None, "dropped"))

    def _add_indexes(self, table: Table) -> None:
        table.append_constraint(
            Index(f"ux_{self.name}_key"[:63], "_source_id", *self.key, unique=True)
        )
        table.append_constraint(Index(f"ix_{self.name}_synced"[:63], "_synced_at"))

    # -- direct first load -------------------------------------------------------------
    def owns_rows(self) -> bool:
        """Whether the target holds any row of this source (soft-deleted ones included)."""
        if not self.existing:
            return False
        t = Table(self.name, MetaData(), Column("_source_id", Text()))
        found = self.conn.execute(
            select(literal(1)).select_from(t).where(t.c._source_id == self.source_id).limit(1)
        ).first()
        return found is not None

    def start_direct(self, run_id: int, now: datetime) -> None:
        """Write this run's rows straight into the target (first load of this source).

        Only valid inside one transaction that also ends the run: the rows appear when
        the run commits, or never.
        """
        self.direct = True
        self.run_id = run_id
        self.direct_values = {"_source_id": self.source_id, "_run_id": run_id, "_synced_at": now}
        self.direct_rows = 0
        self._row_staged = False

    def finish_direct(self) -> int:
        """Build pending indexes; returns the rows this source now has in the target."""
        if not self.existing:
            return 0
        if self.dialect == "postgresql":
            from factorysync.store.bulk import OpenCopy

            OpenCopy.end(self.conn)
        self._build_pending_indexes()
        if not self._row_staged:
            return self.direct_rows  # every row came through COPY, each batch whole
        t = Table(self.name, MetaData(), Column("_source_id", Text()))
        return int(
            self.conn.execute(
                select(func.count()).select_from(t).where(t.c._source_id == self.source_id)
            ).scalar_one()
        )

    @property
    def created_by_direct_load(self) -> bool:
        """Whether this run's direct first load created the table (no other transaction
        can see it yet; its indexes are still to be built)."""
        return self.direct and self._indexes_pending

    def _build_pending_indexes(self) -> None:
        if self._indexes_pending:
            table = self._table(self.name, fresh=True)
            self._add_indexes(table)
            for index in table.indexes:
                index.create(self.conn)
            self._indexes_pending = False

    def _widen(self, table: str, column: str, kind: str) -> None:
        if self.dialect != "postgresql":
            self._rebuild_sqlite(table, column, kind)
            return
        q, c, t = self._quote(table), self._quote(column), PG_TYPES[kind]
        using = f"to_jsonb({c})" if kind == "json" else f"{c}::{t}"
        self.conn.execute(text(f"ALTER TABLE {q} ALTER COLUMN {c} TYPE {t} USING {using}"))

    def _rebuild_sqlite(self, table: str, column: str, kind: str) -> None:
        """Give an SQLite column a wider declared type, in the caller's transaction.

        SQLite cannot alter a column's type, and the declared type decides how a value
        is stored (text '007' in an INTEGER column becomes the number 7): the table is
        made again with the new type, its rows copied with their values converted as
        PostgreSQL's ``ALTER … TYPE … USING`` converts them, then its indexes are made
        again. Temporary tables (staging) are rebuilt the same way.
        """
        q, run = self._quote, self.conn.exec_driver_sql
        for schema in ("temp", "main"):
            created = run(
                f"SELECT sql FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?",
                (table,),
            ).scalar()
            if created is not None:
                break
        else:
            raise StoreError(f"cannot widen {table}.{column}: no such table")
        indexes = run(
            f"SELECT sql FROM {schema}.sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL",
            (table,),
        ).scalars()
        indexes = list(indexes)
        info = run(f"PRAGMA {schema}.table_info({q(table)})").all()
        old = next(kind_of_type_name(declared) for _, name, declared, *_ in info if name == column)
        definitions, keys, copied = [], [], []
        for _, name, declared, notnull, default, pk in info:
            if name == column:
                declared = self._ddl_type(kind)
                copied.append(_sqlite_cast(q(name), old, kind))
            else:
                copied.append(q(name))
            definition = f"{q(name)} {declared}".rstrip()
            if notnull:
                definition += " NOT NULL"
            if default is not None:
                definition += f" DEFAULT {default}"
            definitions.append(definition)
            if pk:
                keys.append((pk, q(name)))
        if keys:
            definitions.append(f"PRIMARY KEY ({', '.join(name for _, name in sorted(keys))})")
        without_rowid = re.search(r"without\s+rowid\s*$", created, re.IGNORECASE) is not None
        fresh = q(f"_fs_rebuild_{table}")
        run(f"DROP TABLE IF EXISTS {schema}.{fresh}")
        run(
            f"CREATE TABLE {schema}.{fresh} ({', '.join(definitions)})"
            + (" WITHOUT ROWID" if without_rowid else "")
        )
        listed = ", ".join(q(name) for _, name, *_ in info)
        run(
            f"INSERT INTO {schema}.{fresh} ({listed}) "
            f"SELECT {', '.join(copied)} FROM {schema}.{q(table)}"
        )
        run(f"DROP TABLE {schema}.{q(table)}")
        run(f"ALTER TABLE {schema}.{fresh} RENAME TO {q(table)}")
        for sql in indexes:
            # The statement as made; an index of a temporary table goes with its table.
            run(sql)

    # -- staging ---------------------------------------------------------------------
    @property
    def stage_name(self) -> str:
        return self._stage_name

    def quote(self, name: str) -> str:
        return self._quote(name)

    def staged_rows(self, count: int) -> None:
        self._staged += count

    def ensure_stage(self) -> None:
        self._ensure_stage()

    def _ensure_stage(self) -> None:
        quoted = self._quote(self._stage_name)
        if not self._stage_created:
            self.conn.execute(text(f"DROP TABLE IF EXISTS {quoted}"))
            # Typed like the target: the same affinity on SQLite, and joins between stage
            # and target can use their indexes.
            cols = [f"{self._quote(k)} TEXT" for k in self.key if k not in self.kinds]
            ddl = ", ".join(
                cols
                + [f"{self._quote(c)} {self._ddl_type(k)}" for c, k in self.kinds.items()]
                + ["_row_hash TEXT"]
            )
            keys = ", ".join(self._quote(k) for k in self.key)
            self.conn.execute(
                # SQLite: the key dedupes on insert (last row wins). PostgreSQL: no key while
                # loading, so COPY streams freely; prepare_merge() dedupes and indexes.
                # SQLite: WITHOUT ROWID keeps the rows in the key's own B-tree, one
                # insert per row instead of a table row and an index entry.
                text(
                    f"CREATE TEMPORARY TABLE {quoted} ({ddl}, PRIMARY KEY ({keys})) WITHOUT ROWID"
                    if self.dialect != "postgresql"
                    else f"CREATE TEMPORARY TABLE {quoted} ({ddl})"
                )
            )
            self._stage_created = set(self.kinds) | set(self.key)
            self._stage_kinds = dict(self.kinds)
            return
        for column, kind in self.kinds.items():
            if column not in self._stage_created:
                ddl = self._ddl_type(kind)
                self.conn.execute(
                    text(f"ALTER TABLE {quoted} ADD COLUMN {self._quote(column)} {ddl}")
                )
                self._stage_created.add(column)
            elif self._stage_kinds.get(column) != kind:
                self._widen(self._stage_name, column, kind)
            self._stage_kinds[column] = kind

    def stage(self, rows: list[dict[str, Any]], hashes: list[str]) -> int:
        """Write a batch into the staging table (last row wins for a repeated key)."""
        if not rows:
            return 0
        self._row_staged = True
        self.plan(rows)
        self._ensure_stage()
        prepared = []
        for row, digest in zip(rows, hashes, strict=True):
            out: dict[str, Any] = {"_row_hash": digest}
            for column, kind in self.kinds.items():
                fits, value = to_kind(row.get(column), kind)
                if not fits:
                    self.kinds[column] = merge_kinds(kind, infer_kind(value)) or "string"
                    self._ensure_stage()
                    fits, value = to_kind(value, self.kinds[column])
                out[column] = value
            if "_row_key" in self.key:
                out["_row_key"] = row["_row_key"]
            prepared.append(out)
        stage = self._table(self._stage_name, temp=True)
        if self.dialect == "postgresql":
            self.conn.execute(insert(stage), prepared)
        else:
            self.conn.execute(self._stage_upsert(stage), prepared)
        self._staged += len(prepared)
        return len(prepared)

    def prepare_merge(self) -> None:
        """PostgreSQL: keep the last staged row of each key, then index the key."""
        if self.dialect != "postgresql" or not self._stage_created or self._stage_indexed:
            return
        stage = self._quote(self._stage_name)
        keys = ", ".join(self._quote(k) for k in self.key)
        index = f"CREATE UNIQUE INDEX ON {stage} ({keys})"
        try:
            with self.conn.begin_nested():
                self.conn.execute(text(index))
        except IntegrityError:
            # Rows are appended in source order, so the highest ctid is the last one read.
            match = " AND ".join(f"a.{self._quote(k)} = b.{self._quote(k)}" for k in self.key)
            self.conn.execute(
                text(f"DELETE FROM {stage} a USING {stage} b WHERE {match} AND a.ctid < b.ctid")
            )
            self.conn.execute(text(index))
        self.conn.execute(text(f"ANALYZE {stage}"))
        self._stage_indexed = True

    def _stage_upsert(self, stage: Table) -> Any:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert

        stmt = dialect_insert(stage)
        rest = {c.name: stmt.excluded[c.name] for c in stage.columns if c.name not in self.key}
        return stmt.on_conflict_do_update(index_elements=self.key, set_=rest)

    # -- merge -----------------------------------------------------------------------
    def merge(self, run_id: int, now: datetime, *, delete_missing: str | None) -> MergeCounts:
        """Apply the staged rows to the target; ``delete_missing`` is None, "hard" or "soft"."""
        counts = MergeCounts()
        self.run_id = run_id
        if self._staged == 0 and (not self.existing or delete_missing is None):
            return counts  # nothing to insert or update, and nothing to delete
        if self._staged:
            self.ensure_target()
            # Rows staged during a bulk first load (batches the columnar path could not
            # take) are matched through the key index: build it now.
            self._build_pending_indexes()
            if delete_missing and not self.direct:
                # A whole snapshot: a field none of its records has is gone upstream.
                self._report_dropped()
        for k in self.key:  # an empty snapshot still needs typed key columns to compare
            if k not in self.kinds and k in self.existing and k != "_row_key":
                self.kinds[k] = self.existing[k]
        target = self._table(self.name)
        if not self._stage_created:
            self._ensure_stage()
        if (
            self._staged
            and delete_missing is None
            and self.dialect == "postgresql"
            and "_row_key" not in self.key
            and self._has_key_index()
        ):
            # Nothing to delete: one upsert from staging does the update and the insert,
            # reading the last staged row of each key (rows are staged in source order).
            q = self._quote
            columns = self._upsert_columns()
            keys = ", ".join(q(k) for k in self.key)
            latest = (
                f"(SELECT DISTINCT ON ({keys}) {', '.join(q(c) for c in columns)} "
                f"FROM {q(self._stage_name)} ORDER BY {keys}, ctid DESC) AS s"
            )
            return self._run_upsert(self._upsert_sql(columns, latest), {}, run_id, now)
        self.prepare_merge()
        stage = self._table(self._stage_name, temp=True)
        key_match = and_(*(target.c[k] == stage.c[k] for k in self.key))
        mine = target.c._source_id == self.source_id
        columns = [c for c in self.kinds if c not in self.key]
        provenance = {"_run_id": run_id, "_synced_at": now, "_deleted_at": None}

        diff = self._diff(target, stage, delete_missing)
        if diff is not None:
            # Each step joins the (usually small) diff instead of both whole tables.
            changed = update(target).where(mine, key_match, diff.has("u", stage))
            absent = diff.has("i", stage)
            gone = diff.has("d", target)
        else:
            changed = update(target).where(mine, key_match, or_(*self._differs(target, stage)))
            absent = ~exists().where(mine, key_match)
            gone = ~exists().where(key_match)
        values: dict[str, Any] = {c: stage.c[c] for c in columns}
        values.update(dict.fromkeys(self._others()))
        values["_row_hash"] = stage.c._row_hash
        counts.updated = self.conn.execute(changed.values(**values, **provenance)).rowcount

        names = [*self.key, *columns, "_row_hash"]
        picked = select(
            *(stage.c[n] for n in names),
            literal(self.source_id),
            literal(run_id, BigInteger()),
            literal(now, UTCDateTime()),
        ).where(absent)
        counts.inserted = self.conn.execute(
            insert(target)
            .from_select([*names, "_source_id", "_run_id", "_synced_at"], picked)
            .execution_options(preserve_rowcount=True)
        ).rowcount

        if delete_missing:
            if self._keep_kinds:
                gone = and_(gone, ~self._kept(target))
            if delete_missing == "soft":
                stmt = (
                    update(target)
                    .where(mine, target.c._deleted_at.is_(None), gone)
                    .values(_deleted_at=now, _run_id=run_id)
                )
            else:
                stmt = delete(target).where(mine, gone)
            counts.deleted = self.conn.execute(stmt).rowcount
        if diff is not None:
            diff.drop()
        return counts

    def upsert(
        self, rows: list[dict[str, Any]], hashes: list[str], run_id: int, now: datetime
    ) -> MergeCounts | None:
        """PostgreSQL: write a small batch straight into the target in one statement.

        ``INSERT … SELECT FROM unnest(<one array per column>) ON CONFLICT (key) DO UPDATE``
        changes a row only where a value differs, and ``RETURNING (xmax = 0)`` tells
        inserted rows from updated ones, so the counts are exact without a staging table,
        a diff table and their catalog work. Within the batch the last row of a key wins.
        Returns None where the staging path has to do it: another store, JSON columns, a
        synthetic row key, a value that does not fit its column, or no key index yet.
        """
        if self.dialect != "postgresql" or "_row_key" in self.key or self._indexes_pending:
            return None
        self.run_id = run_id
        self.plan(rows)
        self.ensure_target()
        if "json" in self.kinds.values() or not self._has_key_index():
            return None
        latest: dict[tuple[Any, ...], int] = {}
        for i, row in enumerate(rows):
            latest[tuple(row.get(k) for k in self.key)] = i
        picked = sorted(latest.values()) if len(latest) < len(rows) else range(len(rows))
        columns = self._upsert_columns()
        arrays: list[list[Any]] = []
        for column in columns[:-1]:  # the mapped columns; _row_hash comes from ``hashes``
            kind = self.kinds[column]
            bind = KIND_TYPES[kind].bind_processor(self.conn.dialect)
            values = []
            for i in picked:
                fits, value = to_kind(rows[i].get(column), kind)
                if not fits:
                    return None
                values.append(value if bind is None or value is None else bind(value))
            arrays.append(values)
        arrays.append([hashes[i] for i in picked])
        params: dict[str, Any] = {f"a{n}": values for n, values in enumerate(arrays)}
        casts = [
            f"CAST(:a{n} AS {PG_TYPES[self.kinds[c]] if c in self.kinds else 'TEXT'}[])"
            for n, c in enumerate(columns)
        ]
        listed = ", ".join(self._quote(c) for c in columns)
        statement = self._upsert_sql(columns, f"unnest({', '.join(casts)}) AS u({listed})")
        return self._run_upsert(statement, params, run_id, now)

    def _upsert_columns(self) -> list[str]:
        """What an upsert writes: the key, the other mapped columns and ``_row_hash``."""
        return [*self.key, *(c for c in self.kinds if c not in self.key), "_row_hash"]

    def _run_upsert(
        self, statement: str, params: dict[str, Any], run_id: int, now: datetime
    ) -> MergeCounts:
        values = {**params, "source_id": self.source_id, "run_id": run_id, "now": now}
        inserted, updated = self.conn.execute(text(statement), values).one()
        return MergeCounts(inserted=inserted, updated=updated)

    def _upsert_sql(self, columns: list[str], source: str) -> str:
        """``INSERT … SELECT <columns> FROM <source> ON CONFLICT (key) DO UPDATE`` where a
        value differs, answering (inserted, updated); ``columns`` are the key, the mapped
        columns and ``_row_hash``, as ``source`` names them."""
        q = self._quote
        others = list(self._others())
        mapped = [c for c in columns if c not in self.key and c != "_row_hash"]
        changes = [f"{q(c)} = EXCLUDED.{q(c)}" for c in [*mapped, "_row_hash"]]
        changes += [f"{q(c)} = NULL" for c in others]
        changes += [f"{q(c)} = EXCLUDED.{q(c)}" for c in ("_run_id", "_synced_at")]
        changes.append("_deleted_at = NULL")
        differs = [f"t.{q(c)} IS DISTINCT FROM EXCLUDED.{q(c)}" for c in mapped]
        differs += [f"t.{q(c)} IS NOT NULL" for c in others]
        differs.append("t._deleted_at IS NOT NULL")
        listed = ", ".join(q(c) for c in columns)
        return (
            f"WITH w AS (INSERT INTO {q(self.name)} AS t "
            f"({listed}, _source_id, _run_id, _synced_at) "
            f"SELECT {listed}, :source_id, :run_id, :now FROM {source} "
            f"ON CONFLICT (_source_id, {', '.join(q(k) for k in self.key)}) DO UPDATE "
            f"SET {', '.join(changes)} WHERE {' OR '.join(differs)} "
            "RETURNING (t.xmax = 0) AS fresh) "
            "SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) FROM w"
        )

    def _has_key_index(self) -> bool:
        """Whether the target has its unique (_source_id, key) index (ON CONFLICT needs it)."""
        if not self._key_index:  # a missing index may be built later: ask again
            found = self.conn.execute(
                text(
                    "SELECT 1 FROM pg_index i JOIN pg_attribute a "
                    "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                    "WHERE i.indrelid = to_regclass(:table) AND i.indisunique "
                    "AND i.indpred IS NULL AND i.indexprs IS NULL "
                    "GROUP BY i.indexrelid, i.indnatts HAVING count(*) = i.indnatts "
                    'AND array_agg(a.attname::text ORDER BY a.attname::text COLLATE "C") '
                    "= CAST(:columns AS TEXT[]) LIMIT 1"
                ),
                {"table": self._quote(self.name), "columns": sorted(["_source_id", *self.key])},
            ).first()
            self._key_index = found is not None
        return self._key_index

    def _diff(self, target: Table, stage: Table, delete_missing: str | None) -> _Diff | None:
        """PostgreSQL: the keys to insert, update and delete, found in one pass.

        One hash join of staging and the source's target rows (a full join when rows
        that are gone get deleted) replaces the three joins of the separate statements,
        so an unchanged snapshot is read once. SQLite keeps the separate statements.
        """
        if self.dialect != "postgresql":
            return None
        first = self.key[0]
        mine = select(target).where(target.c._source_id == self.source_id).subquery("t")
        matched = and_(*(mine.c[k] == stage.c[k] for k in self.key))
        is_new = mine.c[first].is_(None)
        gone: Any = stage.c[first].is_(None)
        if delete_missing == "soft":
            gone = and_(gone, mine.c._deleted_at.is_(None))
        action = case((is_new, literal("i")), (gone, literal("d")), else_=literal("u"))
        query = (
            select(
                action.label("_action"),
                *(func.coalesce(stage.c[k], mine.c[k]).label(k) for k in self.key),
            )
            .select_from(stage.join(mine, matched, isouter=True, full=delete_missing is not None))
            .where(or_(is_new, gone if delete_missing else false(), *self._differs(mine, stage)))
        )
        # The join hashes the source's target rows: with the default 4 MB it spills to
        # disk in dozens of batches. The setting ends with the merge transaction.
        self.conn.execute(text(f"SET LOCAL work_mem = '{MERGE_WORK_MEM}'"))
        name = f"_fs_diff_{re.sub(r'[^a-z0-9_]', '_', self.name)}"[:63]
        few = delete_missing is None and self._staged * 20 < self._estimated_rows()
        if few:
            # A few staged rows (an incremental batch): probing the target's key index
            # beats hashing all of its rows, which the planner tends to prefer.
            self.conn.execute(text("SET LOCAL enable_hashjoin = off"))
            self.conn.execute(text("SET LOCAL enable_mergejoin = off"))
        diff = _Diff.create(self.conn, name, query, stage, self.key, self._quote)
        if few:
            self.conn.execute(text("RESET enable_hashjoin"))
            self.conn.execute(text("RESET enable_mergejoin"))
        return diff

    def _estimated_rows(self) -> float:
        """PostgreSQL's estimate of the target's rows (0 before its first ANALYZE)."""
        found = self.conn.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"),
            {"name": self._quote(self.name)},
        ).scalar()
        return max(float(found or 0), 0.0)

    def _differs(self, target: Any, stage: Table) -> list[Any]:
        """Changed: any staged value differs, a field the source dropped still has a value,
        or the row was soft-deleted. Compared column by column, so rows staged by the
        columnar path (which computes no row hash) are judged the same way."""
        columns = [c for c in self.kinds if c not in self.key]
        differs = [target.c[c].is_distinct_from(stage.c[c]) for c in columns]
        differs += [target.c[c].is_not(None) for c in self._others()]
        differs.append(target.c._deleted_at.is_not(None))
        return differs

    def reload(self) -> None:
        """Re-read the real table (another run may have added or widened columns)."""
        self._load_existing()

    def clear_stage(self) -> None:
        """Empty the staging table after a merge (incremental runs merge batch by batch)."""
        if self._stage_created:
            if self.dialect == "postgresql":
                # Rebuilt empty: the key index goes too, so the next batches COPY freely.
                self.conn.execute(text(f"DROP TABLE {self._quote(self._stage_name)}"))
                self._stage_created = set()
                self._stage_indexed = False
            else:
                self.conn.execute(text(f"DELETE FROM {self._quote(self._stage_name)}"))
            self._staged = 0

    def forget_stage(self) -> None:
        """After a rolled-back transaction: the staging table and the direct mode are gone."""
        self._stage_created = set()
        self._keep_kinds = {}
        self._stage_indexed = False
        self._staged = 0
        self.direct = False
        self._indexes_pending = False
        self._load_existing()

    def drop_stage(self) -> None:
        if self._stage_created:
            self.conn.execute(text(f"DROP TABLE IF EXISTS {self._quote(self._stage_name)}"))
            self._stage_created = set()
            self._stage_indexed = False
            self._staged = 0
        if self._keep_kinds:
            self.conn.execute(text(f"DROP TABLE IF EXISTS {self._quote(self._keep_name)}"))
            self._keep_kinds = {}

    # -- keys a full sync keeps --------------------------------------------------------
    def keep(self, keys: list[tuple[int, tuple[Any, ...]]]) -> int:
        """Remember keys of records this run read but rejected: the delete phase of
        :meth:`merge` leaves the source's rows of these keys as they are.

        ``keys`` are (tag, key values) pairs; :meth:`kept_tags` answers the tags whose
        key has a row. Nothing to keep on a first load, or before the table exists; a key
        value that does not fit its column cannot match a row and is passed over.
        """
        if not keys or self.direct or not self.existing:
            return 0
        if not self._keep_kinds:
            kinds = {k: self.existing[k] for k in self.key}
            quoted = self._quote(self._keep_name)
            self.conn.execute(text(f"DROP TABLE IF EXISTS {quoted}"))
            columns = ", ".join(f"{self._quote(k)} {self._ddl_type(v)}" for k, v in kinds.items())
            self.conn.execute(text(f"CREATE TEMPORARY TABLE {quoted} (_tag BIGINT, {columns})"))
            index = self._quote(f"{self._keep_name[:55]}_key")
            listed = ", ".join(self._quote(k) for k in kinds)
            self.conn.execute(text(f"CREATE INDEX {index} ON {quoted} ({listed})"))
            self._keep_kinds = kinds
        rows = []
        for tag, values in keys:
            row: dict[str, Any] = {"_tag": tag}
            for column, value in zip(self.key, values, strict=True):
                fits, row[column] = to_kind(value, self._keep_kinds[column])
                if not fits:
                    break
            else:
                rows.append(row)
        if rows:
            self.conn.execute(insert(self._keep_table()), rows)
        return len(rows)

    def _keep_table(self) -> Table:
        columns = [Column(k, KIND_TYPES[kind]) for k, kind in self._keep_kinds.items()]
        return Table(self._keep_name, MetaData(), Column("_tag", BigInteger()), *columns)

    def _kept(self, target: Any) -> Any:
        """Whether a row of ``target`` has a kept key (its column types follow the
        target's, which the merge may have widened)."""
        for column, kind in self.existing.items():
            if column in self._keep_kinds and self._keep_kinds[column] != kind:
                self._widen(self._keep_name, column, kind)
                self._keep_kinds[column] = kind
        keep = self._keep_table()
        return exists().where(*(keep.c[k] == target.c[k] for k in self.key))

    def kept_tags(self) -> list[int]:
        """Tags of kept keys that have a row of this source in the target (not deleted)."""
        if not self._keep_kinds:
            return []
        target = Table(
            self.name,
            MetaData(),
            *(Column(k, KIND_TYPES[kind]) for k, kind in self._keep_kinds.items()),
            Column("_source_id", Text()),
            Column("_deleted_at", UTCDateTime()),
        )
        keep = self._keep_table()
        found = select(keep.c._tag).where(
            exists().where(
                target.c._source_id == self.source_id,
                target.c._deleted_at.is_(None),
                *(keep.c[k] == target.c[k] for k in self.key),
            )
        )
        return [int(tag) for tag in self.conn.execute(found).scalars()]


class _Diff:
    """A temporary table of (action, key…) rows: 'i' insert, 'u' update, 'd' delete."""

    def __init__(self, conn: Connection, table: Table, quote: Any) -> None:
        self.conn, self.table, self._quote = conn, table, quote

    @classmethod
    def create(
        cls, conn: Connection, name: str, query: Any, stage: Table, key: list[str], quote: Any
    ) -> _Diff:
        compiled = query.compile(dialect=conn.dialect)
        conn.execute(text(f"DROP TABLE IF EXISTS {quote(name)}"))
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {quote(name)} AS {compiled}", dict(compiled.params)
        )
        conn.execute(text(f"ANALYZE {quote(name)}"))
        columns = [Column("_action", Text()), *(Column(k, stage.c[k].type) for k in key)]
        return cls(conn, Table(name, MetaData(), *columns), quote)

    def has(self, action: str, other: Table) -> Any:
        """Rows of ``other`` (staging or target) whose key has ``action`` in the diff."""
        keys = [c.name for c in self.table.c if c.name != "_action"]
        return exists().where(
            self.table.c._action == action, *(self.table.c[k] == other.c[k] for k in keys)
        )

    def drop(self) -> None:
        self.conn.execute(text(f"DROP TABLE {self._quote(self.table.name)}"))


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
