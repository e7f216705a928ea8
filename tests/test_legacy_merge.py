"""import-legacy merges into sources that exist, and ``--dry-run`` of ``import-legacy`` and
``apply`` reports the changes without making them.

The plant engineer's case: a source first imported from the front end's list was then
configured by hand (its own target table, fields with expressions, validation, an
incremental schedule). Importing the list again, with the source renamed and its file
moved, must keep all of that and set only the name and the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml
from sqlalchemy import select

from factorysync.store.db import plain
from factorysync.store.schema import data_source_connections as conns_t
from factorysync.store.schema import data_source_mappings as maps_t
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import metadata
from factorysync.store.store import Store
from tests.conftest import run_cli, write_json

HAND_MADE = {
    "source_id": "line_a_output",
    "name": "Output Line A",
    "source_type": "json",
    "legacy_id": "7",
    "category": "production",
    "priority": 1,
    "connections": [
        {
            "connection_name": "primary",
            "connection_type": "file",
            "connection_config": {
                "file_path": "old/output.json",
                "file_type": "json",
                "encoding": "utf-8",
            },
        }
    ],
    "mappings": [
        {
            "target_table": "production_line_a",
            "sync_strategy": "incremental",
            "sync_frequency": "minute",
            "data_retention_days": 90,
            "mapping_config": {
                "records_path": "data",
                "primary_key": ["machine_id", "ts"],
                "cursor_field": "ts",
                "fields": {
                    "machine_id": "machine",
                    "ts": {"from": "timestamp", "type": "datetime", "timezone": "Asia/Jakarta"},
                    "qty_good": {"from": "good", "type": "integer"},
                    "temperature_c": {
                        "from": "temp_f",
                        "type": "float",
                        "expr": "(value - 32) * 5 / 9",
                    },
                },
                "validate": [{"field": "qty_good", "rule": "min", "value": 0}],
                "on_invalid": "quarantine",
            },
        }
    ],
}
RECORDS = {
    "data": [
        {"machine": "M1", "timestamp": "2026-01-05T08:00:00", "good": 5, "temp_f": 212},
        {"machine": "M2", "timestamp": "2026-01-05T08:00:00", "good": 7, "temp_f": 32},
    ]
}


def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every registry table, in key order."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with store.connect() as conn:
        for name, table in sorted(metadata.tables.items()):
            order = list(table.primary_key.columns) or list(table.columns)
            tables[name] = [tuple(r) for r in conn.execute(select(table).order_by(*order))]
    return tables


def row(store: Store, table: Any, **where: Any) -> dict[str, Any]:
    with store.connect() as conn:
        stmt = select(table)
        if "registry_id" in table.c and "source_id" in where:
            # Connections and mappings point at their source by its registry id.
            stmt = stmt.join(reg_t, reg_t.c.id == table.c.registry_id)
            stmt = stmt.where(reg_t.c.source_id == where.pop("source_id"))
        stmt = stmt.where(*(table.c[k] == v for k, v in where.items()))
        return plain(conn.execute(stmt).mappings().one())


def legacy_list(path: Path, entries: list[dict[str, Any]]) -> Path:
    body = ",\n  ".join(orjson.dumps(e).decode() for e in entries)
    path.write_text(f"export const default_source_data = [\n  {body},\n];\n")
    return path


def write_sources(path: Path, sources: list[dict[str, Any]]) -> Path:
    # Through JSON: shared objects would become YAML aliases, which apply refuses.
    plain_sources = orjson.loads(orjson.dumps(sources))
    path.write_text(yaml.safe_dump({"sources": plain_sources}, sort_keys=False))
    return path


def hand_made_source(tmp_path: Path, data_dir: Path) -> Path:
    write_json(data_dir / "old/output.json", RECORDS)
    sources = write_sources(tmp_path / "sources.yaml", [HAND_MADE])
    run_cli("apply", str(sources), check=True)
    synced = orjson.loads(run_cli("source", "sync", "line_a_output", "--json", check=True).stdout)
    assert synced[0]["records_inserted"] == 2
    return sources


def test_import_sets_only_what_the_list_owns(store: Store, tmp_path: Path, data_dir: Path) -> None:
    hand_made_source(tmp_path, data_dir)
    write_json(data_dir / "new/output.json", RECORDS)
    write_json(data_dir / "downtime.json", [{"id": 1, "minutes": 12}])
    constant = legacy_list(
        data_dir / "constant.js",
        [
            {
                "id": 7,
                "name": "Output Line A (Shift 1)",
                "type": "json",
                "fileName": "output.json",
                "filePath": "/new/output.json",
            },
            {
                "id": 8,
                "name": "Downtime",
                "type": "json",
                "fileName": "downtime.json",
                "filePath": "downtime.json",
            },
        ],
    )
    mapping = row(store, maps_t, source_id="line_a_output")
    source = row(store, reg_t, source_id="line_a_output")
    connection = row(store, conns_t, source_id="line_a_output")

    # The dry run prints what would change, per source and field, and changes nothing.
    before = dump(store)
    dry = run_cli("import-legacy", str(constant), "--dry-run", check=True).stdout
    assert dump(store) == before
    new_path = str(data_dir / "new/output.json")
    assert "~ line_a_output (updated)" in dry
    assert "name: 'Output Line A' → 'Output Line A (Shift 1)'" in dry
    assert (
        f"connections.primary.connection_config.file_path: 'old/output.json' → '{new_path}'" in dry
    )
    assert "connections.primary.connection_config.legacy_path: None → '/new/output.json'" in dry
    assert "+ downtime (created)" in dry and "target_table: downtime (primary_key: ['id'])" in dry
    assert "dry run, nothing changed: 2 source(s) would be imported: 1 created, 1 updated" in dry
    assert "production_line_a" not in dry  # nothing of the mapping is part of the change

    done = run_cli("import-legacy", str(constant), check=True).stdout
    assert "~ line_a_output (updated)" in done and "+ downtime (created)" in done
    assert "imported 2 source(s): 1 created, 1 updated, 0 unchanged" in done

    # The mapping row is exactly as it was: target table, fields, rules, schedule.
    assert row(store, maps_t, source_id="line_a_output") == mapping
    after = row(store, reg_t, source_id="line_a_output")
    changed = {k for k in after if after[k] != source[k]}
    assert changed == {"name", "updated_at"}
    assert after["legacy_id"] == "7" and after["category"] == "production"
    assert after["priority"] == 1 and after["refresh_interval"] == source["refresh_interval"]
    conn_after = row(store, conns_t, source_id="line_a_output")
    assert {k for k in conn_after if conn_after[k] != connection[k]} == {
        "connection_config",
        "updated_at",
    }
    assert conn_after["connection_config"] == {
        "file_path": new_path,
        "file_type": "json",
        "encoding": "utf-8",
        "file_name": "output.json",
        "legacy_path": "/new/output.json",
    }
    # The source keeps syncing into its own table, from the new file.
    with store.connect() as conn:
        tables = [r.target_table for r in conn.execute(select(maps_t).order_by(maps_t.c.id))]
    assert tables == ["production_line_a", "downtime"]
    synced = orjson.loads(run_cli("source", "sync", "line_a_output", "--json", check=True).stdout)
    assert synced[0]["sync_status"] == "success"
    assert (synced[0]["records_inserted"], synced[0]["records_updated"]) == (0, 0)

    # Importing the same list again changes nothing at all.
    before = dump(store)
    again = run_cli("import-legacy", str(constant), check=True).stdout
    assert "imported 2 source(s): 0 created, 0 updated, 2 unchanged" in again
    assert dump(store) == before


def test_import_links_and_leaves_other_connection_types(
    store: Store, tmp_path: Path, data_dir: Path
) -> None:
    write_json(data_dir / "calendar.json", [{"date": "2026-01-05", "shift": 1}])
    (data_dir / "plant.db").touch()
    sources = [
        {  # hand-made for the calendar file, never imported: no legacy id
            "source_id": "calendar",
            "name": "Plant calendar",
            "source_type": "json",
            "connections": [{"connection_config": {"file_path": "calendar.json"}}],
            "mappings": [
                {"target_table": "plant_calendar", "mapping_config": {"primary_key": "date"}}
            ],
        },
        {  # the OEE file replaced by the production database, keeping its legacy id
            "source_id": "oee",
            "name": "OEE",
            "source_type": "database",
            "legacy_id": "3",
            "connections": [
                {"connection_config": {"dialect": "sqlite", "database": "plant.db", "table": "oee"}}
            ],
            "mappings": [{"target_table": "oee_hourly", "mapping_config": {"primary_key": "id"}}],
        },
    ]
    run_cli("apply", str(write_sources(tmp_path / "sources.yaml", sources)), check=True)
    oee_connection = row(store, conns_t, source_id="oee")
    mappings = {r: row(store, maps_t, source_id=r) for r in ("calendar", "oee")}
    constant = legacy_list(
        data_dir / "constant.js",
        [
            {"id": 1, "name": "Kalender", "type": "json", "filePath": "calendar.json"},
            {"id": 3, "name": "OEE per Mesin", "type": "json", "filePath": "oee.json"},
        ],
    )
    proc = run_cli("import-legacy", str(constant), "--json", check=True)
    answer = orjson.loads(proc.stdout)
    by_id = {c["source_id"]: c for c in answer["changes"]}
    assert set(by_id) == {"calendar", "oee"}  # nothing created beside them
    assert by_id["calendar"]["details"] == [
        "name: 'Plant calendar' → 'Kalender'",
        "legacy_id: None → '1'",
        "connections.primary.connection_config.legacy_path: None → 'calendar.json'",
    ]
    assert by_id["oee"]["details"] == ["name: 'OEE' → 'OEE per Mesin'"]
    assert any(
        "calendar: exists without a legacy id: linked to entry 1" in n for n in answer["notes"]
    )
    assert any(
        "oee: its primary connection is a database, not a JSON file: filePath 'oee.json'" in n
        for n in answer["notes"]
    )
    # The relative path naming the same file is kept as written; the database stays.
    assert row(store, conns_t, source_id="calendar")["connection_config"]["file_path"] == (
        "calendar.json"
    )
    assert row(store, conns_t, source_id="oee") == oee_connection
    assert {r: row(store, maps_t, source_id=r) for r in ("calendar", "oee")} == mappings


def test_apply_dry_run_changes_nothing(store: Store, tmp_path: Path, data_dir: Path) -> None:
    sources = hand_made_source(tmp_path, data_dir)
    changed = dict(HAND_MADE, priority=2, name="Output A")
    other = dict(
        HAND_MADE,
        source_id="line_b_output",
        legacy_id=None,
        mappings=[dict(HAND_MADE["mappings"][0], target_table="production_line_b")],
    )
    write_sources(sources, [changed, other])

    before = dump(store)
    dry = run_cli("apply", str(sources), "--dry-run", check=True).stdout
    assert dump(store) == before
    assert "~ line_a_output (updated)" in dry
    assert "name: 'Output Line A' → 'Output A'" in dry and "priority: 1 → 2" in dry
    assert "+ line_b_output (created)" in dry
    assert "dry run, nothing changed: would be 1 created, 1 updated, 0 removed" in dry
    as_json = orjson.loads(run_cli("apply", str(sources), "--dry-run", "--json", check=True).stdout)
    assert [(c["source_id"], c["action"]) for c in as_json] == [
        ("line_a_output", "updated"),
        ("line_b_output", "created"),
    ]
    assert dump(store) == before

    # Pruning too is only reported.
    write_sources(sources, [other])
    pruned = run_cli("apply", str(sources), "--prune", "--dry-run", check=True).stdout
    assert "- line_a_output (removed)" in pruned and "1 removed" in pruned
    assert dump(store) == before

    # The real apply reports the change the dry run announced.
    write_sources(sources, [changed, other])
    real = run_cli("apply", str(sources), check=True).stdout
    assert real.splitlines()[:-1] == dry.splitlines()[:-1]
    assert "1 created, 1 updated, 0 removed, 0 unchanged" in real
    assert dump(store) != before
