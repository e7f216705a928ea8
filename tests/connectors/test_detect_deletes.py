"""``detect_deletes: key_scan``: incremental database sources see rows deleted upstream.

Against the local PostgreSQL and MariaDB servers as sources, with the store on SQLite and
on PostgreSQL: every ``delete_scan_every``-th run reads the source's key columns, and the
target rows whose key is gone are deleted (or soft-deleted), counted in records_deleted,
only after a complete scan in which every key could be told.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest

from factorysync import services
from factorysync.engine.runner import Runner
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.conftest import write_json
from tests.connectors.conftest import SourceServer
from tests.engine.test_runner import counts, json_source, register

_names = itertools.count()


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request: pytest.FixtureRequest) -> SourceServer:
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
        return request.getfixturevalue("pg_source")  # type: ignore[no-any-return]
    request.applymarker(pytest.mark.mariadb)
    return request.getfixturevalue("maria_source")  # type: ignore[no-any-return]


def ts(i: int) -> str:
    return f"2026-01-05 {8 + i // 60:02d}:{i % 60:02d}:00"


def line_output(db: SourceServer, ids: range) -> str:
    """A table of production counts: id, line_code, ts (the cursor), qty."""
    name = f"dd_{os.getpid()}_{next(_names)}"
    text_type = "TEXT" if db.dialect == "postgresql" else "VARCHAR(16)"
    db.execute(
        f"CREATE TABLE {name} (id BIGINT NOT NULL, line_code {text_type}, "
        "ts TIMESTAMP NULL, qty INTEGER)"
    )
    add_rows(db, name, ids)
    return name


def add_rows(db: SourceServer, table: str, ids: range, line: str = "'A'") -> None:
    values = ", ".join(f"({i}, {line}, '{ts(i)}', {i * 10})" for i in ids)
    db.execute(f"INSERT INTO {table} (id, line_code, ts, qty) VALUES {values}")


def source(db: SourceServer, table: str, **mapping: Any) -> dict[str, Any]:
    return {
        "source_id": table,
        "name": table,
        "source_type": "database",
        "connections": [
            {"connection_config": db.source(table=table), "authentication_config": db.auth}
        ],
        "mappings": [
            {
                "target_table": table,
                "sync_strategy": "incremental",
                "mapping_config": {
                    "primary_key": ["id"],
                    "cursor_field": "ts",
                    "detect_deletes": "key_scan",
                    **mapping,
                },
            }
        ],
    }


def ids_in(store: Store, table: str, *, live: bool = True) -> list[int]:
    """Ids of the target's rows (``live=False``: soft-deleted ones too)."""
    with store.connect() as conn:
        rows = read_rows(conn, table, include_deleted=not live)
    return sorted(int(r["id"]) for r in rows)


def run_details(store: Store, run_id: int) -> dict[str, Any]:
    run = services.run_record(store, run_id)
    assert run is not None
    return run["details"] or {}


def test_rows_deleted_upstream_disappear_at_the_scan(store: Store, server: SourceServer) -> None:
    table = line_output(server, range(1, 21))
    register(store, source(server, table, delete_scan_every=2))
    runner = Runner(store)
    first = runner.sync(table)
    assert first.sync_status == "success", first.error_message
    assert counts(first) == (20, 0, 0)

    server.execute(f"DELETE FROM {table} WHERE id IN (3, 7, 11)")
    server.execute(f"UPDATE {table} SET qty = 999, ts = '2026-01-06 00:00:00' WHERE id = 15")
    second = runner.sync(table)  # the 2nd run: the scan is due
    assert second.sync_status == "success", second.error_message
    assert counts(second) == (0, 1, 3)
    assert ids_in(store, table) == [i for i in range(1, 21) if i not in (3, 7, 11)]
    assert run_details(store, second.run_id)["key_scan"] == {table: {"scanned": 17, "deleted": 3}}

    server.execute(f"DELETE FROM {table} WHERE id = 1")
    third = runner.sync(table)  # not due: the row stays for now
    assert counts(third) == (0, 0, 0) and 1 in ids_in(store, table)
    assert "key_scan" not in run_details(store, third.run_id)
    fourth = runner.sync(table)
    assert counts(fourth) == (0, 0, 1) and 1 not in ids_in(store, table)
    assert len(ids_in(store, table)) == 16


def test_explicit_key_soft_delete_and_unknown_keys(store: Store, server: SourceServer) -> None:
    table = line_output(server, range(1, 11))
    mapping = {
        "primary_key": ["line", "id"],
        "fields": {
            "line": "line_code",
            "id": {"from": "id", "type": "integer"},
            "ts": "ts",
            "qty": "qty",
        },
        "delete_mode": "soft",
        "delete_scan_every": 1,
    }
    register(store, source(server, table, **mapping))
    runner = Runner(store)
    assert counts(runner.sync(table)) == (10, 0, 0)

    server.execute(f"DELETE FROM {table} WHERE id = 4")
    soft = runner.sync(table)
    assert counts(soft) == (0, 0, 1)
    # Soft: the row stays, marked deleted; the API and dashboards leave it out.
    assert 4 in ids_in(store, table, live=False) and 4 not in ids_in(store, table)
    assert counts(runner.sync(table)) == (0, 0, 0)  # marked once, not again

    # A row of the source whose key cannot be told could be any row: nothing is deleted.
    add_rows(server, table, range(50, 51), line="NULL")
    server.execute(f"DELETE FROM {table} WHERE id = 5")
    doubt = runner.sync(table)
    assert doubt.sync_status == "success", doubt.error_message
    assert doubt.records_deleted == 0 and 5 in ids_in(store, table)
    scan = run_details(store, doubt.run_id)["key_scan"][table]
    assert scan["deleted"] == 0 and "1 source row(s)" in scan["skipped"]
    assert "no row was deleted" in scan["skipped"]

    server.execute(f"DELETE FROM {table} WHERE id = 50")
    assert runner.sync(table).records_deleted == 1
    assert ids_in(store, table) == [1, 2, 3, 6, 7, 8, 9, 10]


def test_a_failed_scan_deletes_nothing(store: Store, pg_source: SourceServer) -> None:
    table = line_output(pg_source, range(1, 6))
    register(store, source(pg_source, table, delete_scan_every=1))
    runner = Runner(store)
    assert counts(runner.sync(table)) == (5, 0, 0)
    # The key column is renamed upstream and a row is deleted: the scan cannot read keys.
    pg_source.execute(f"ALTER TABLE {table} RENAME COLUMN id TO row_id")
    pg_source.execute(f"DELETE FROM {table} WHERE row_id = 2")
    failed = runner.sync(table)
    assert failed.sync_status == "failed"
    assert "key column 'id' not found for detect_deletes" in (failed.error_message or "")
    assert ids_in(store, table) == [1, 2, 3, 4, 5]


def test_key_scan_needs_a_database_connection(store: Store, data_dir: Path) -> None:
    path = write_json(data_dir / "log.json", [{"id": 1, "ts": "2026-01-05T08:00:00+07:00"}])
    register(
        store,
        json_source(
            "log",
            path,
            primary_key="id",
            cursor_field="ts",
            sync_strategy="incremental",
            detect_deletes="key_scan",
        ),
    )
    result = Runner(store).sync("log")
    assert result.sync_status == "failed"
    assert result.error_message == (
        "mapping 'log': detect_deletes 'key_scan' needs a database connection, not 'file'"
    )


def test_key_scan_declaration_is_checked() -> None:
    from factorysync.errors import ConfigError
    from factorysync.intake import parse_sources

    raw = {
        "source_id": "x",
        "name": "x",
        "source_type": "database",
        "connections": [
            {
                "connection_config": {
                    "dialect": "postgresql",
                    "host": "h",
                    "database": "d",
                    "table": "t",
                }
            }
        ],
        "mappings": [
            {
                "target_table": "x",
                "sync_strategy": "incremental",
                "mapping_config": {"cursor_field": "ts", "detect_deletes": "key_scan"},
            }
        ],
    }
    with pytest.raises(ConfigError) as info:
        parse_sources({"sources": [raw]})
    assert "detect_deletes 'key_scan' needs a primary_key" in str(info.value.problems)
    raw["mappings"][0]["mapping_config"] |= {"primary_key": "id", "delete_scan_every": 0}
    with pytest.raises(ConfigError) as info:
        parse_sources({"sources": [raw]})
    assert "delete_scan_every" in str(info.value.problems)


def test_reset_reads_a_database_source_again(store: Store, server: SourceServer) -> None:
    table = line_output(server, range(1, 31))
    register(store, source(server, table, delete_scan_every=1000))
    runner = Runner(store)
    assert counts(runner.sync(table)) == (30, 0, 0)
    again = runner.sync(table)  # from the cursor: the rows of the newest timestamp only
    assert again.records_processed < 30 and counts(again) == (0, 0, 0)

    services.reset_source(store, table, reset_by="test")
    full = runner.sync(table)
    assert full.sync_status == "success", full.error_message
    assert (full.records_processed, *counts(full)) == (30, 0, 0, 0)


def test_a_naive_timestamp_key_is_scanned_in_the_connection_zone(
    store: Store, server: SourceServer
) -> None:
    """Scanned keys are mapped as the rows were: a key timestamp without an offset is in
    the connection's ``timezone``, so no row that is still there counts as gone."""
    table = line_output(server, range(1, 11))
    declared = source(server, table, primary_key=["line_code", "ts"], delete_scan_every=1)
    declared["connections"][0]["connection_config"]["timezone"] = "Asia/Jakarta"
    declared["mappings"][0]["mapping_config"]["cursor_field"] = "id"
    register(store, declared)
    runner = Runner(store)
    first = runner.sync(table)
    assert first.sync_status == "success", first.error_message
    assert counts(first) == (10, 0, 0)
    with store.connect() as conn:
        stamps = sorted(r["ts"] for r in read_rows(conn, table))
    assert stamps[0].isoformat().startswith("2026-01-05T01:01:00")  # 08:01 in Jakarta

    server.execute(f"DELETE FROM {table} WHERE id IN (2, 5)")
    second = runner.sync(table)  # a scan every run
    assert second.sync_status == "success", second.error_message
    assert counts(second) == (0, 0, 2)
    assert ids_in(store, table) == [1, 3, 4, 6, 7, 8, 9, 10]
