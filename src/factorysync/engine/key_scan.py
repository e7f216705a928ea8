"""Delete detection for incremental mappings of database sources (``detect_deletes``).

An incremental read asks the source only for rows at or after its cursor, so a row
deleted upstream is never seen. With ``mapping_config.detect_deletes: key_scan``, every
``delete_scan_every``-th successful run of the mapping (default 10, counted in the sync
state) also reads the primary key columns of the whole source — a ``SELECT`` of those
columns only — after its incremental read. The keys are mapped as the mapping maps a
record and kept in a temporary table; only once the scan has read every row does the
run's final transaction delete this source's target rows whose key the scan did not see
(or mark them, with ``delete_mode: soft``). They count as ``records_deleted``.

Nothing is deleted on doubt: a scan that fails fails the run, and a source row whose key
cannot be told (empty, or not convertible to the key column's type) could stand for any
target row, so that run deletes nothing and says why (history details, infolog).
Rows a mapping's ``where`` leaves out count as present: the scan finds rows that are
gone, not rows that stopped matching.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    MetaData,
    Table,
    Text,
    delete,
    exists,
    insert,
    text,
    update,
)

from factorysync.config import MappingDecl
from factorysync.engine.history import RunResult
from factorysync.engine.mapping import Mapper, MappingConfig
from factorysync.engine.state import load_state, save_state
from factorysync.errors import ConfigError, MappingError
from factorysync.kinds import to_kind
from factorysync.observability import infolog
from factorysync.store.capture import capture_deleted, capture_rows
from factorysync.store.targets import KIND_TYPES, TargetTable
from factorysync.store.types import UTCDateTime, utcnow

SCAN_STATE_KEY = "delete_scan"  # {"runs": runs since the last scan, "scanned_at", "run_id"}


class KeyScan:
    """The key scan of one mapping in one run (made in a transaction of ``conn``)."""

    def __init__(
        self,
        conn: Connection,
        source_id: str,
        mapping_id: int,
        decl: MappingDecl,
        target: TargetTable,
    ) -> None:
        config = decl.mapping_config
        self.conn, self.source_id, self.mapping_id = conn, source_id, mapping_id
        self.table_name, self.target = decl.target_table, target
        self.key = list(config.primary_key)
        self.every = config.delete_scan_every
        self.soft = config.delete_mode == "soft"
        # A mapper of the key columns only: scanned keys take the form the rows have.
        fields = {k: v for k, v in (config.fields or {}).items() if k in self.key}
        auto = config.fields is None or config.include_unmapped
        self.mapper = Mapper(
            MappingConfig(
                primary_key=self.key,
                fields=fields or (None if auto else fields),
                include_unmapped=bool(fields) and auto,
            )
        )
        state = load_state(conn, source_id, mapping_id, SCAN_STATE_KEY) or {}
        self.runs = int(state.get("runs", 0)) + 1  # this run included
        self.kinds: dict[str, str] = {}
        self.keys_name = f"_fs_keys_{re.sub(r'[^a-z0-9_]', '_', decl.target_table)}"[:63]
        self.created = False
        self.complete = False
        self.scanned = 0
        self.unknown = 0  # source rows whose key could not be told

    @property
    def due(self) -> bool:
        return self.runs >= self.every

    def source_columns(self) -> list[str]:
        """The source columns holding the key (auto-mapped ones by their target name,
        which the connector matches by snake_case)."""
        names: list[str] = []
        for column in self.mapper.columns:
            if column.spec.value is None and column.path and str(column.path[0]) not in names:
                names.append(str(column.path[0]))
        mapped = {c.name for c in self.mapper.columns}
        names += [k for k in self.key if k not in mapped and k not in names]
        return names

    def _keys_table(self) -> Table:
        columns = [Column(k, KIND_TYPES[self.kinds[k]]) for k in self.key]
        return Table(self.keys_name, MetaData(), *columns, prefixes=["TEMPORARY"])

    def scan(self, scan_keys: Any) -> None:
        """Read every key of the source into the temporary table (a transaction a batch)."""
        conn = self.conn
        with conn.begin():
            self.target.reload()
            if not self.target.existing:
                return  # no rows of this source yet: nothing could be gone
            self.kinds = {k: self.target.existing[k] for k in self.key}
            conn.execute(text(f"DROP TABLE IF EXISTS {self._quote(self.keys_name)}"))
            self._keys_table().create(conn)
            self.created = True
        keys = self._keys_table()
        for batch in scan_keys(self.source_columns()):
            rows = []
            for record in batch:
                row = self._key_row(record)
                if row is None:
                    self.unknown += 1
                else:
                    rows.append(row)
            self.scanned += len(batch)
            if rows:
                with conn.begin():
                    conn.execute(insert(keys), rows)
        with conn.begin():
            Index(f"{self.keys_name[:55]}_key", *keys.c).create(conn)
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"ANALYZE {self._quote(self.keys_name)}"))
        self.complete = True

    def _key_row(self, record: dict[str, Any]) -> dict[str, Any] | None:
        try:
            mapped = self.mapper.map(record)
        except MappingError:
            return None
        row = {}
        for k in self.key:
            fits, value = to_kind(mapped.get(k), self.kinds[k])
            if value is None or not fits:
                return None
            row[k] = value
        return row

    def finish(self, run_id: int, now: datetime) -> dict[str, Any] | None:
        """In the run's final transaction: delete the rows whose key is gone (after a
        complete scan with every key known) and count the run. Returns what the scan
        did, for the run's details, or None when no scan was due."""
        conn = self.conn
        if not self.complete:
            save_state(
                conn, self.source_id, self.mapping_id, SCAN_STATE_KEY, {"runs": self.runs}, run_id
            )
            return None
        deleted = 0
        outcome: dict[str, Any] = {"scanned": self.scanned}
        if self.unknown:
            outcome["skipped"] = (
                f"{self.unknown} source row(s) of {self.table_name!r} have a key that cannot "
                "be told (empty, or not of the key column's type): no row was deleted"
            )
            infolog.record(
                conn,
                "warning",
                "sync.key_scan_skipped",
                outcome["skipped"],
                source_id=self.source_id,
                run_id=run_id,
                details={"target_table": self.table_name, "unknown": self.unknown},
            )
        elif self.created:
            deleted = self._delete_gone(run_id, now)
        outcome["deleted"] = deleted
        state = {"runs": 0, "scanned_at": utcnow().isoformat(), "run_id": run_id}
        save_state(conn, self.source_id, self.mapping_id, SCAN_STATE_KEY, state, run_id)
        return outcome

    def _delete_gone(self, run_id: int, now: datetime) -> int:
        target = Table(
            self.table_name,
            MetaData(),
            *(Column(k, KIND_TYPES[self.kinds[k]]) for k in self.key),
            Column("_source_id", Text()),
            Column("_run_id", BigInteger()),
            Column("_synced_at", UTCDateTime()),
            Column("_deleted_at", UTCDateTime()),
        )
        keys = self._keys_table()
        gone = ~exists().where(*(keys.c[k] == target.c[k] for k in self.key))
        mine = target.c._source_id == self.source_id
        if self.soft:
            stmt: Any = (
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
                table=self.table_name,
                source_id=self.source_id,
                run_id=run_id,
                now=now,
            )
            stmt = delete(target).where(mine, gone)
        deleted = int(self.conn.execute(stmt).rowcount)
        if deleted and self.soft:
            capture_rows(self.conn, self.table_name, self.source_id, run_id, now)
        return deleted

    def drop(self) -> None:
        """Drop the temporary table (in the caller's transaction)."""
        if self.created:
            self.conn.execute(text(f"DROP TABLE IF EXISTS {self._quote(self.keys_name)}"))
            self.created = False

    def _quote(self, name: str) -> str:
        return self.conn.dialect.identifier_preparer.quote(name)


def key_scans(
    conn: Connection, connector: Any, runs: list[Any], *, first_load: bool = False
) -> list[KeyScan]:
    """After a run's incremental reads: the key scan of each mapping that asks for one
    (``runs``: the run's mappings, with source_id, mapping_id, decl and target), scanned
    when due. ``first_load``: the run writes the target's first rows in the transaction
    open on ``conn``; it counts as a run, and nothing is scanned (nothing can be gone).
    A connection type without key scans is a configuration error."""
    wanted = [
        m
        for m in runs
        if m.decl.sync_strategy == "incremental"
        and m.decl.mapping_config.detect_deletes == "key_scan"
    ]
    if not wanted:
        return []
    scan_keys = getattr(connector, "scan_keys", None)
    if scan_keys is None:
        raise ConfigError(
            f"mapping {wanted[0].decl.target_table!r}: detect_deletes 'key_scan' needs a "
            f"database connection, not {connector.type_name!r}"
        )
    with nullcontext() if first_load else conn.begin():
        scans = [KeyScan(conn, m.source_id, m.mapping_id, m.decl, m.target) for m in wanted]
    if not first_load:
        for scan in scans:
            if scan.due:
                scan.scan(scan_keys)
    return scans


def finish_scans(scans: list[KeyScan], result: RunResult) -> None:
    """In the run's final transaction: each scan's deletes, counted in ``result``."""
    for scan in scans:
        found = scan.finish(result.run_id, utcnow())
        if found is not None:
            result.records_deleted += found["deleted"]
            result.details.setdefault("key_scan", {})[scan.table_name] = found
