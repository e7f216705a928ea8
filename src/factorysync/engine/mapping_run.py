"""One mapping during a run: its record pipeline, target table, cursor and counters.

The runner reads a connection and hands each batch to every active mapping's
:class:`MappingRun`, which stages the rows (record by record through the
:class:`~factorysync.engine.pipeline.RecordPipeline`, or column by column for Arrow
batches), keeps the refusals, and merges what is staged with its checkpoint: quarantine
entries, the connector's state and, for incremental mappings, the cursor. A quarantine
replay sets its mappings up the same way (:func:`mapping_runs`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from factorysync.config import MappingDecl, SourceDecl
from factorysync.connectors.base import Batch, ReadRequest
from factorysync.engine import columnar
from factorysync.engine.history import RunResult
from factorysync.engine.mapping import Mapper, snake_case
from factorysync.engine.pipeline import Quarantine, RecordPipeline, Validator
from factorysync.engine.quarantine import store_rejects
from factorysync.engine.state import (
    CONNECTOR_KEY,
    SHAPE_KEY,
    comparable,
    load_cursor,
    load_state,
    passes_cursor,
    save_cursor,
    save_state,
)
from factorysync.store.bulk import NotColumnar, stage_arrow
from factorysync.store.db import write_transaction
from factorysync.store.targets import TargetTable
from factorysync.store.types import utcnow


def mapping_runs(
    conn: Connection, decl: SourceDecl, source: dict[str, Any], zone: str = "UTC"
) -> list[MappingRun]:
    """The source's active mappings set up as a run sets them up (mapper, rules, target
    table), for work on their rows outside a sync (a quarantine replay)."""
    ids = {m["target_table"]: m["id"] for m in source["mappings"]}
    return [
        MappingRun(conn, decl.source_id, ids[m.target_table], m, zone)
        for m in decl.mappings
        if m.is_active
    ]


def _lookback(cursor: Any, amount: float | None) -> Any:
    if cursor is None or not amount:
        return cursor
    if isinstance(cursor, datetime):
        return cursor - timedelta(seconds=amount)
    if isinstance(cursor, date):
        return cursor - timedelta(days=max(1, round(amount / 86400)))
    if isinstance(cursor, int | float):
        return cursor - amount
    return cursor


class MappingRun:
    """One mapping during a run: pipeline, staging table, cursor, counters."""

    def __init__(
        self,
        conn: Connection,
        source_id: str,
        mapping_id: int,
        decl: MappingDecl,
        zone: str = "UTC",
    ):
        config = decl.mapping_config
        self.decl = decl
        self.source_id = source_id
        self.mapping_id = mapping_id
        # zone: the reading connection's timezone, for timestamps without an offset.
        self.mapper = Mapper(config, zone=zone)
        self.validator = Validator(config.validate_)
        self.target = TargetTable(
            conn,
            decl.target_table,
            source_id=source_id,
            key=self.mapper.key,
            declared=self.mapper.declared_types(),
            contract=config.schema_contract,
        )
        self.mapper.freeze(self.target.frozen_columns())
        self.incremental = decl.sync_strategy == "incremental"
        # A full sync merges once, after the last batch: its staging may be written in C.
        self.target.bulk_staging = not self.incremental
        self.cursor_field = config.cursor_field
        self.pipeline = RecordPipeline(
            self.mapper,
            self.validator,
            cursor_field=self.cursor_field if self.incremental else None,
        )
        self.quarantine = Quarantine(source_id, decl.target_table, config.on_invalid)
        self.cursor = load_cursor(conn, source_id, mapping_id) if self.incremental else None
        self.floor = _lookback(self.cursor, config.lookback)
        self.max_cursor: Any = self.cursor
        self.connector_state = load_state(conn, source_id, mapping_id, CONNECTOR_KEY) or {}
        self.new_connector_state: dict[str, Any] | None = None
        self.envelope: dict[str, Any] | None = None
        self.columns: dict[str, str] = {}  # auto mode: target column -> source field
        # Full syncs: (quarantine entry index or -1, key) of rejected records, whose rows
        # the delete phase keeps; and how many rejected records had no key known.
        self.kept: list[tuple[int, tuple[Any, ...]]] = []
        self.unkeyed = 0
        self.columnar = columnar.eligible(config)
        self.columnar_mapper = columnar.ColumnarMapper(config, zone=zone) if self.columnar else None
        if self.columnar_mapper is not None:
            self.columnar_mapper.freeze(self.target.frozen_columns())

    @property
    def rejected(self) -> int:
        return self.quarantine.refused

    def request(self) -> ReadRequest:
        config = self.decl.mapping_config
        cursor_path = None
        if self.incremental and self.cursor_field:
            spec = (config.fields or {}).get(self.cursor_field)
            if isinstance(spec, str):
                cursor_path = spec
            elif spec is not None and spec.from_:
                cursor_path = spec.from_
            elif config.fields is None or config.include_unmapped:
                cursor_path = self.cursor_field
        return ReadRequest(
            state=self.connector_state,
            records_path=config.records_path,
            strategy=self.decl.sync_strategy,
            cursor_path=cursor_path,
            cursor_value=self.floor,
            columnar=self.columnar,
        )

    # -- staging -------------------------------------------------------------------------
    def stage(self, batch: Batch, result: RunResult) -> None:
        """Stage one batch: Arrow on the columnar path where it can, else row by row."""
        if batch.arrow is not None:
            self._stage_arrow(batch, result)
        else:
            self._stage_records(batch, result)

    def _note(self, batch: Batch) -> None:
        if batch.state is not None:
            self.new_connector_state = batch.state
        if batch.envelope is not None and self.envelope is None:
            self.envelope = batch.envelope

    def _stage_records(self, batch: Batch, result: RunResult) -> None:
        rows: list[dict[str, Any]] = []
        hashes: list[str] = []
        pipeline, mapper = self.pipeline, self.mapper
        self._note(batch)
        self._refuse_unparsed(batch, result)
        for source_record in batch.records:
            for mapped in pipeline.run(source_record):
                result.records_processed += 1
                row = mapped.row
                if not mapped.accepted or row is None:
                    known = mapped.stage == "record" and not self.incremental
                    key = pipeline.key_of(mapped) if known else None
                    self._refuse(mapped.record, mapped.problems, result, mapped.stage, key)
                    continue
                if mapper.auto and isinstance(mapped.record, dict) and len(self.columns) < len(row):
                    self.columns.update(mapper.source_fields(mapped.record))
                if self.incremental:
                    value = comparable(row.get(self.cursor_field or ""))
                    if not batch.prefiltered and not passes_cursor(value, self.floor):
                        continue
                    if self.max_cursor is None or value > self.max_cursor:
                        self.max_cursor = value
                hashes.append(pipeline.hashed(row))
                rows.append(row)
        self.target.stage(rows, hashes)
        if self.kept:
            self.target.keep(self.kept)
            self.kept = []

    def _stage_arrow(self, batch: Batch, result: RunResult) -> None:
        assert self.columnar_mapper is not None
        arrow = batch.arrow
        assert arrow is not None
        try:
            mapped = self.columnar_mapper.map(arrow)
            if self.incremental and self.cursor_field:
                floor = None if batch.prefiltered else self.floor
                mapped, top = columnar.filter_cursor(mapped, self.cursor_field, floor)
                if top is not None and (self.max_cursor is None or top > self.max_cursor):
                    self.max_cursor = top
            stage_arrow(self.target, mapped)
        except NotColumnar:
            batch.records, batch.arrow = arrow.to_pylist(), None
            self._stage_records(batch, result)
            return
        result.records_processed += arrow.num_rows
        self._refuse_unparsed(batch, result)
        self._note(batch)
        if self.columnar_mapper.config.fields is None and len(self.columns) < arrow.num_columns:
            for name in arrow.schema.names:
                self.columns.setdefault(snake_case(name), name)

    def _refuse_unparsed(self, batch: Batch, result: RunResult) -> None:
        # Records the connector could not parse: no key known.
        for record, reasons in batch.rejected:
            result.records_processed += 1
            self._refuse(record, reasons, result, "unparsed", None)
        batch.rejected = []

    def _refuse(
        self,
        record: Any,
        problems: list[str],
        result: RunResult,
        stage: str,
        key: tuple[Any, ...] | None,
    ) -> None:
        """Quarantine (per ``on_invalid``) and, in a full sync, remember the key of a
        refused record (None: no key known), so the delete phase keeps its row."""
        label = f"record {result.records_processed}"
        index = self.quarantine.refuse(record, problems, result.run_id, stage=stage, label=label)
        if self.incremental:
            return
        if key is None:
            self.unkeyed += 1
        else:
            self.kept.append((index, key))

    # -- merging -------------------------------------------------------------------------
    def save_checkpoint(self, conn: Connection, run_id: int, *, cursor: bool) -> None:
        """Quarantine, shape, connector state and (optionally) cursor, in ``conn``'s txn."""
        entries = self.quarantine.take()
        if entries:
            store_rejects(conn, entries)
        if self.envelope is not None or self.columns:
            shape = {"envelope": self.envelope, "columns": self.columns}
            save_state(conn, self.source_id, self.mapping_id, SHAPE_KEY, shape, run_id)
        if self.new_connector_state is not None:
            save_state(
                conn,
                self.source_id,
                self.mapping_id,
                CONNECTOR_KEY,
                self.new_connector_state,
                run_id,
            )
        if cursor and self.incremental and self.max_cursor != self.cursor:
            save_cursor(conn, self.source_id, self.mapping_id, self.max_cursor, run_id)
            self.cursor = self.max_cursor

    def merge(
        self,
        conn: Connection,
        result: RunResult,
        *,
        cursor: bool,
        txn: bool = True,
        clear: bool = True,
    ) -> None:
        """Merge what is staged into the target, then store the checkpoint (in a write
        transaction of its own, or the caller's when ``txn`` is false)."""
        if txn:
            with write_transaction(conn):
                self._merge(conn, result, cursor=cursor, clear=clear)
        else:
            self._merge(conn, result, cursor=cursor, clear=clear)

    def _merge(self, conn: Connection, result: RunResult, *, cursor: bool, clear: bool) -> None:
        target = self.target
        target.reload()
        # A first load (direct) has nothing of this source's to delete; a snapshot with
        # records of no known key may hold any row: nothing is deleted then.
        full = not (self.incremental or target.direct)
        if full:
            entries = self.quarantine.entries
            for index in target.kept_tags():
                if 0 <= index < len(entries):
                    entries[index]["kept_previous"] = True
        delete_mode = self.decl.mapping_config.delete_mode
        counts = target.merge(
            result.run_id,
            utcnow(),
            delete_missing=delete_mode if full and not self.unkeyed else None,
        )
        if not target.direct:  # a first load counts its rows when it finishes
            result.records_inserted += counts.inserted
            result.records_updated += counts.updated
            result.records_deleted += counts.deleted
        self.save_checkpoint(conn, result.run_id, cursor=cursor)
        if clear:
            target.clear_stage()
