"""One active mapping of a realtime source, as its writer uses it: the record pipeline
of a batch sync (map, validate, quarantine decision) and the target table it merges into.

Timestamps without an offset are read in :func:`source_zone`, as a batch sync of the
source would read them, whichever writer builds the targets (a stream's, a push's, a
drain of the spool after a restart)."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Connection

from factorysync.config import SourceDecl
from factorysync.engine.mapping import Mapper
from factorysync.engine.pipeline import Quarantine, RecordPipeline, Validator
from factorysync.errors import ConfigError
from factorysync.realtime.incoming import Incoming
from factorysync.store.targets import TargetTable


def source_zone(decl: SourceDecl) -> str:
    """The zone naive timestamps of a realtime source are read in: its primary
    connection's (:func:`~factorysync.config.naive_zone`), as its connector's
    ``timezone`` says, told from the declaration since a writer may have no connector."""
    return decl.primary().naive_zone


def built_from(decl: SourceDecl) -> str:
    """A fingerprint of what a realtime writer is built from: the declaration, and the
    site's zone, which the dump leaves out (a changed zone makes a new writer, so its
    rows are read in the new zone)."""
    seen = decl.model_dump_json() + "\n" + (decl.primary().site_zone or "")
    return hashlib.sha256(seen.encode()).hexdigest()


def targets_of(conn: Connection, decl: SourceDecl) -> list[Target]:
    """The source's active mappings as targets, naive timestamps in :func:`source_zone`."""
    zone = source_zone(decl)
    return [Target(conn, decl.source_id, m, zone=zone) for m in decl.mappings if m.is_active]


class Target:
    """One active mapping of the source: its record pipeline and target table. ``zone``:
    the zone of timestamps without an offset (a field's own ``timezone`` wins)."""

    def __init__(self, conn: Connection, source_id: str, decl: Any, *, zone: str) -> None:
        self.decl = decl
        self.mapper = Mapper(decl.mapping_config, zone=zone)
        if not self.mapper.key:
            raise ConfigError(
                f"source {source_id!r}: mapping {decl.target_table!r} needs a primary_key: "
                "realtime rows are upserted by key (add the timestamp to the key for a "
                "time series)"
            )
        self.pipeline = RecordPipeline(self.mapper, Validator(decl.mapping_config.validate_))
        # Refusals of the flush in progress (reset by each flush).
        self.quarantine = Quarantine(source_id, decl.target_table, decl.mapping_config.on_invalid)
        self.table = TargetTable(
            conn,
            decl.target_table,
            source_id=source_id,
            key=self.mapper.key,
            declared=self.mapper.declared_types(),
            contract=decl.mapping_config.schema_contract,
        )
        # schema_contract: freeze: records with fields the table has no column for are
        # quarantined; values that would retype a column stop the flush (not acknowledged,
        # so nothing is lost) with the reason in last_error.
        self.mapper.freeze(self.table.frozen_columns())

    def rows(self, items: list[Incoming], run_id: int) -> tuple[list[dict[str, Any]], list[str]]:
        """The rows and row hashes of ``items`` for this target; refusals go to its
        quarantine (``on_invalid: fail`` raises) and to each item's ``rejections``. A
        pivoted mapping answers each sample with its machine's whole row: only the last
        row of each key in the flush is written."""
        rows: list[dict[str, Any]] = []
        hashes: list[str] = []
        pipeline, quarantine = self.pipeline, self.quarantine
        quarantine.reset()
        pivoted: dict[tuple[Any, ...] | None, dict[str, Any]] = {}

        def refuse(record: Any, reasons: list[str], item: Incoming, stage: str) -> None:
            quarantine.refuse(record, reasons, run_id, stage=stage)
            item.rejections.append("; ".join(reasons))

        for item in items:
            item.run_id = run_id
            if item.error is not None:
                refuse(item.raw, [item.error], item, "unparsed")
                continue
            for source_record in item.records:
                for mapped in pipeline.run(source_record):
                    if mapped.row is None or not mapped.accepted:
                        refuse(mapped.record, mapped.problems, item, mapped.stage)
                        continue
                    if pipeline.pivot is not None:
                        key = self.mapper.key_of(mapped.row)
                        pivoted.pop(key, None)  # in the order of each key's last sample
                        pivoted[key] = mapped.row
                        continue
                    hashes.append(pipeline.hashed(mapped.row))
                    rows.append(mapped.row)
        for row in pivoted.values():
            hashes.append(pipeline.hashed(row))
            rows.append(row)
        return rows, hashes
