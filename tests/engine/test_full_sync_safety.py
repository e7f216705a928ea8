"""Nothing vanishes because it could not be read: a full sync never deletes the row of a
key its snapshot holds, rejected or not, and a snapshot with records of no known key
(a ragged CSV line) skips the delete phase and ends ``partial`` (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from factorysync import services
from factorysync.engine.runner import Runner
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import infolog as infolog_t
from factorysync.store.store import Store
from tests.conftest import run_cli, write_json
from tests.engine.test_runner import json_source, register, table_rows

ROWS, BAD = 1000, 369


def readings(bad_qty: int = -1) -> list[dict[str, Any]]:
    return [
        {"reading": i, "machine": f"P-{i % 12:02d}", "qty_good": bad_qty if i < BAD else i}
        for i in range(ROWS)
    ]


def by_key(store: Store, table: str, key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in table_rows(store, table)}


@pytest.mark.parametrize("delete_mode", ["hard", "soft"])
def test_a_new_rule_keeps_the_rows_of_keys_that_now_fail(
    store: Store, data_dir: Path, delete_mode: str
) -> None:
    path = write_json(data_dir / "counters.json", readings())
    plain = json_source("counters", path, primary_key="reading", delete_mode=delete_mode)
    register(store, plain)
    runner = Runner(store)
    assert runner.sync("counters").records_inserted == ROWS

    # The plant adds a rule the 369 negative counts fail.
    rule = [{"field": "qty_good", "rule": "min", "value": 0}]
    ruled_source = json_source(
        "counters", path, primary_key="reading", delete_mode=delete_mode, validate=rule
    )
    register(store, ruled_source)
    ruled = runner.sync("counters")
    assert ruled.sync_status == "success", ruled.error_message
    assert (ruled.records_rejected, ruled.records_deleted, ruled.records_updated) == (BAD, 0, 0)
    rows = by_key(store, "counters", "reading")
    assert len(rows) == ROWS and rows[5]["qty_good"] == -1
    entries = services.quarantine_page(store, "counters", limit=None)["entries"]
    assert len(entries) == BAD and all(e["kept_previous"] for e in entries)

    # A failing key whose value changes keeps its previous row as it was; a key that
    # left the snapshot is still deleted.
    rows_now = readings(bad_qty=-5)[1:]
    write_json(path, rows_now)
    later = runner.sync("counters")
    assert (later.records_rejected, later.records_deleted) == (BAD - 1, 1)
    rows = by_key(store, "counters", "reading")
    assert 0 not in rows and len(rows) == ROWS - 1 and rows[5]["qty_good"] == -1


def test_a_record_that_cannot_be_mapped_keeps_its_previous_row(
    store: Store, data_dir: Path
) -> None:
    path = write_json(data_dir / "m.json", [{"id": i, "qty": i} for i in range(5)])
    typed = {"id": "id", "qty": {"from": "qty", "type": "integer"}}
    register(store, json_source("typed", path, primary_key="id", fields=typed))
    runner = Runner(store)
    assert runner.sync("typed").records_inserted == 5
    write_json(path, [{"id": i, "qty": "n/a" if i == 2 else i} for i in range(5)])
    result = runner.sync("typed")
    assert (result.sync_status, result.records_rejected, result.records_deleted) == (
        "success",
        1,
        0,
    )
    assert by_key(store, "typed", "id")[2]["qty"] == 2
    (entry,) = services.quarantined(store, "typed")
    assert entry["kept_previous"] and "qty" in entry["reasons"][0]


def test_rows_without_a_primary_key_are_kept_by_their_content(store: Store, data_dir: Path) -> None:
    events = [{"machine": "P-1", "code": c} for c in ("E1", "E2", "E3")]
    path = write_json(data_dir / "events.json", events)
    register(store, json_source("events", path))
    runner = Runner(store)
    assert runner.sync("events").records_inserted == 3
    rule = [{"field": "code", "rule": "allowed", "value": ["E1", "E3"]}]
    register(store, json_source("events", path, validate=rule))
    result = runner.sync("events")
    assert (result.records_rejected, result.records_deleted) == (1, 0)
    assert sorted(r["code"] for r in table_rows(store, "events")) == ["E1", "E2", "E3"]


def csv_source(path: Path, **mapping: Any) -> dict[str, Any]:
    source = json_source("line_output", path, primary_key="order_no", **mapping)
    source["source_type"] = "csv"
    source["connections"][0]["connection_config"]["file_type"] = "csv"
    return source


CSV = "order_no,machine,qty\n" + "".join(f"WO-{i},P-{i % 3},{i * 10}\n" for i in range(1, 7))


@pytest.mark.parametrize("path_taken", ["columnar", "row"])
def test_a_ragged_csv_row_never_removes_a_key_and_the_run_ends_partial(
    store: Store, data_dir: Path, path_taken: str
) -> None:
    path = data_dir / "line_output.csv"
    path.write_text(CSV, encoding="utf-8")
    # A rule every row passes takes the row path instead of the columnar one.
    rules = [{"field": "qty", "rule": "min", "value": 0}] if path_taken == "row" else []
    register(store, csv_source(path, validate=rules))
    run_cli("source", "sync", "line_output", check=True)
    assert len(table_rows(store, "line_output")) == 6

    # WO-3's line gets a stray delimiter, and WO-6 leaves the export.
    lines = CSV.splitlines(keepends=True)[:-1]
    ragged = [*lines[:3], "WO-3,P-0,30,late\n", *lines[4:]]
    path.write_text("".join(ragged), encoding="utf-8")
    proc = run_cli("source", "sync", "line_output", "--json")
    assert proc.returncode != 0  # the command says the sync did not fully succeed
    (result,) = json.loads(proc.stdout)
    assert result["sync_status"] == "partial"
    assert (result["records_deleted"], result["records_rejected"]) == (0, 1)
    assert "delete phase was skipped" in result["error_message"]
    keys = sorted(r["order_no"] for r in table_rows(store, "line_output"))
    assert keys == [f"WO-{i}" for i in range(1, 7)]

    (run,) = json.loads(run_cli("history", "line_output", "--limit", "1", "--json").stdout)
    assert (
        run["sync_status"] == "partial"
        and "1 record(s) could not be read" in (run["error_message"])
    )
    assert run["details"]["delete_skipped"] == {"line_output": 1}
    with store.connect() as conn:
        event = conn.execute(
            select(infolog_t).where(
                infolog_t.c.event == "sync.delete_skipped", infolog_t.c.run_id == run["id"]
            )
        ).one()
    assert event.level == "warning" and "rows missing from this snapshot were kept" in (
        event.message
    )
    (entry,) = services.quarantined(store, "line_output")
    assert entry["stage"] == "unparsed" and entry["record"]["text"] == "WO-3,P-0,30,late"

    # The export fixed: the run succeeds and WO-6, gone from the file, is deleted now.
    path.write_text("".join(lines), encoding="utf-8")
    fixed = json.loads(run_cli("source", "sync", "line_output", "--json", check=True).stdout)[0]
    assert (fixed["sync_status"], fixed["records_deleted"]) == ("success", 1)
    keys = sorted(r["order_no"] for r in table_rows(store, "line_output"))
    assert keys == [f"WO-{i}" for i in range(1, 6)]


def test_a_first_load_with_a_ragged_row_is_partial_too(store: Store, data_dir: Path) -> None:
    path = data_dir / "line_output.csv"
    path.write_text(CSV.replace("WO-2,P-2,20\n", "WO-2,P-2\n"), encoding="utf-8")
    register(store, csv_source(path))
    result = Runner(store).sync("line_output")
    assert (result.sync_status, result.records_inserted, result.records_rejected) == (
        "partial",
        5,
        1,
    )
    with store.connect() as conn:
        run = conn.execute(select(hist_t).where(hist_t.c.id == result.run_id)).one()
    assert run.sync_status == "partial" and "could not be read" in run.error_message
