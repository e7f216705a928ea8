"""Schema evolution: a target table created, its columns added and widened.

A column the source adds or stops sending, or one that is widened, is a schema change:
each is written to the infolog as a ``schema.changed`` event in the transaction that
makes it (the alert rules turn the run's events into a ``schema_change`` alert). Under
the mapping's ``schema_contract: freeze`` a run whose values would widen a column fails
instead (:class:`~factorysync.store.targets.changes.SchemaContractError`). SQLite cannot
change a column's type in place: the table is rebuilt with the wider declared type, so
its values keep the type they were written with (text stays text).
"""

from __future__ import annotations

import re

from sqlalchemy import Index, Table, text

from factorysync.errors import StoreError
from factorysync.kinds import PG_TYPES, kind_of_type, kind_of_type_name, merge_kinds
from factorysync.observability import infolog
from factorysync.store.targets.changes import SchemaChange, SchemaContractError
from factorysync.store.targets.columns import TargetColumns


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


class EvolvingTarget(TargetColumns):
    """A target table that makes and widens its columns to hold what a run plans."""

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
        indexes = list(
            run(
                f"SELECT sql FROM {schema}.sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND sql IS NOT NULL",
                (table,),
            ).scalars()
        )
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
