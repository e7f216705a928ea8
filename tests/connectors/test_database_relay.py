"""First loads relayed from PostgreSQL as binary COPY give what the Arrow path gives."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy import text

from factorysync.engine.relay import RelayFallback
from factorysync.engine.runner import Runner
from factorysync.store.store import Store
from tests.connectors.conftest import SourceServer
from tests.connectors.test_database import db_source
from tests.connectors.test_database_arrow import strip
from tests.engine.test_runner import counts, register, table_rows

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])  # a PostgreSQL store
_names = itertools.count()

# Every type the relay takes, with NULLs, empty text, COPY-special characters and the
# extremes of each type.
RELAY_TABLE = """
CREATE TABLE {name} (
    id BIGINT {key}, small SMALLINT, medium INTEGER, value DOUBLE PRECISION, note TEXT,
    code VARCHAR(8), ok BOOLEAN, day DATE, at TIMESTAMPTZ
)
"""
RELAY_ROWS = """
INSERT INTO {name} VALUES
 (1, 1, 100, 0.1, 'plain', 'A1', true, '2026-01-05', '2026-01-05 06:00:00+07'),
 (2, NULL, NULL, NULL, '', NULL, NULL, NULL, NULL),
 (3, -32768, -2147483648, 1e-300, E'tab\\there, "quote"\\nnewline \\\\', 'é€', false,
  '0099-12-31', '2026-03-29 01:30:00.123456+00'),
 (4, 32767, 2147483647, 'NaN', 'NULL', '', NULL, '9999-12-31', '1970-01-01 00:00:00+00'),
 (5, 0, 0, '-Infinity', '\\N', 'x', true, '2000-02-29', '2262-04-11 23:47:16.854775+00'),
 (9223372036854775807, 7, 7, -0.0, 'ünïcödé ✓', 'max', false, NULL, NULL)
"""


def relay_table(pg: SourceServer, *, key: str = "PRIMARY KEY", rows: str = RELAY_ROWS) -> str:
    name = f"relayed_{next(_names)}"
    pg.execute(RELAY_TABLE.format(name=name, key=key), rows.format(name=name))
    return name


@pytest.fixture
def relayed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool | str]]:
    """Which sources' first loads were relayed; source ids starting with "arrow" never
    are (the Arrow path's twin)."""
    seen: list[tuple[str, bool | str]] = []
    original = Runner._relayed

    def spy(connector: Any, mrun: Any, result: Any) -> bool:
        if mrun.source_id.startswith("arrow"):
            return False
        try:
            done = original(connector, mrun, result)
        except RelayFallback:
            seen.append((mrun.source_id, "undone"))
            raise
        seen.append((mrun.source_id, done))
        return done

    monkeypatch.setattr(Runner, "_relayed", staticmethod(spy))
    return seen


def column_types(store: Store, table: str) -> dict[str, str]:
    with store.connect() as conn:
        found = conn.execute(
            text(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = :t"
            ),
            {"t": table},
        ).all()
    return dict(found)  # type: ignore[arg-type]


def test_relayed_first_load_equals_the_arrow_path(
    pg_source: SourceServer, store: Store, relayed: list[tuple[str, bool | str]]
) -> None:
    table = relay_table(pg_source)
    register(store, db_source("relay", pg_source, table), db_source("arrow", pg_source, table))
    runner = Runner(store)
    steps = [[], [], [f"UPDATE {table} SET note = 'changed' WHERE id = 1"]]
    seen = []
    for statements in steps:
        if statements:
            pg_source.execute(*statements)
        fast, twin = runner.sync("relay"), runner.sync("arrow")
        assert fast.sync_status == twin.sync_status == "success", (fast, twin)
        assert (fast.records_processed, *counts(fast)) == (twin.records_processed, *counts(twin))
        seen.append(counts(fast))
        assert strip(table_rows(store, "relay")) == strip(table_rows(store, "arrow"))
    assert seen == [(6, 0, 0), (0, 0, 0), (0, 1, 0)]
    assert relayed == [("relay", True)]  # the first load only
    assert column_types(store, "relay") == column_types(store, "arrow")
    row = next(r for r in table_rows(store, "relay") if r["id"] == 3)
    assert row["note"] == 'tab\there, "quote"\nnewline \\' and row["code"] == "é€"
    assert row["small"] == -32768 and row["value"] == 1e-300


def test_renamed_columns_are_relayed(
    pg_source: SourceServer, store: Store, relayed: list[tuple[str, bool | str]]
) -> None:
    table = relay_table(pg_source)
    fields = {"id": "id", "label": {"from": "note"}, "when": {"from": "at", "type": "datetime"}}
    register(
        store,
        db_source("relay", pg_source, table, fields=fields),
        db_source("arrow", pg_source, table, fields=fields),
    )
    runner = Runner(store)
    assert counts(runner.sync("relay")) == counts(runner.sync("arrow")) == (6, 0, 0)
    assert relayed == [("relay", True)]
    assert strip(table_rows(store, "relay")) == strip(table_rows(store, "arrow"))
    assert {"id", "label", "when"} <= set(column_types(store, "relay"))
    assert "note" not in column_types(store, "relay")


@pytest.mark.parametrize(
    ("case", "setup"),
    [
        ("a REAL column", "ALTER TABLE {t} ADD COLUMN ratio REAL DEFAULT 1.1"),
        ("a CHAR(n) column", "ALTER TABLE {t} ADD COLUMN fixed CHAR(4) DEFAULT 'ab'"),
        ("a TIMESTAMP column", "ALTER TABLE {t} ADD COLUMN local_at TIMESTAMP DEFAULT now()"),
        (
            "text that auto mode types as timestamps",
            "ALTER TABLE {t} ADD COLUMN stamp TEXT DEFAULT '2026-01-05T06:00:00+07:00'",
        ),
        ("a default in the mapping", None),
        ("an incremental sync", None),
    ],
)
def test_what_the_relay_leaves_to_the_arrow_path(
    pg_source: SourceServer,
    store: Store,
    relayed: list[tuple[str, bool | str]],
    case: str,
    setup: str | None,
) -> None:
    table = relay_table(pg_source)
    if setup:
        pg_source.execute(setup.format(t=table))
    mapping: dict[str, Any] = {}
    if case == "a default in the mapping":
        mapping["fields"] = {"id": "id", "note": {"from": "note", "default": "none"}}
    if case == "an incremental sync":
        mapping.update(sync_strategy="incremental", cursor_field="id")
    register(
        store,
        db_source("relay", pg_source, table, **mapping),
        db_source("arrow", pg_source, table, **mapping),
    )
    runner = Runner(store)
    fast, twin = runner.sync("relay"), runner.sync("arrow")
    # A record without a key could stand for any row: a full sync that met one says it
    # is partial (it would not delete), on the first load as on every later one.
    status = "partial" if case == "empty key" else "success"
    assert fast.sync_status == twin.sync_status == status, (fast, twin)
    assert counts(fast) == counts(twin) == (6, 0, 0)
    assert relayed in ([("relay", False)], [])  # asked and declined, or never asked
    assert strip(table_rows(store, "relay")) == strip(table_rows(store, "arrow"))
    assert column_types(store, "relay") == column_types(store, "arrow")
    if case.startswith("text"):
        assert column_types(store, "relay")["stamp"] == "timestamp with time zone"


@pytest.mark.parametrize(
    ("case", "extra", "expected", "relay"),
    [
        # An empty key: the Arrow path rejects that row, so the relayed load is undone.
        ("empty key", "(NULL, 1, 1, 1, 'k', 'k', true, NULL, NULL)", (6, 0, 0, 1), "undone"),
        # A repeated key: the unique index fails, and staging keeps one row of it.
        ("repeated key", "(1, 9, 9, 9, 'again', 'k', true, NULL, NULL)", (6, 0, 0, 0), True),
    ],
)
def test_rows_the_relay_cannot_keep_load_again(
    pg_source: SourceServer,
    store: Store,
    relayed: list[tuple[str, bool | str]],
    case: str,
    extra: str,
    expected: tuple[int, int, int, int],
    relay: bool | str,
) -> None:
    rows = RELAY_ROWS.rstrip() + ",\n " + extra
    table = relay_table(pg_source, key="", rows=rows)
    register(store, db_source("relay", pg_source, table), db_source("arrow", pg_source, table))
    runner = Runner(store)
    fast, twin = runner.sync("relay"), runner.sync("arrow")
    # A record without a key could stand for any row: a full sync that met one says it
    # is partial (it would not delete), on the first load as on every later one.
    status = "partial" if case == "empty key" else "success"
    assert fast.sync_status == twin.sync_status == status, (fast, twin)
    assert (*counts(fast), fast.records_rejected) == expected
    assert (*counts(twin), twin.records_rejected) == expected
    assert relayed == [("relay", relay)]  # relayed first, then loaded again
    assert strip(table_rows(store, "relay")) == strip(table_rows(store, "arrow"))
    assert len(table_rows(store, "relay")) == 6


def test_binary_stream_reports_errors_and_stops_cleanly(
    pg_source: SourceServer, backend: str
) -> None:
    import psycopg

    from factorysync.connectors.database import pg_copy

    info = pg_source.config
    with psycopg.connect(
        host=info["host"], port=info["port"], dbname=info["database"], user="postgres"
    ) as raw:
        # A failing query is the server's own error, and the connection stays usable.
        with pytest.raises(psycopg.errors.DivisionByZero):
            list(pg_copy.copy_binary(raw, "SELECT 1 / (g - 5) FROM generate_series(1, 9) g", {}))
        raw.rollback()
        assert raw.execute("SELECT 1").fetchone() == (1,)
        # A reader that stops after the first chunk cancels the rest of the COPY.
        big = "SELECT g, repeat('x', 100) FROM generate_series(1, 300000) g"
        stream = pg_copy.copy_binary(raw, big, {})
        first = next(stream)
        assert first.startswith(b"PGCOPY\n\xff\r\n\x00") and len(first) >= pg_copy.RELAY_BYTES
        stream.close()
        raw.rollback()
        assert raw.execute("SELECT 2").fetchone() == (2,)
        # A whole stream: signature, every row, trailer.
        whole = b"".join(pg_copy.copy_binary(raw, "SELECT %(n)s::int", {"n": 7}))
        assert whole.endswith(b"\xff\xff") and (7).to_bytes(4, "big") in whole


def test_a_query_source_is_relayed_and_its_keys_checked(
    pg_source: SourceServer, store: Store, relayed: list[tuple[str, bool | str]]
) -> None:
    # A query declares no NOT NULL: the relayed rows' keys are looked at instead.
    table = relay_table(pg_source, key="")
    relay, twin = db_source("relay", pg_source, table), db_source("arrow", pg_source, table)
    for source in (relay, twin):
        config = source["connections"][0]["connection_config"]
        config.pop("table")
        config["query"] = f"SELECT * FROM {table} WHERE id <> 4"
    register(store, relay, twin)
    runner = Runner(store)
    assert counts(runner.sync("relay")) == counts(runner.sync("arrow")) == (5, 0, 0)
    assert relayed == [("relay", True)]
    assert strip(table_rows(store, "relay")) == strip(table_rows(store, "arrow"))


def provenance(store: Store, table: str) -> set[tuple[Any, ...]]:
    with store.connect() as conn:
        found = conn.execute(
            text(f"SELECT DISTINCT _source_id, _run_id, _synced_at FROM {table}")
        ).all()
    return {tuple(r) for r in found}


def test_relayed_rows_carry_their_run(
    pg_source: SourceServer, store: Store, relayed: list[tuple[str, bool | str]]
) -> None:
    """A new table takes the provenance columns from defaults set for the load (and
    dropped after it); a table another source made takes them as constants of the stream."""
    table = relay_table(pg_source)
    first = db_source("relay_a", pg_source, table)
    second = db_source("relay_b", pg_source, table)
    second["mappings"][0]["target_table"] = "relay_a"  # shares the first source's table
    register(store, first, second)
    runner = Runner(store)
    runs = [runner.sync("relay_a"), runner.sync("relay_b")]
    assert [counts(r) for r in runs] == [(6, 0, 0), (6, 0, 0)]
    assert relayed == [("relay_a", True), ("relay_b", True)]
    with store.connect() as conn:
        started = dict(
            conn.execute(
                text("SELECT id, sync_started_at FROM data_source_sync_history ORDER BY id")
            ).all()
        )
        defaults = conn.execute(
            text(
                "SELECT column_name, column_default FROM information_schema.columns "
                "WHERE table_name = 'relay_a' AND column_default IS NOT NULL"
            )
        ).all()
    assert defaults == []
    stamps = provenance(store, "relay_a")
    assert {(s, r) for s, r, _ in stamps} == {
        ("relay_a", runs[0].run_id),
        ("relay_b", runs[1].run_id),
    }
    for source_id, run_id, synced_at in stamps:
        assert synced_at is not None and synced_at.utcoffset() is not None
        assert abs((synced_at - started[run_id]).total_seconds()) < 60, source_id
    # Both sources' rows, twelve in all, each key once per source.
    assert len(table_rows(store, "relay_a")) == 12


def test_relayed_types_are_stored_as_the_arrow_path_stores_them(backend: str) -> None:
    """The relay plans its target from type names alone; each kind is the one the Arrow
    path gives the same column."""
    from factorysync.connectors.database import pg_copy
    from factorysync.store import bulk

    assert set(pg_copy.PIPE_KINDS) == set(pg_copy.PIPE_CASTS)
    for name, kind in pg_copy.PIPE_KINDS.items():
        assert bulk.arrow_kind(pg_copy.arrow_type(name)) == kind, name
