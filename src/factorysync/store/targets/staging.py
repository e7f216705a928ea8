"""A run's rows on their way in: a private staging table, or straight into a new table.

A run first writes its rows into a staging table (a temporary table of its own
connection); :mod:`~factorysync.store.targets.merge` then applies them to the target.
The first load of a source writes into the target directly instead, building its
indexes once the rows are in. The keys of records a full sync read but rejected go to a
second temporary table (``keep``): the merge's delete phase leaves their rows alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    Table,
    Text,
    exists,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from factorysync.kinds import infer_kind, merge_kinds, to_kind
from factorysync.store.capture import capture_rows
from factorysync.store.key_order import KeyOrder
from factorysync.store.open_copy import OpenCopy
from factorysync.store.targets.evolution import EvolvingTarget
from factorysync.store.targets.kinds import KIND_TYPES
from factorysync.store.types import UTCDateTime


class StagingTarget(EvolvingTarget):
    """A target table with the run's staging table, direct first load and kept keys."""

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

    def flush_bulk(self) -> None:
        """Write the rows still on their way (a PostgreSQL COPY left open, a SQLite Arrow
        stage) into the target (a first load) or the staging table."""
        if self.dialect == "postgresql":
            OpenCopy.end(self.conn)  # the server's error, if any, is raised here
        stage, self.arrow_stage = self.arrow_stage, None
        if stage is not None:
            if self.direct and stage.ascending:
                # Keys in order, none repeated: the indexes of a table this load made
                # take the rows as appends, cheaper than building them afterwards.
                self._build_pending_indexes()
            stage.copy_into(self.conn)

    def finish_direct(self) -> int:
        """Build pending indexes; returns the rows this source now has in the target."""
        self.flush_bulk()
        if not self.existing:
            return 0
        self._build_pending_indexes()
        if self.run_id is not None:
            # Rows loaded in bulk (COPY, relayed, multi-row inserts) carry this stamp.
            now = self.direct_values["_synced_at"]
            capture_rows(self.conn, self.name, self.source_id, self.run_id, now)
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

    # -- staging table -----------------------------------------------------------------
    @property
    def stage_name(self) -> str:
        return self._stage_name

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
        self.flush_bulk()  # rows staged before these go in first: the last row wins
        self._row_staged = True
        self.stage_order.lose()
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
        """PostgreSQL: keep the last staged row of each key, then index the key.

        Keys that came in strictly ascending repeat none: the merge's hash joins need no
        index then, and building it (with its statistics) was a sixth of an unchanged
        re-sync's time."""
        if self.dialect != "postgresql" or not self._stage_created or self._stage_indexed:
            return
        if self.stage_order.ascending and len(self.key) == 1:
            self._stage_indexed = True
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

    def clear_stage(self) -> None:
        """Empty the staging table after a merge (incremental runs merge batch by batch)."""
        if self._stage_created:
            if self.dialect == "postgresql":
                # Rebuilt empty: the key index goes too, so the next batches COPY freely.
                self.conn.execute(text(f"DROP TABLE {self._quote(self._stage_name)}"))
                self._stage_created = set()
                self._stage_indexed = False
                self.stage_order = KeyOrder()
            else:
                self.conn.execute(text(f"DELETE FROM {self._quote(self._stage_name)}"))
            self._staged = 0

    def forget_stage(self) -> None:
        """After a rolled-back transaction: the staging table and the direct mode are gone."""
        self._discard_arrow_stage()
        self._stage_created = set()
        self._keep_kinds = {}
        self._stage_indexed = False
        self.stage_order = KeyOrder()
        self._staged = 0
        self.direct = False
        self._indexes_pending = False
        self._load_existing()

    def drop_stage(self) -> None:
        self._discard_arrow_stage()
        if self._stage_created:
            self.conn.execute(text(f"DROP TABLE IF EXISTS {self._quote(self._stage_name)}"))
            self._stage_created = set()
            self._stage_indexed = False
            self.stage_order = KeyOrder()
            self._staged = 0
        if self._keep_kinds:
            self.conn.execute(text(f"DROP TABLE IF EXISTS {self._quote(self._keep_name)}"))
            self._keep_kinds = {}

    def _discard_arrow_stage(self) -> None:
        stage, self.arrow_stage = self.arrow_stage, None
        if stage is not None:
            stage.discard()

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
