"""The demo end to end: every demo source lands in its table exactly as its JSON file says."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from factorysync.demo.run import run_demo
from factorysync.engine.mapping import get_path, parse_path, snake_case
from factorysync.engine.runner import Runner
from factorysync.store.registry import get_source, list_sources
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.conftest import run_cli


def normal(value: Any) -> Any:
    """A value as the store gives it back, for comparison with the file's value."""
    if isinstance(value, str):
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            if "T" in value and ("+" in value[10:] or value.endswith("Z")):
                return datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def stored(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def canon(value: Any) -> str:
    """Datetimes as UTC instants, so offsets do not matter."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


def file_records(source: dict[str, Any]) -> list[dict[str, Any]]:
    config = source["connections"][0]["connection_config"]
    document = orjson.loads(Path(config["file_path"]).read_bytes())
    path = source["mappings"][0]["mapping_config"].get("records_path")
    records = get_path(document, parse_path(path)) if path else document
    return records if isinstance(records, list) else [records]


@pytest.fixture
def demo_store(store: Store, data_dir: Path) -> Store:
    results = run_demo(store, data_dir / "demo", size_mb=0.5)
    failed = [(r.source_id, r.error_message) for r in results if r.sync_status != "success"]
    assert not failed
    assert len(results) >= 40
    return store


def test_every_source_equals_its_file(demo_store: Store) -> None:
    with demo_store.connect() as conn:
        sources = [get_source(conn, s["source_id"]) for s in list_sources(conn)]
        assert len(sources) >= 40
        categories = {
            s["connections"][0]["connection_config"]["file_path"].split("/")[-2] for s in sources
        }
        assert {
            "production",
            "oee",
            "downtime",
            "quality",
            "energy",
            "equipment",
            "calendar",
            "layout",
            "kpi",
            "product",
        } <= categories
        for source in sources:
            table = source["mappings"][0]["target_table"]
            rows = read_rows(conn, table, source_id=source["source_id"])
            records = file_records(source)
            assert len(rows) == len(records), source["source_id"]
            want = sorted(
                json.dumps(
                    {snake_case(k): normal(v) for k, v in r.items()}, sort_keys=True, default=canon
                )
                for r in records
            )
            got = sorted(
                json.dumps(
                    {
                        k: stored(normal(v) if isinstance(v, str) else v)
                        for k, v in r.items()
                        if not k.startswith("_")
                    },
                    sort_keys=True,
                    default=canon,
                )
                for r in rows
            )
            assert got == want, source["source_id"]


def test_demo_resync_change_and_delete(demo_store: Store) -> None:
    runner = Runner(demo_store)
    with demo_store.connect() as conn:
        source = get_source(conn, "machine_list")
    assert source["mappings"][0]["mapping_config"]["primary_key"] == ["machine_id"]
    unchanged = runner.sync("machine_list")
    assert (unchanged.records_inserted, unchanged.records_updated, unchanged.records_deleted) == (
        0,
        0,
        0,
    )
    path = Path(source["connections"][0]["connection_config"]["file_path"])
    records = orjson.loads(path.read_bytes())
    records[0]["status"] = "Breakdown" if records[0].get("status") != "Breakdown" else "Running"
    path.write_bytes(orjson.dumps(records))
    changed = runner.sync("machine_list")
    assert (changed.records_inserted, changed.records_updated, changed.records_deleted) == (0, 1, 0)
    path.write_bytes(orjson.dumps(records[1:]))
    removed = runner.sync("machine_list")
    assert (removed.records_inserted, removed.records_updated, removed.records_deleted) == (0, 0, 1)


def test_demo_command(tmp_path: Path) -> None:
    """`factorysync demo --no-serve` in a fresh folder, as `make demo` runs it."""
    proc = run_cli(
        "demo",
        "--no-serve",
        "--size-mb",
        "0.5",
        "--json",
        cwd=tmp_path,
        env={
            "FACTORYSYNC_DATABASE_URL": "sqlite:///./factorysync.db",
            "FACTORYSYNC_DATA_ROOTS": "./data",
            "FACTORYSYNC_SECRET_KEY_FILE": "./factorysync.key",
            "FACTORYSYNC_SECRET_KEY": "",
        },
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) >= 40 and all(r["sync_status"] == "success" for r in results)
    assert (tmp_path / "factorysync.db").exists()
    assert (tmp_path / "data" / "factorysync-demo" / "constant.js").exists()
    again = run_cli(
        "source",
        "list",
        "--json",
        cwd=tmp_path,
        env={"FACTORYSYNC_DATABASE_URL": "sqlite:///./factorysync.db"},
    )
    assert len(json.loads(again.stdout)) == len(results)
