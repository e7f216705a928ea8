"""Database sources against SQLite, the local PostgreSQL and the local MariaDB servers."""

from __future__ import annotations

import itertools
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from factorysync.connectors.base import ReadRequest
from factorysync.connectors.database import engine_for
from factorysync.connectors.registry import validate_connection_config
from factorysync.engine.runner import Runner
from factorysync.errors import ConnectorFatal, ConnectorRetriable
from factorysync.store.store import Store
from tests.connectors.conftest import SourceServer, batches, records
from tests.engine.test_runner import counts, register, table_rows

JAKARTA = ZoneInfo("Asia/Jakarta")
START = datetime(2026, 1, 5, tzinfo=JAKARTA)
_names = itertools.count()


def production_table(db: SourceServer, rows: int, *, null_lot: bool = False) -> str:
    """A table of ``rows`` production records; ten rows share each ``lot`` and ``ts``.

    id, machine_id, ts (one second per lot), lot, qty_good, temperature_c, status.
    """
    name = f"prod_{next(_names)}"
    if db.dialect == "postgresql":
        db.execute(
            f"CREATE TABLE {name} (id BIGINT PRIMARY KEY, machine_id TEXT, ts TIMESTAMPTZ, "
            "lot BIGINT, qty_good INTEGER, temperature_c DOUBLE PRECISION, status TEXT)",
            f"INSERT INTO {name} SELECT g, 'M-' || lpad((g % 50)::text, 3, '0'), "
            "timestamptz '2026-01-05 00:00:00+07' + (g / 10) * interval '1 second', g / 10, "
            "g % 100, 20 + (g % 7) * 0.5, CASE WHEN g % 13 = 0 THEN 'DOWN' ELSE 'RUN' END "
            f"FROM generate_series(1, {rows}) AS g",
        )
    elif db.dialect == "mariadb":
        db.execute(
            f"CREATE TABLE {name} (id BIGINT PRIMARY KEY, machine_id VARCHAR(16), "
            "ts DATETIME, lot BIGINT, qty_good INT, temperature_c DOUBLE, status VARCHAR(8))",
            f"INSERT INTO {name} SELECT seq, CONCAT('M-', LPAD(seq % 50, 3, '0')), "
            "TIMESTAMP '2026-01-05 00:00:00' + INTERVAL (seq DIV 10) SECOND, seq DIV 10, "
            "seq % 100, 20 + (seq % 7) * 0.5, IF(seq % 13 = 0, 'DOWN', 'RUN') "
            f"FROM seq_1_to_{rows}",
        )
    else:
        db.execute(
            f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, machine_id TEXT, ts TEXT, "
            "lot INTEGER, qty_good INTEGER, temperature_c REAL, status TEXT)",
            f"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {rows}) "
            f"INSERT INTO {name} SELECT g, 'M-' || substr('00' || (g % 50), -3), "
            "strftime('%Y-%m-%dT%H:%M:%S+07:00', '2026-01-05 00:00:00', (g / 10) || ' seconds'), "
            "g / 10, g % 100, 20 + (g % 7) * 0.5, CASE WHEN g % 13 = 0 THEN 'DOWN' ELSE 'RUN' END "
            "FROM s",
        )
    if null_lot:
        db.execute(f"UPDATE {name} SET lot = NULL, ts = NULL WHERE id = 7")
    return name


def db_source(source_id: str, db: SourceServer, table: str, **mapping: Any) -> dict[str, Any]:
    strategy = mapping.pop("sync_strategy", "full")
    return {
        "source_id": source_id,
        "name": source_id,
        "source_type": "database",
        "connections": [
            {"connection_config": db.source(table=table), "authentication_config": db.auth}
        ],
        "mappings": [
            {
                "target_table": source_id,
                "sync_strategy": strategy,
                "mapping_config": {"primary_key": "id", **mapping},
            }
        ],
    }


# -- reading ------------------------------------------------------------------------------
def test_full_read_streams_100k_rows(source_db: SourceServer, make: Any) -> None:
    table = production_table(source_db, 100_000)
    connector = make("database", source_db.source(table=table), source_db.auth, 5000)
    assert f"{table}, 7 column(s)" in connector.check().message
    tracemalloc.start()
    try:
        seen: set[int] = set()
        total_qty = 0
        sizes = []
        for batch in connector.read(ReadRequest()):
            sizes.append(len(batch.records))
            for row in batch.records:
                seen.add(row["id"])
                total_qty += row["qty_good"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(seen) == 100_000 and max(sizes) <= 5000
    assert total_qty == sum(g % 100 for g in range(1, 100_001))
    # A client-side cursor holds all 100k rows (~60 MB); streaming holds one batch.
    assert peak < 25_000_000, f"peak {peak / 1e6:.1f} MB"


def test_incremental_pushdown_reads_ties_again(source_db: SourceServer, make: Any) -> None:
    table = production_table(source_db, 100_000)
    connector = make("database", source_db.source(table=table), source_db.auth, 5000)
    got = batches(connector, strategy="incremental", cursor_path="lot", cursor_value=9_000)
    rows = [r for b in got for r in b.records]
    # lot 9000 holds ids 90000..90009; ids 90000..100000 are at or after the cursor.
    assert len(rows) == 10_001
    assert {r["id"] for r in rows if r["lot"] == 9_000} == set(range(90_000, 90_010))
    assert all(b.cursor_ordered for b in got)
    lots = [r["lot"] for r in rows]
    assert lots == sorted(lots)
    first = records(connector, strategy="incremental", cursor_path="lot", cursor_value=None)
    assert len(first) == 100_000


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_time_cursor_pushed_down(dialect: str, request: pytest.FixtureRequest, make: Any) -> None:
    db = request.getfixturevalue("pg_source" if dialect == "postgresql" else "maria_source")
    table = production_table(db, 2_000)
    # MariaDB's DATETIME values are plant-local time: the connection says so.
    connector = make("database", db.source(table=table, timezone="Asia/Jakarta"), db.auth)
    cursor = (START + timedelta(seconds=150)).astimezone(UTC)  # lot 150: ids 1500..1509
    rows = records(connector, strategy="incremental", cursor_path="ts", cursor_value=cursor)
    assert min(r["id"] for r in rows) == 1_500 and len(rows) == 501
    # Naive DATETIME values (MariaDB) are read in the connection's time zone.
    assert rows[0]["ts"] == cursor and rows[0]["ts"].tzinfo is not None


def test_query_source_and_cursor_by_column_name(source_db: SourceServer, make: Any) -> None:
    table = production_table(source_db, 500)
    query = f"SELECT id, machine_id AS machineId, lot, qty_good FROM {table} WHERE status = 'RUN'"
    connector = make("database", source_db.source(query=query), source_db.auth)
    assert "the query, 4 column(s)" in connector.check().message
    rows = records(connector)
    assert len(rows) == 500 - 500 // 13 and set(rows[0]) >= {"id", "lot", "qty_good"}
    tail = records(connector, strategy="incremental", cursor_path="lot", cursor_value=45)
    assert tail and min(r["lot"] for r in tail) == 45


def test_discover_uses_declared_types(pg_source: SourceServer, make: Any) -> None:
    table = production_table(pg_source, 50)
    connector = make("database", pg_source.source(table=table), pg_source.auth)
    fields = {f.name: f for f in connector.discover(limit=20)}
    assert fields["id"].kind == "integer" and not fields["id"].nullable
    assert fields["ts"].kind == "datetime" and fields["temperature_c"].kind == "float"
    assert fields["machine_id"].samples[:2] == ["M-001", "M-002"]


def test_values_become_storable(pg_source: SourceServer, make: Any) -> None:
    pg_source.execute(
        "CREATE TABLE oddities (id INT PRIMARY KEY, at TIMESTAMP, day DATE, t TIME, "
        "amount NUMERIC(10,3), doc JSONB, raw BYTEA, span INTERVAL, uid UUID)",
        "INSERT INTO oddities VALUES (1, '2026-01-05 08:00', '2026-01-05', '07:30', 12.5, "
        "'{\"a\": [1, 2]}', '\\x0102', '90 seconds', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')",
    )
    connector = make("database", pg_source.source(table="oddities"), pg_source.auth)
    (row,) = records(connector)
    assert row["at"] == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # no timezone: UTC
    assert row["day"].isoformat() == "2026-01-05" and row["t"] == "07:30:00"
    assert row["amount"] == Decimal("12.500") and row["doc"] == {"a": [1, 2]}
    assert row["raw"] == "0102" and row["span"] == 90.0
    assert row["uid"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"


def test_sessions_are_read_only(pg_source: SourceServer, make: Any) -> None:
    pg_source.execute("CREATE SEQUENCE IF NOT EXISTS counter")
    query = "SELECT nextval('counter') AS n"
    connector = make("database", pg_source.source(query=query), pg_source.auth)
    with pytest.raises(ConnectorFatal, match="read-only transaction"):
        records(connector)


def test_pools_are_shared_and_sized(pg_source: SourceServer, make: Any, settings: Any) -> None:
    from factorysync.connectors.base import ConnectorContext

    config = pg_source.source(table="x", connection_pool_size=3)
    a, b = make("database", config, pg_source.auth), make("database", config, pg_source.auth)
    context = ConnectorContext("t", settings)
    engine = engine_for(a.config, a.auth, context)  # type: ignore[arg-type]
    assert engine is engine_for(b.config, b.auth, context)  # type: ignore[arg-type]
    assert engine.pool.size() == 3
    other = make("database", {**config, "connection_pool_size": 4}, pg_source.auth)
    assert engine_for(other.config, other.auth, context) is not engine  # type: ignore[arg-type]


# -- errors -------------------------------------------------------------------------------
def test_dropped_table_is_a_clear_error(source_db: SourceServer, store: Store) -> None:
    table = production_table(source_db, 30)
    register(store, db_source("dropped", source_db, table))
    runner = Runner(store)
    assert counts(runner.sync("dropped")) == (30, 0, 0)
    source_db.execute(f"DROP TABLE {table}")
    failed = runner.sync("dropped")
    assert failed.sync_status == "failed"
    assert f"table '{table}' not found" in failed.error_message
    assert "dropped or renamed" in failed.error_message
    assert len(table_rows(store, "dropped")) == 30


def test_errors_are_classified_without_secrets(maria_source: SourceServer, make: Any) -> None:
    # Accounts belong to the whole server, which other test runs share: a name of our own.
    user, password = f"fs_user_{uuid.uuid4().hex[:12]}", "Pa55-word-never-shown"
    maria_source.execute(
        f"CREATE USER '{user}'@'%' IDENTIFIED BY 'right-one'",
        f"GRANT SELECT ON `{maria_source.config['database']}`.* TO '{user}'@'%'",
    )
    try:
        wrong = make(
            "database", maria_source.source(table="t"), {"username": user, "password": password}
        )
        with pytest.raises(ConnectorFatal) as caught:
            wrong.check()
        assert "Access denied" in str(caught.value) and password not in str(caught.value)
    finally:
        maria_source.execute(f"DROP USER '{user}'@'%'")


def test_connection_errors(pg_source: SourceServer, make: Any) -> None:
    def failure(**config: Any) -> Exception:
        # Generous: the server's answers ("does not exist") come from a backend it starts,
        # slowly on a busy machine; a refused port or an unknown host fail at once anyway.
        connector = make(
            "database", pg_source.source(table="t", connect_timeout=60, **config), pg_source.auth
        )
        with pytest.raises((ConnectorFatal, ConnectorRetriable)) as caught:
            connector.check()
        return caught.value

    host = failure(host="no-such-host.invalid")
    assert isinstance(host, ConnectorFatal) and "unknown host 'no-such-host.invalid'" in str(host)
    refused = failure(port=1)
    assert isinstance(refused, ConnectorRetriable) and "refused" in str(refused).lower()
    database = failure(database="fs_no_such_database")
    assert isinstance(database, ConnectorFatal) and "does not exist" in str(database)
    role = make("database", pg_source.source(table="t"), {"username": "fs_no_such_role"})
    with pytest.raises(ConnectorFatal, match="fs_no_such_role"):
        role.check()


def test_missing_driver_names_the_install_command(make: Any) -> None:
    pytest.importorskip("sqlalchemy")
    import importlib.util

    if importlib.util.find_spec("pymssql") is not None:
        pytest.skip("pymssql is installed")
    connector = make(
        "database",
        {"dialect": "mssql", "host": "127.0.0.1", "database": "mes", "table": "production"},
    )
    with pytest.raises(ConnectorFatal, match=r"pip install 'factorysync\[mssql\]'"):
        connector.check()


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"password": "x"}, "password: not allowed here: credentials belong in authentication"),
        ({"url": "postgresql://u:p@h/db"}, "url: not allowed here"),
        ({"options": "-c x=y"}, "options: not allowed here"),
        ({"table": "prod; DROP TABLE x"}, "is not a plain SQL name"),
        ({"schema": "a.b"}, "is not a plain SQL name"),
        ({"query": "SELECT 1"}, "give exactly one of table or query"),
        ({"table": None, "query": "DELETE FROM t"}, "must be a SELECT"),
        ({"table": None, "query": "SELECT 1; DROP TABLE t"}, "single statement"),
        ({"table": None, "query": "SELECT * FROM t WHERE a = :a"}, "bind parameters (:a)"),
        ({"driver": "pymssql"}, "does not go with dialect 'postgresql'"),
        ({"dialect": "oracle"}, "dialect: Input should be"),
        ({"host": "h/x?sslrootcert=y"}, "is not a host name"),
        ({"dialect": "sqlite", "database": "a.db"}, "sqlite takes no host or port"),
        ({"host": None}, "host is required for postgresql"),
        ({"columns": ["id", "x y"]}, "is not a plain SQL name"),
    ],
)
def test_config_is_validated(config: dict[str, Any], problem: str) -> None:
    base = {"dialect": "postgresql", "host": "db.plant", "database": "mes", "table": "prod"}
    merged = {k: v for k, v in {**base, **config}.items() if v is not None}
    problems = validate_connection_config("database", merged)
    assert any(problem in p for p in problems), problems


# -- syncs through the engine ---------------------------------------------------------------
def test_full_sync_into_the_store(source_db: SourceServer, store: Store) -> None:
    table = production_table(source_db, 1_500)
    register(store, db_source("line_output", source_db, table))
    runner = Runner(store)
    first = runner.sync("line_output")
    assert first.sync_status == "success", first.error_message
    assert counts(first) == (1_500, 0, 0)
    source_db.execute(
        f"UPDATE {table} SET qty_good = 999 WHERE id = 10", f"DELETE FROM {table} WHERE id = 11"
    )
    assert counts(runner.sync("line_output")) == (0, 1, 1)
    stored = {r["id"]: r for r in table_rows(store, "line_output")}
    assert stored[10]["qty_good"] == 999 and 11 not in stored and len(stored) == 1_499


def test_incremental_sync_null_cursor_and_ties(source_db: SourceServer, store: Store) -> None:
    table = production_table(source_db, 1_000, null_lot=True)
    register(
        store,
        db_source("lots", source_db, table, cursor_field="lot", sync_strategy="incremental"),
    )
    runner = Runner(store)
    first = runner.sync("lots")
    assert first.sync_status == "success", first.error_message
    # The row without a cursor is reported (quarantined), not lost silently nor fatal.
    assert (first.records_inserted, first.records_rejected) == (999, 1)
    with store.connect() as conn:
        reasons = conn.execute(text("SELECT reasons FROM data_source_quarantine")).scalar_one()
    assert "cursor_field 'lot' is empty" in str(reasons)
    # Late rows sharing the newest cursor value (100), and a new lot.
    source_db.execute(
        f"INSERT INTO {table} (id, machine_id, lot, qty_good, status) VALUES "
        "(5001, 'M-LATE', 100, 1, 'RUN'), (5002, 'M-LATE', 100, 2, 'RUN'), "
        "(5003, 'M-NEW', 101, 3, 'RUN')"
    )
    again = runner.sync("lots")
    assert again.sync_status == "success", again.error_message
    assert counts(again)[0] == 3
    # Only the last lot was read again (pushed down), not the whole table.
    assert again.records_processed == 1 + 3
    ids = {r["id"] for r in table_rows(store, "lots")}
    assert {5001, 5002, 5003} <= ids and len(ids) == 1_002


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_100k_rows_full_then_incremental(source_db: SourceServer, store: Store) -> None:
    """100k rows through the engine into a PostgreSQL store, then only what is new."""
    table = production_table(source_db, 100_000)
    register(
        store,
        db_source("big_full", source_db, table),
        db_source("big_incr", source_db, table, cursor_field="lot", sync_strategy="incremental"),
    )
    runner = Runner(store)
    full = runner.sync("big_full")
    assert full.sync_status == "success", full.error_message
    assert counts(full) == (100_000, 0, 0)
    first = runner.sync("big_incr")
    assert counts(first) == (100_000, 0, 0)
    source_db.execute(
        f"INSERT INTO {table} (id, machine_id, lot, qty_good, status) VALUES "
        "(100001, 'M-LATE', 10000, 1, 'RUN'), (100002, 'M-NEW', 10001, 2, 'RUN')"
    )
    again = runner.sync("big_incr")
    assert again.sync_status == "success", again.error_message
    # lot 10000 held id 100000; it is read again with the late row sharing its lot.
    assert (again.records_processed, *counts(again)) == (3, 2, 0, 0)
    assert counts(runner.sync("big_full")) == (2, 0, 0)
