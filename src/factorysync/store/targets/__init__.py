"""Target tables: created and evolved from mapped rows, written through a staging table.

Every target table carries provenance columns next to the mapped ones:

    _source_id   the source that owns the row (several sources may share a table)
    _run_id      the run that last inserted or changed the row
    _synced_at   when that happened
    _row_hash    hash of the mapped values, so an unchanged row is never counted as updated
    _row_key     synthetic identity when the mapping has no primary key
    _deleted_at  soft-delete marker (``delete_mode: soft``)

A run first writes its rows into a private staging table, then merges them into the
target in one transaction with set-based SQL that also yields the exact
inserted/updated/deleted counts. Column types are inferred from values when the mapping
does not fix them, and widened (integer → float → string, anything → json) when later
values do not fit.

The modules, from the bottom up; each imports only those above it in this list, and
:class:`TargetTable` is built in layers, one subclass per module:

    kinds      each column kind's SQLAlchemy type (the kinds themselves: factorysync.kinds)
    changes    schema changes and the error ``schema_contract: freeze`` raises
    columns    TargetColumns: a table's key, columns and run state; SQLAlchemy tables
    evolution  EvolvingTarget: the table created, columns added and widened (DDL)
    staging    StagingTarget: the staging table, the direct first load, kept keys
    merge      TargetTable: staged rows merged with exact counts; the realtime upsert
    read       typed rows and counts read back

The columnar writers (:mod:`factorysync.store.bulk`) stage Arrow batches into the same
tables; they use the kinds and a :class:`TargetTable`, which uses none of them.
"""

# The kind helpers are factorysync.kinds' own (importers take them from there); the
# package still hands them on as part of its surface, without a second hop.
from factorysync.kinds import (
    ISO_DATE,
    ISO_DATETIME,
    PG_TYPES,
    infer_kind,
    kind_of_type,
    kind_of_type_name,
    merge_kinds,
    row_hash,
    to_kind,
)
from factorysync.store.targets.changes import SchemaChange, SchemaContractError
from factorysync.store.targets.columns import check_target_name
from factorysync.store.targets.kinds import KIND_TYPES
from factorysync.store.targets.merge import MERGE_WORK_MEM, MergeCounts, TargetTable
from factorysync.store.targets.read import count_rows, read_rows, target_table

__all__ = [
    "ISO_DATE",
    "ISO_DATETIME",
    "KIND_TYPES",
    "MERGE_WORK_MEM",
    "PG_TYPES",
    "MergeCounts",
    "SchemaChange",
    "SchemaContractError",
    "TargetTable",
    "check_target_name",
    "count_rows",
    "infer_kind",
    "kind_of_type",
    "kind_of_type_name",
    "merge_kinds",
    "read_rows",
    "row_hash",
    "target_table",
    "to_kind",
]
