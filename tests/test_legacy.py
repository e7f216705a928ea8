"""import-legacy: a front end's constant.js (or JSON list) becomes JSON file sources."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from factorysync import services
from factorysync.engine.runner import Runner
from factorysync.errors import ConfigError
from factorysync.legacy import infer_primary_key, parse_legacy
from factorysync.store.registry import get_source
from factorysync.store.store import Store
from tests.conftest import write_json

CONSTANT_JS = """\
// Data sources for the plant dashboard
import something from "./x";

export const default_source_data = [
  { id: 1, name: "Aktual Produksi", type: "json", fileName: "actual_production.json",
    filePath: "data/production/actual_production.json" },
  /* block comment with a ] bracket */
  {
    'id': 2,
    "name": 'OEE per Machine',   // trailing comment
    type: 'json',
    fileName: "oee.json",
    filePath: "/data/oee/oee.json",
  },
  { id: 3, name: "Kalender Produksi", type: "json", fileName: "calendar.json",
    filePath: "data/calendar.json", },
];

export const refresh_ms = 300000;
"""


def test_parse_constant_js() -> None:
    entries = parse_legacy(CONSTANT_JS)
    assert [e["id"] for e in entries] == [1, 2, 3]
    assert entries[1] == {
        "id": 2,
        "name": "OEE per Machine",
        "type": "json",
        "fileName": "oee.json",
        "filePath": "/data/oee/oee.json",
    }


def test_parse_json_list() -> None:
    entries = parse_legacy('[{"id": "a", "name": "A", "type": "json", "filePath": "a.json"}]')
    assert entries[0]["id"] == "a"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("export const other = [];", "no 'default_source_data = [...]' found"),
        ("export const default_source_data = [ {id: 1, ", "the array is not closed"),
        (
            "export const default_source_data = [ {id: 1 name: 'x'} ];",
            "not valid JavaScript object literals",
        ),
        ("export const default_source_data = [ {id: 1, name: 'x'} ];", "missing 'filePath'"),
        (
            "export const default_source_data = [ {id: 1, name: 'x', type: 'csv', filePath: 'a'} ];",
            "type 'csv' is not a JSON file source",
        ),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_legacy(text, "constant.js")


def test_infer_primary_key() -> None:
    assert infer_primary_key([{"id": 1, "v": 1}, {"id": 2, "v": 1}]) == ["id"]
    rows = [
        {"machineId": "M1", "date": "d1", "v": 1},
        {"machineId": "M1", "date": "d2", "v": 1},
        {"machineId": "M2", "date": "d1", "v": 2},
    ]
    assert infer_primary_key(rows) == ["machine_id", "date"]
    assert infer_primary_key([{"v": 1}, {"v": 1}]) == []


def test_import_registers_and_syncs(store: Store, data_dir: Path) -> None:
    write_json(
        data_dir / "data/production/actual_production.json",
        [
            {"machineId": "M1", "date": "2026-01-05", "qty": 5},
            {"machineId": "M2", "date": "2026-01-05", "qty": 7},
        ],
    )
    write_json(data_dir / "data/oee/oee.json", {"unit": "%", "items": [{"id": 1, "oee": 81.5}]})
    write_json(data_dir / "data/calendar.json", {"year": 2026, "holidays": 12})
    constant = data_dir / "constant.js"
    constant.write_text(CONSTANT_JS)

    changes, notes = services.import_legacy(store, constant, data_dir)
    assert [(c.source_id, c.action) for c in changes] == [
        ("actual_production", "created"),
        ("oee", "created"),
        ("calendar", "created"),
    ]
    assert notes == ["calendar: no unique key found; rows are matched by content"]
    with store.connect() as conn:
        oee = get_source(conn, "oee")
    assert oee["legacy_id"] == "2" and oee["source_type"] == "json"
    conn_cfg = oee["connections"][0]["connection_config"]
    assert conn_cfg["file_path"] == str(data_dir / "data/oee/oee.json")
    assert conn_cfg["file_name"] == "oee.json" and conn_cfg["legacy_path"] == "/data/oee/oee.json"
    assert oee["mappings"][0]["mapping_config"] == {"records_path": "items", "primary_key": ["id"]}

    runner = Runner(store)
    results = [runner.sync(sid) for sid in ("actual_production", "oee", "calendar")]
    assert [r.sync_status for r in results] == ["success"] * 3
    assert [r.records_inserted for r in results] == [2, 1, 1]

    again, _ = services.import_legacy(store, constant, data_dir)
    assert [c.action for c in again] == ["unchanged"] * 3
