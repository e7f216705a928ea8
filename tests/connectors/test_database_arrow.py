"""PostgreSQL sources on the columnar path: COPY into Arrow gives the row path's values."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from factorysync.connectors.base import ReadRequest
from factorysync.engine.runner import Runner
from factorysync.store.store import Store
from tests.connectors.conftest import SourceServer
from tests.connectors.test_database import db_source
from tests.engine.test_runner import counts, register, table_rows

JAKARTA = ZoneInfo("Asia/Jakarta")
_names = itertools.count()

# Every type the COPY path reads, with NULLs, empty text and CSV-special characters.
TYPED_TABLE = """
CREATE TABLE {name} (
    id BIGINT PRIMARY KEY, small SMALLINT, medium INTEGER, ratio REAL, value DOUBLE PRECISION,
    note TEXT, code VARCHAR(8), fixed CHAR(4), ok BOOLEAN, day DATE, at TIMESTAMPTZ,
    local_at TIMESTAMP, uid UUID
)
"""
TYPED_ROWS = """
INSERT INTO {name} VALUES
 (1, 1, 100, 1.1, 0.1, 'plain', 'A1', 'ab', true, '2026-01-05', '2026-01-05 06:00:00+07',
  '2026-01-05 06:00:00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
 (2, NULL, NULL, NULL, NULL, '', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, -5, 7, 3.25, 1e-300, 'comma, "quote"' || chr(10) || 'newline', 'é€', 'x', false,
  '1999-12-31', '2026-03-29 01:30:00.123456+00', '2026-01-05 23:59:59.5',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'),
 (4, 0, 0, 'NaN', 'Infinity', 'NULL', '', '    ', NULL, NULL, NULL, NULL, NULL)
"""


def typed_table(pg: SourceServer) -> str:
    name = f"typed_{next(_names)}"
    pg.execute(TYPED_TABLE.format(name=name), TYPED_ROWS.format(name=name))
    return name


def comparable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, float) and value != value:
        return "nan"
    return value


def test_copy_read_equals_the_row_read(pg_source: SourceServer, make: Any) -> None:
    table = typed_table(pg_source)
    config = pg_source.source(table=table, timezone="Asia/Jakarta")
    rows = [
        r for b in make("database", config, pg_source.auth).read(ReadRequest()) for r in b.records
    ]
    got = list(make("database", config, pg_source.auth).read(ReadRequest(columnar=True)))
    assert got and all(b.arrow is not None and not b.records for b in got)
    columns = [r for b in got for r in b.arrow.to_pylist()]
    assert len(columns) == len(rows) == 4
    for fast, slow in zip(sorted(columns, key=lambda r: r["id"]), rows, strict=True):
        assert {k: comparable(v) for k, v in fast.items()} == {
            k: comparable(v) for k, v in slow.items()
        }, (fast, slow)
    # A TIMESTAMP without zone is read in the connection's time zone, as on the row path.
    first = min(columns, key=lambda r: r["id"])
    assert first["local_at"] == datetime(2026, 1, 5, 6, tzinfo=JAKARTA)
    assert first["note"] == "plain" and columns[1]["note"] == ""


def test_other_types_keep_the_row_path(pg_source: SourceServer, make: Any) -> None:
    pg_source.execute(
        "CREATE TABLE IF NOT EXISTS priced (id INT PRIMARY KEY, amount NUMERIC(10,3), doc JSONB, "
        "clock TIME)",
        "INSERT INTO priced VALUES (1, 12.5, '{\"a\": [1]}') ON CONFLICT DO NOTHING",
    )
    connector = make("database", pg_source.source(table="priced"), pg_source.auth)
    (batch,) = list(connector.read(ReadRequest(columnar=True)))
    assert batch.arrow is None and batch.records[0]["doc"] == {"a": [1]}


def test_incremental_copy_read_pushes_the_cursor_down(pg_source: SourceServer, make: Any) -> None:
    name = f"lots_{next(_names)}"
    pg_source.execute(
        f"CREATE TABLE {name} (id INT PRIMARY KEY, lot INT, note TEXT)",
        f"INSERT INTO {name} SELECT g, g / 10, 'a%b' FROM generate_series(1, 100) g",
    )
    connector = make("database", pg_source.source(table=name), pg_source.auth)
    request = ReadRequest(strategy="incremental", cursor_path="lot", cursor_value=9, columnar=True)
    got = list(connector.read(request))
    ids = [r["id"] for b in got for r in b.arrow.to_pylist()]
    assert sorted(ids) == list(range(90, 101)) and all(b.cursor_ordered for b in got)


def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    drop = {"_source_id", "_run_id", "_synced_at", "_row_hash"}
    return sorted(
        ({k: comparable(v) for k, v in r.items() if k not in drop} for r in rows),
        key=lambda r: r["id"],
    )


@pytest.mark.parametrize("delete_mode", ["hard", "soft"])
def test_counts_and_values_match_the_row_path(
    pg_source: SourceServer, store: Store, delete_mode: str
) -> None:
    """First load, unchanged re-sync, changed/new/deleted rows, a soft-deleted row coming
    back: the columnar source and a row-path twin (a validation rule that never fails
    forces the row path) give the same counts and the same stored rows."""
    table = typed_table(pg_source)
    slow_rule = {"validate": [{"field": "medium", "rule": "min", "value": -1e18}]}
    register(
        store,
        db_source("fast", pg_source, table, delete_mode=delete_mode),
        db_source("slow", pg_source, table, delete_mode=delete_mode, **slow_rule),
    )
    runner = Runner(store)
    steps = [
        [],
        [],
        [
            f"UPDATE {table} SET note = 'changed', at = at + interval '1 hour' WHERE id = 1",
            f"DELETE FROM {table} WHERE id = 2",
            f"INSERT INTO {table} (id, note) VALUES (5, 'new')",
        ],
        [f"INSERT INTO {table} (id, note) VALUES (2, '')"],
    ]
    seen = []
    for statements in steps:
        if statements:
            pg_source.execute(*statements)
        fast, slow = runner.sync("fast"), runner.sync("slow")
        assert fast.sync_status == slow.sync_status == "success", (fast, slow)
        assert counts(fast) == counts(slow)
        seen.append(counts(fast))
        live_fast = [r for r in table_rows(store, "fast") if r.get("_deleted_at") is None]
        live_slow = [r for r in table_rows(store, "slow") if r.get("_deleted_at") is None]
        assert strip(live_fast) == strip(live_slow)
    # id 2 comes back: inserted after a hard delete, updated (revived) after a soft one.
    back = (1, 0, 0) if delete_mode == "hard" else (0, 1, 0)
    assert seen == [(4, 0, 0), (0, 0, 0), (1, 1, 1), back]
