"""The merge: staged rows applied to the target in one transaction, with exact counts.

Set-based SQL inserts, updates and deletes (or soft-deletes) in the transaction that
ends the run, and yields the exact inserted/updated/deleted counts: a row whose values
did not change is not counted as updated. Until that transaction commits, the target is
untouched: a read that fails half-way changes nothing. On PostgreSQL a merge with
nothing to delete is one ``INSERT … ON CONFLICT`` from staging, and a small batch of the
realtime writer skips staging altogether (:meth:`TargetTable.upsert`); both yield the
same counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Delete,
    MetaData,
    Table,
    Text,
    Update,
    and_,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)

from factorysync.kinds import PG_TYPES, to_kind
from factorysync.store.capture import capture_deleted, capture_rows
from factorysync.store.targets.kinds import KIND_TYPES
from factorysync.store.targets.staging import StagingTarget
from factorysync.store.types import UTCDateTime

MERGE_WORK_MEM = "256MB"  # PostgreSQL work_mem for the merge's join (server memory)


@dataclass
class MergeCounts:
    """Rows a merge inserted, updated and deleted (an unchanged row is not updated)."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0


class TargetTable(StagingTarget):
    """One target table for one source: its columns, staging and merge.

    Built in layers, one module each (listed in the package docstring); this top layer
    merges the staged rows and upserts the realtime writer's small batches.
    """

    def merge(self, run_id: int, now: datetime, *, delete_missing: str | None) -> MergeCounts:
        """Apply the staged rows to the target; ``delete_missing`` is None, "hard" or "soft"."""
        counts = MergeCounts()
        self.run_id = run_id
        self.flush_bulk()
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
            # Each step joins the (usually small) diff instead of both whole tables, and
            # a step with no row in the diff is not run.
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
        if diff is None or diff.holds("u"):
            counts.updated = self.conn.execute(changed.values(**values, **provenance)).rowcount

        names = [*self.key, *columns, "_row_hash"]
        picked = select(
            *(stage.c[n] for n in names),
            literal(self.source_id),
            literal(run_id, BigInteger()),
            literal(now, UTCDateTime()),
        ).where(absent)
        if diff is None or diff.holds("i"):
            counts.inserted = self.conn.execute(
                insert(target)
                .from_select([*names, "_source_id", "_run_id", "_synced_at"], picked)
                .execution_options(preserve_rowcount=True)
            ).rowcount

        if delete_missing and (diff is None or diff.holds("d")):
            if self._keep_kinds:
                gone = and_(gone, ~self._kept(target))
            stmt: Update | Delete
            if delete_missing == "soft":
                stmt = (
                    update(target)
                    .where(mine, target.c._deleted_at.is_(None), gone)
                    .values(_deleted_at=now, _run_id=run_id, _synced_at=now)
                )
            else:
                capture_deleted(
                    self.conn,
                    target,
                    self.key,
                    [mine, gone],
                    table=self.name,
                    source_id=self.source_id,
                    run_id=run_id,
                    now=now,
                )
                stmt = delete(target).where(mine, gone)
            counts.deleted = self.conn.execute(stmt).rowcount
        if diff is not None:
            diff.drop()
        if counts.inserted or counts.updated or (counts.deleted and delete_missing == "soft"):
            capture_rows(self.conn, self.name, self.source_id, run_id, now)
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
        if inserted or updated:
            capture_rows(self.conn, self.name, self.source_id, run_id, now)
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


class _Diff:
    """A temporary table of (action, key…) rows: 'i' insert, 'u' update, 'd' delete."""

    def __init__(self, conn: Connection, table: Table, quote: Any, counts: dict[str, int]) -> None:
        self.conn, self.table, self._quote = conn, table, quote
        self.counts = counts  # action → rows

    @classmethod
    def create(
        cls, conn: Connection, name: str, query: Any, stage: Table, key: list[str], quote: Any
    ) -> _Diff:
        compiled = query.compile(dialect=conn.dialect)
        conn.execute(text(f"DROP TABLE IF EXISTS {quote(name)}"))
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {quote(name)} AS {compiled}", dict(compiled.params)
        )
        found = conn.execute(text(f"SELECT _action, count(*) FROM {quote(name)} GROUP BY 1"))
        counts = {str(action): int(n) for action, n in found}
        if counts:
            conn.execute(text(f"ANALYZE {quote(name)}"))
        columns = [Column("_action", Text()), *(Column(k, stage.c[k].type) for k in key)]
        return cls(conn, Table(name, MetaData(), *columns), quote, counts)

    def holds(self, action: str) -> bool:
        """Whether any key has ``action``."""
        return bool(self.counts.get(action))

    def has(self, action: str, other: Table) -> Any:
        """Rows of ``other`` (staging or target) whose key has ``action`` in the diff."""
        keys = [c.name for c in self.table.c if c.name != "_action"]
        return exists().where(
            self.table.c._action == action, *(self.table.c[k] == other.c[k] for k in keys)
        )

    def drop(self) -> None:
        self.conn.execute(text(f"DROP TABLE {self._quote(self.table.name)}"))
