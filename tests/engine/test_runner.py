"""Full and incremental syncs of JSON files, against SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from factorysync.connectors.file import json as file_connector
from factorysync.engine.runner import Runner
from factorysync.intake import parse_sources
from factorysync.store.registry_save import apply_declarations
from factorysync.store.schema import data_source_registry, data_source_sync_history, infolog
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.conftest import write_json


def machine_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "machineId": f"M-{i:03d}",
            "line": "LINE-A" if i % 2 else "LINE-B",
            "qtyGood": i * 10,
            "oee": round(0.5 + i / 1000, 3),
            "running": i % 3 != 0,
            "ts": f"2026-01-05T{i % 24:02d}:00:00+07:00",
            "meta": {"vendor": "Fanuc", "axes": [1, 2, 3]} if i % 4 == 0 else None,
        }
        for i in range(n)
    ]


def register(store: Store, *sources: dict[str, Any]) -> None:
    decls = parse_sources({"sources": list(sources)})
    with store.begin() as conn:
        apply_declarations(conn, decls, store.box)


def json_source(source_id: str, path: Path, **mapping: Any) -> dict[str, Any]:
    strategy = mapping.pop("sync_strategy", "full")
    return {
        "source_id": source_id,
        "name": source_id.title(),
        "source_type": "json",
        "refresh_interval": 60,
        "connections": [{"connection_config": {"file_path": str(path)}}],
        "mappings": [
            {"target_table": source_id, "sync_strategy": strategy, "mapping_config": mapping}
        ],
    }


def table_rows(store: Store, table: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return sorted(
            read_rows(conn, table), key=lambda r: str(r.get("_row_key") or r["_row_hash"])
        )


def counts(result: Any) -> tuple[int, int, int]:
    return result.records_inserted, result.records_updated, result.records_deleted


def test_full_sync_counts_are_exact(store: Store, data_dir: Path) -> None:
    rows = machine_rows(50)
    path = write_json(data_dir / "machines.json", rows)
    register(store, json_source("machines", path, primary_key="machine_id"))
    runner = Runner(store)

    first = runner.sync("machines")
    assert first.sync_status == "success", first.error_message
    assert (first.records_processed, *counts(first)) == (50, 50, 0, 0)
    assert len(table_rows(store, "machines")) == 50

    again = runner.sync("machines")
    assert counts(again) == (0, 0, 0)

    rows[7]["qtyGood"] += 1
    write_json(path, rows)
    assert counts(runner.sync("machines")) == (0, 1, 0)

    removed = rows.pop(3)
    write_json(path, rows)
    assert counts(runner.sync("machines")) == (0, 0, 1)
    keys = {r["machine_id"] for r in table_rows(store, "machines")}
    assert removed["machineId"] not in keys and len(keys) == 49

    rows.append({**removed, "qtyGood": 1})
    write_json(path, rows)
    assert counts(runner.sync("machines")) == (1, 0, 0)


def test_auto_mode_types_and_values(store: Store, data_dir: Path) -> None:
    rows = machine_rows(8)
    path = write_json(data_dir / "m.json", {"updated": "now", "data": rows})
    register(store, json_source("auto_types", path, records_path="data", primary_key="machine_id"))
    assert Runner(store).sync("auto_types").sync_status == "success"
    stored = {r["machine_id"]: r for r in table_rows(store, "auto_types")}
    for row in rows:
        got = stored[row["machineId"]]
        assert got["qty_good"] == row["qtyGood"]
        assert got["oee"] == pytest.approx(row["oee"])
        assert bool(got["running"]) is row["running"]
        assert got["meta"] == row["meta"] or (got["meta"] is None and row["meta"] is None)
        assert got["_source_id"] == "auto_types" and got["_run_id"] is not None


def test_history_registry_and_infolog(store: Store, data_dir: Path) -> None:
    path = write_json(data_dir / "m.json", machine_rows(5))
    register(store, json_source("hist", path, primary_key="machine_id"))
    result = Runner(store).sync("hist")
    with store.connect() as conn:
        run = conn.execute(
            select(data_source_sync_history).where(data_source_sync_history.c.id == result.run_id)
        ).one()
        source = conn.execute(select(data_source_registry)).one()
        events = conn.execute(select(infolog).where(infolog.c.run_id == result.run_id)).all()
    assert run.sync_status == "success" and run.sync_type == "full"
    assert (run.records_processed, run.records_inserted) == (5, 5)
    assert run.sync_duration_ms is not None and run.sync_completed_at >= run.sync_started_at
    assert run.connection_name == "primary"
    assert source.last_sync is not None and source.error_count == 0
    assert (source.next_sync - run.sync_started_at).total_seconds() == pytest.approx(60, abs=1)
    assert [e.event for e in events] == ["sync.success"]


@pytest.mark.parametrize("cut", [0.3, 0.7, 0.999])
def test_truncated_file_fails_and_keeps_rows(store: Store, data_dir: Path, cut: float) -> None:
    path = write_json(data_dir / "m.json", machine_rows(40))
    register(store, json_source("trunc", path, primary_key="machine_id"))
    runner = Runner(store)
    assert runner.sync("trunc").sync_status == "success"
    before = table_rows(store, "trunc")

    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    failed = runner.sync("trunc")
    assert failed.sync_status == "failed"
    assert "invalid JSON" in failed.error_message and str(path) in failed.error_message
    assert table_rows(store, "trunc") == before
    with store.connect() as conn:
        source = conn.execute(select(data_source_registry)).one()
    assert source.error_count == 1 and "invalid JSON" in source.last_error


def test_streamed_large_file_truncated(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_connector, "STREAM_THRESHOLD", 1000)
    rows = machine_rows(300)
    path = write_json(data_dir / "big.json", {"data": rows})
    register(store, json_source("big", path, records_path="data", primary_key="machine_id"))
    runner = Runner(store)
    ok = runner.sync("big")
    assert ok.sync_status == "success" and ok.records_inserted == 300
    path.write_bytes(path.read_bytes()[:-500])
    failed = runner.sync("big")
    assert failed.sync_status == "failed" and "truncated" in failed.error_message
    assert len(table_rows(store, "big")) == 300


def test_ndjson_and_missing_file(store: Store, data_dir: Path) -> None:
    path = data_dir / "events.ndjson"
    path.write_text("\n".join(f'{{"id": {i}, "v": {i * 1.5}}}' for i in range(20)) + "\n")
    src = json_source("events", path, primary_key="id")
    src["connections"][0]["connection_config"]["file_type"] = "ndjson"
    register(store, src, json_source("missing", data_dir / "nope.json"))
    runner = Runner(store)
    assert runner.sync("events").records_inserted == 20
    missing = runner.sync("missing")
    assert missing.sync_status == "failed"
    assert (
        missing.error_message
        == f"connection 'primary' failed: file not found: {data_dir}/nope.json"
    )


def test_rows_without_key_match_by_content(store: Store, data_dir: Path) -> None:
    rows = [{"a": 1}, {"a": 1}, {"a": 2}]
    path = write_json(data_dir / "k.json", rows)
    register(store, json_source("nokey", path))
    runner = Runner(store)
    assert counts(runner.sync("nokey")) == (3, 0, 0)
    assert counts(runner.sync("nokey")) == (0, 0, 0)
    write_json(path, [{"a": 1}, {"a": 2}])
    assert counts(runner.sync("nokey")) == (0, 0, 1)


def test_widening_integer_to_float(store: Store, data_dir: Path) -> None:
    path = write_json(data_dir / "w.json", [{"id": 1, "temp": 20}, {"id": 2, "temp": 21}])
    register(store, json_source("widen", path, primary_key="id"))
    runner = Runner(store)
    assert runner.sync("widen").sync_status == "success"
    write_json(path, [{"id": 1, "temp": 20.5}, {"id": 2, "temp": 21}, {"id": 3, "temp": "n/a"}])
    result = runner.sync("widen")
    assert result.sync_status == "success", result.error_message
    assert counts(result) == (1, 1, 0)
    temps = {r["id"]: r["temp"] for r in table_rows(store, "widen")}
    assert str(temps[1]) == "20.5" and str(temps[3]) == "n/a"


def test_quarantine_and_fail_policies(store: Store, data_dir: Path) -> None:
    rows = [{"id": 1, "qty": 5}, {"id": 2, "qty": -3}, {"id": None, "qty": 1}]
    path = write_json(data_dir / "q.json", rows)
    rules = [{"field": "qty", "rule": "min", "value": 0}]
    register(
        store,
        json_source("quar", path, primary_key="id", validate=rules),
        json_source("strict", path, primary_key="id", validate=rules, on_invalid="fail"),
    )
    runner = Runner(store)
    quar = runner.sync("quar")
    assert (quar.records_inserted, quar.records_rejected) == (1, 2)
    with store.connect() as conn:
        reasons = (
            sorted(
                r[0][0] for r in conn.execute(text("SELECT reasons FROM data_source_quarantine"))
            )
            if store.dialect == "postgresql"
            else None
        )
    if reasons is not None:
        assert reasons == ["primary key column 'id' is empty", "qty = -3 is below the minimum 0"]
    strict = runner.sync("strict")
    assert strict.sync_status == "failed" and "below the minimum 0" in strict.error_message
    assert not _has_table(store, "strict")


def _has_table(store: Store, name: str) -> bool:
    from sqlalchemy import inspect

    with store.connect() as conn:
        return inspect(conn).has_table(name)


def test_incremental_ties_are_not_lost(store: Store, data_dir: Path) -> None:
    rows = [{"id": i, "ts": f"2026-01-05T0{i // 2}:00:00+07:00", "v": i} for i in range(6)]
    path = write_json(data_dir / "inc.json", rows)
    register(
        store,
        json_source("inc", path, primary_key="id", cursor_field="ts", sync_strategy="incremental"),
    )
    runner = Runner(store)
    assert counts(runner.sync("inc")) == (6, 0, 0)
    # A late row sharing the newest cursor value, plus a row older than the cursor.
    rows += [
        {"id": 6, "ts": "2026-01-05T02:00:00+07:00", "v": 6},
        {"id": 7, "ts": "2026-01-05T00:00:00+07:00", "v": 7},
    ]
    write_json(path, rows)
    result = runner.sync("inc")
    assert counts(result) == (1, 0, 0)
    ids = {r["id"] for r in table_rows(store, "inc")}
    assert 6 in ids and 7 not in ids
    rows = rows[2:]  # incremental never deletes
    write_json(path, rows)
    assert counts(runner.sync("inc")) == (0, 0, 0)
    assert len(table_rows(store, "inc")) == 7


def test_sources_sharing_a_table(store: Store, data_dir: Path) -> None:
    """Several sources write one table: each owns its rows, columns are the union, and
    concurrent first runs do not race to create the table."""
    import threading

    sources = []
    for i in range(8):
        path = write_json(
            data_dir / f"line{i}.json", [{"id": 1, "line": f"L{i}", f"extra{i % 3}": i}]
        )
        src = json_source(f"line{i}", path, primary_key="id")
        src["mappings"][0]["target_table"] = "shared_prod"
        sources.append(src)
    register(store, *sources)
    runner = Runner(store)
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(runner.sync(f"line{i}")))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.error_message for r in results if r.sync_status != "success"] == []
    rows = {r["_source_id"]: r for r in table_rows(store, "shared_prod")}
    assert len(rows) == 8 and rows["line4"]["extra1"] == 4 and rows["line4"]["extra0"] is None
    # Unchanged: nothing to do; a field the source no longer has is cleared on its rows.
    assert counts(runner.sync("line4")) == (0, 0, 0)
    write_json(data_dir / "line4.json", [{"id": 1, "line": "L4"}])
    assert counts(runner.sync("line4")) == (0, 1, 0)
    rows = {r["_source_id"]: r for r in table_rows(store, "shared_prod")}
    assert rows["line4"]["extra1"] is None and rows["line1"]["extra1"] == 1
