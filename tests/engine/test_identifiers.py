"""Names in ``mapping_config``: target-side names (columns of the target table, the
cursor) must be plain identifiers, refused at apply with their path; source-side names
(paths into documents, CSV headers) may hold what sources hold, within bounds."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import inspect, select

from factorysync import services
from factorysync.engine.runner import Runner
from factorysync.errors import ConfigError
from factorysync.intake import parse_source
from factorysync.store.schema import data_source_registry
from factorysync.store.store import Store
from factorysync.store.targets import read_rows

INJECTION = 'id" > 0; DROP TABLE machines; --'
NAME_RULE = (
    "is not a valid name: use lower-case letters, digits and underscores, starting with a "
    "letter or underscore, at most 63 characters"
)


def declaration(mapping: dict[str, Any], **connection: Any) -> dict[str, Any]:
    return {
        "source_id": "machines",
        "name": "Machines",
        "source_type": connection.pop("source_type", "json"),
        "connections": [{"connection_config": connection or {"file_path": "machines.json"}}],
        "mappings": [
            {
                "target_table": "machines",
                "sync_strategy": mapping.pop("sync_strategy", "full"),
                "mapping_config": mapping,
            }
        ],
    }


def problems_of(mapping: dict[str, Any]) -> list[str]:
    decl, problems = parse_source(declaration(mapping))
    assert decl is None or not problems
    return problems


def test_cursor_field_injection_is_refused_at_apply(store: Store, data_dir: Path) -> None:
    mapping = {"sync_strategy": "incremental", "primary_key": ["id"], "cursor_field": INJECTION}
    path = data_dir / "sources.yaml"
    path.write_text(yaml.safe_dump({"sources": [declaration(mapping)]}), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        services.apply_file(store, path)
    assert info.value.problems == [
        "sources[0] (source_id 'machines'): mappings.0.mapping_config.cursor_field: "
        f"cursor_field {INJECTION!r} {NAME_RULE}"
    ]
    with store.connect() as conn:  # nothing of the file was registered
        assert conn.execute(select(data_source_registry.c.source_id)).all() == []


@pytest.mark.parametrize(
    ("mapping", "path", "message"),
    [
        (
            {"cursor_field": "Timestamp"},
            "cursor_field",
            f"cursor_field 'Timestamp' {NAME_RULE}",
        ),
        (
            {"cursor_field": "t" * 64},
            "cursor_field",
            f"cursor_field {'t' * 64!r} {NAME_RULE}",
        ),
        (
            {"retention_field": "day; --"},
            "retention_field",
            f"retention_field 'day; --' {NAME_RULE}",
        ),
        (
            {"primary_key": ["id", "machine id"]},
            "primary_key",
            f"primary_key column 'machine id' {NAME_RULE}",
        ),
        (
            {"fields": {"id": "id", "Machine ID": "machine"}},
            "fields",
            f"target column 'Machine ID' {NAME_RULE}",
        ),
        (
            {
                "validate": [
                    {"field": "qty", "rule": "required"},
                    {"field": "Qty", "rule": "min", "value": 0},
                ]
            },
            "validate.1.field",
            f"validate rule column 'Qty' {NAME_RULE}",
        ),
        (
            {"fields": {"id": {"from": "id\x00"}}},
            "fields.id.spec.from",
            "source path 'id\\x00' holds a control character",
        ),
        (
            {"fields": {"id": "line\nid"}},
            "fields",
            "source path of id 'line\\nid' holds a control character",
        ),
        (
            {"records_path": "data." + "x" * 1000},
            "records_path",
            "records_path is 1005 characters long: the limit is 1000",
        ),
        (
            {"explode": "items", "explode_as": "qty\r"},
            "explode_as",
            "explode_as field name 'qty\\r' holds a control character",
        ),
    ],
)
def test_names_are_refused_at_apply_with_their_path(
    mapping: dict[str, Any], path: str, message: str
) -> None:
    assert problems_of(mapping) == [f"source: mappings.0.mapping_config.{path}: {message}"]


def test_source_names_may_hold_what_sources_hold() -> None:
    """Spaces, capitals, punctuation and accents in a path or a header are fine."""
    mapping = {
        "records_path": "Data Produksi.baris",
        "primary_key": ["machine_id"],
        "cursor_field": "ts",
        "fields": {
            "machine_id": "Machine ID",
            "ts": {"from": "Waktu (WIB)", "type": "datetime"},
            "temp_c": {"from": "Température °C", "type": "float"},
            "qty": "counts[0].Qty Good #",
        },
        "explode_as": "Nilai Ukur",
        "validate": [{"field": "temp_c", "rule": "max", "value": 500}],
    }
    assert problems_of(mapping) == []


def test_csv_headers_with_spaces_map(store: Store, data_dir: Path) -> None:
    (data_dir / "line.csv").write_text(
        "Machine ID,Temp (C),Qty Good,Shift Name\nM-1,20.5,3,Pagi\nM-2,21.0,4,Siang\n",
        encoding="utf-8",
    )
    explicit = declaration(
        {
            "primary_key": ["machine_id"],
            "fields": {
                "machine_id": "Machine ID",
                "temp_c": {"from": "Temp (C)", "type": "float"},
                "qty_good": {"from": "Qty Good", "type": "integer"},
            },
        },
        source_type="csv",
        file_path=str(data_dir / "line.csv"),
    )
    auto = declaration(
        {"primary_key": ["machine_id"]}, source_type="csv", file_path=str(data_dir / "line.csv")
    )
    auto["source_id"] = auto["mappings"][0]["target_table"] = "line_auto"
    path = data_dir / "sources.yaml"
    path.write_text(yaml.safe_dump({"sources": [explicit, auto]}), encoding="utf-8")
    services.apply_file(store, path)
    runner = Runner(store)
    for source_id in ("machines", "line_auto"):
        result = runner.sync(source_id)
        assert (result.sync_status, result.records_inserted) == ("success", 2), result
    with store.connect() as conn:
        rows = sorted(read_rows(conn, "machines"), key=lambda r: r["machine_id"])
        auto_rows = sorted(read_rows(conn, "line_auto"), key=lambda r: r["machine_id"])
    assert [(r["machine_id"], r["temp_c"], r["qty_good"]) for r in rows] == [
        ("M-1", 20.5, 3),
        ("M-2", 21.0, 4),
    ]
    assert [(r["machine_id"], r["shift_name"]) for r in auto_rows] == [
        ("M-1", "Pagi"),
        ("M-2", "Siang"),
    ]


def test_a_reserved_word_cursor_is_quoted_in_the_source_query(store: Store, data_dir: Path) -> None:
    """A cursor column named like an SQL keyword: the incremental read still filters on it
    in the source's SQL (quoted by the dialect, the value bound), so a second run reads
    only rows at or after the stored cursor."""
    db = data_dir / "plant.db"
    with sqlite3.connect(db) as conn:
        conn.execute('CREATE TABLE counts (id INTEGER PRIMARY KEY, "order" INTEGER, qty INTEGER)')
        conn.executemany(
            'INSERT INTO counts (id, "order", qty) VALUES (?, ?, ?)',
            [(i, i * 10, i) for i in range(1, 6)],
        )
    decl = declaration(
        {"sync_strategy": "incremental", "primary_key": ["id"], "cursor_field": "order"},
        source_type="database",
        dialect="sqlite",
        database="plant.db",
        table="counts",
    )
    path = data_dir / "sources.yaml"
    path.write_text(yaml.safe_dump({"sources": [decl]}), encoding="utf-8")
    services.apply_file(store, path)
    runner = Runner(store)
    first = runner.sync("machines")
    assert (first.sync_status, first.records_inserted) == ("success", 5), first.error_message
    with sqlite3.connect(db) as conn:
        conn.executemany(
            'INSERT INTO counts (id, "order", qty) VALUES (?, ?, ?)', [(6, 60, 6), (7, 70, 7)]
        )
    second = runner.sync("machines")
    assert second.sync_status == "success", second.error_message
    # The row at the stored cursor (50) is read again (ties are never lost), and the two
    # new ones: not the whole table.
    assert (second.records_processed, second.records_inserted) == (3, 2)
    with store.connect() as conn:
        assert "order" in {c["name"] for c in inspect(conn).get_columns("machines")}
        assert sorted(r["order"] for r in read_rows(conn, "machines")) == [
            10,
            20,
            30,
            40,
            50,
            60,
            70,
        ]
