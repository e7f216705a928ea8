"""The quarantine as the plant engineer meets it: one entry per bad record however often
it is refused, listed and exported page by page, replayed once the rule is fixed,
cleared, and purged with the mapping's retention (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select, text, update

from factorysync import services
from factorysync.engine import quality
from factorysync.engine.retention import purge
from factorysync.engine.runner import Runner
from factorysync.store.db import alembic_config
from factorysync.store.schema import data_source_quarantine as quarantine_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import infolog as infolog_t
from factorysync.store.store import Store
from factorysync.store.targets import count_rows
from factorysync.store.types import utcnow
from tests.conftest import run_cli, write_json
from tests.engine.test_runner import json_source, register

ROWS, BAD = 1000, 369
RULE = [{"field": "qty_good", "rule": "min", "value": 0}]


def plant_rows() -> list[dict[str, Any]]:
    """Counter readings of a press line; ``BAD`` of them carry a negative count."""
    return [
        {"reading": i, "machine": f"P-{i % 12:02d}", "qty_good": -(i % 7) - 1 if i < BAD else i}
        for i in range(ROWS)
    ]


def counter_source(path: Path, rules: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    source = json_source("counters", path, primary_key="reading", validate=rules)
    source["mappings"][0].update(extra)
    return source


@pytest.fixture
def counters(store: Store, data_dir: Path) -> Path:
    path = write_json(data_dir / "counters.json", plant_rows())
    register(store, counter_source(path, RULE))
    return path


def entries(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return quality.list_entries(conn, "counters", limit=None)


def cli_json(*args: str) -> Any:
    return json.loads(run_cli(*args, check=True).stdout)


def test_four_runs_of_the_same_bad_rows_leave_one_entry_each(store: Store, counters: Path) -> None:
    runner = Runner(store)
    runs = [runner.sync("counters") for _ in range(4)]
    assert [r.sync_status for r in runs] == ["success"] * 4
    # Every run still counts its own rejections.
    assert [r.records_rejected for r in runs] == [BAD] * 4
    assert runs[0].records_inserted == ROWS - BAD

    found = entries(store)
    assert len(found) == BAD
    assert {e["times_seen"] for e in found} == {4}
    assert {e["run_id"] for e in found} == {runs[-1].run_id}
    assert all(e["first_seen"] < e["last_seen"] for e in found)
    assert {e["stage"] for e in found} == {"record"}
    assert {e["record"]["reading"] for e in found} == set(range(BAD))
    assert (
        found[0]["reasons"][0].startswith("qty_good = ")
        and "below the minimum 0" in (found[0]["reasons"][0])
    )
    # A full sync of an unchanged file: the rows of the failing keys were never loaded,
    # so there is nothing of theirs to keep.
    assert not any(e["kept_previous"] for e in found)

    # The same record twice in one file counts twice; a new bad record is a new entry.
    rows = plant_rows()
    write_json(counters, [*rows, rows[0], {"reading": 5000, "machine": "P-99", "qty_good": -1}])
    again = runner.sync("counters")
    assert again.records_rejected == BAD + 2
    by_reading = {e["record"]["reading"]: e for e in entries(store)}
    assert len(by_reading) == BAD + 1
    assert by_reading[0]["times_seen"] == 6 and by_reading[1]["times_seen"] == 5
    assert by_reading[5000]["times_seen"] == 1


def test_cli_pages_and_exports_the_quarantine(store: Store, counters: Path) -> None:
    Runner(store).sync("counters")

    page = cli_json("quarantine", "counters", "--limit", "100", "--offset", "300", "--json")
    assert (page["total"], page["limit"], page["offset"]) == (BAD, 100, 300)
    assert len(page["entries"]) == BAD - 300
    assert cli_json("quarantine", "counters", "--limit", "5", "--format", "json") == cli_json(
        "quarantine", "list", "counters", "--limit", "5", "--json"
    )
    first = cli_json("quarantine", "counters", "--limit", "200", "--json")["entries"]
    rest = cli_json("quarantine", "counters", "--limit", "200", "--offset", "200", "--json")
    ids = [e["id"] for e in first] + [e["id"] for e in rest["entries"]]
    assert len(ids) == len(set(ids)) == BAD

    exported = run_cli("quarantine", "counters", "--limit", "1000", "--format", "csv", check=True)
    lines = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(lines) == BAD
    assert list(lines[0]) == list(quality.ENTRY_COLUMNS)
    readings = sorted(json.loads(line["record"])["reading"] for line in lines)
    assert readings == list(range(BAD))
    assert {line["times_seen"] for line in lines} == {"1"}
    assert all("below the minimum 0" in line["reasons"] for line in lines)

    table = run_cli("quarantine", "counters", "--limit", "10", check=True).stdout
    assert f"entries 1-10 of {BAD}" in table

    missing = run_cli("quarantine", "nowhere")
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines()[-1] == (
        "error: no source 'nowhere' (see 'factorysync source list')"
    )
    bad_format = run_cli("quarantine", "counters", "--format", "xml")
    assert bad_format.returncode != 0 and "xml" in bad_format.stderr


def test_replay_after_fixing_the_rule_loads_the_records_and_empties_the_quarantine(
    store: Store, counters: Path
) -> None:
    Runner(store).sync("counters")
    with store.connect() as conn:
        assert count_rows(conn, "counters") == ROWS - BAD

    # Half fixed: readings down to -3 are accepted now, the others are refused again.
    register(store, counter_source(counters, [{"field": "qty_good", "rule": "min", "value": -3}]))
    still = sum(1 for r in plant_rows() if r["qty_good"] < -3)
    done = cli_json("quarantine", "replay", "counters", "--json")
    assert (done["examined"], done["loaded"], done["still_rejected"]) == (BAD, BAD - still, still)
    assert (done["records_inserted"], done["records_updated"]) == (BAD - still, 0)
    assert done["remaining"] == still and done["sync_status"] == "success"
    left = entries(store)
    assert len(left) == still
    assert all("below the minimum -3" in e["reasons"][0] for e in left)

    # The rule fixed for good: everything loads, the quarantine is empty.
    register(store, counter_source(counters, []))
    out = run_cli("quarantine", "replay", "counters", check=True).stdout
    assert f"{still} entries checked, {still} loaded ({still} inserted, 0 updated)" in out
    assert "0 left" in out
    assert cli_json("quarantine", "counters", "--json")["total"] == 0
    with store.connect() as conn:
        assert count_rows(conn, "counters") == ROWS
        replays = conn.execute(
            select(hist_t).where(hist_t.c.sync_type == "replay").order_by(hist_t.c.id)
        ).all()
        registry = conn.execute(
            text("SELECT last_sync FROM data_source_registry WHERE source_id = 'counters'")
        ).scalar()
    assert [(r.sync_status, r.records_processed, r.records_inserted) for r in replays] == [
        ("success", BAD, BAD - still),
        ("success", still, still),
    ]
    assert replays[0].records_rejected == still and replays[0].details["replayed"] == BAD - still
    assert replays[1].trigger.startswith("cli")
    # A replay is not a sync: the source's schedule stays where the last run put it.
    assert registry is not None

    # The next run of the (unchanged) file: nothing left to refuse or to change.
    after = Runner(store).sync("counters")
    assert (after.records_rejected, after.records_inserted, after.records_updated) == (0, 0, 0)


def test_replay_keeps_unparsed_records_and_refuses_during_a_run(
    store: Store, data_dir: Path
) -> None:
    path = data_dir / "lines.csv"
    path.write_text("id,qty\n1,5\n2,6,7\n3,8\n", encoding="utf-8")
    source = json_source("lines", path, primary_key="id")
    source["source_type"] = "csv"
    source["connections"][0]["connection_config"]["file_type"] = "csv"
    register(store, source)
    Runner(store).sync("lines")
    result = services.replay_quarantine(store, "lines")
    assert (result["examined"], result["not_replayable"], result["remaining"]) == (1, 1, 1)
    (entry,) = services.quarantined(store, "lines")
    assert entry["stage"] == "unparsed" and entry["record"]["text"] == "2,6,7"

    from factorysync.engine.runner import AlreadyRunning, run_slot

    with run_slot("lines"), pytest.raises(AlreadyRunning, match="already syncing"):
        services.replay_quarantine(store, "lines")


def test_clear_removes_the_entries_and_logs_who(store: Store, counters: Path) -> None:
    Runner(store).sync("counters")
    out = run_cli("quarantine", "clear", "counters", check=True).stdout
    assert f"{BAD} quarantine entries removed" in out
    assert cli_json("quarantine", "counters", "--json")["total"] == 0
    with store.connect() as conn:
        event = conn.execute(
            select(infolog_t).where(infolog_t.c.event == "quarantine.cleared")
        ).one()
    assert event.details["removed"] == BAD and event.details["by"].startswith("cli")
    # The next run quarantines the records again, as new entries.
    Runner(store).sync("counters")
    assert {e["times_seen"] for e in entries(store)} == {1}


def test_retention_purges_entries_last_seen_before_the_cutoff(store: Store, counters: Path) -> None:
    register(store, counter_source(counters, RULE, data_retention_days=7))
    Runner(store).sync("counters")
    old = utcnow() - timedelta(days=8)
    with store.begin() as conn:
        conn.execute(
            update(quarantine_t)
            .where(quarantine_t.c.id.in_(select(quarantine_t.c.id).limit(100).scalar_subquery()))
            .values(first_seen=old, last_seen=old)
        )
    assert purge(store, "counters") == 0  # the rows are fresh: only entries go
    assert len(entries(store)) == BAD - 100
    with store.connect() as conn:
        run = conn.execute(select(hist_t).where(hist_t.c.sync_type == "retention")).one()
    assert run.details == {"quarantine_purged": 100}
    # An entry refused again is fresh again: the next purge leaves it.
    Runner(store).sync("counters")
    assert purge(store, "counters") == 0 and len(entries(store)) == BAD


def test_migration_collapses_rows_stored_before_entries(store: Store) -> None:
    """A store from before revision 0006 held one row per refusal: the upgrade makes one
    entry per record, counting the rows, and hashes the way new entries are hashed."""
    config = alembic_config(store.engine)
    command.downgrade(config, "0005")
    base = utcnow() - timedelta(hours=3)
    record = {"reading": 7, "machine": "P-07", "qty_good": -2, "nested": {"b": 1, "a": [1, 2]}}
    with store.begin() as conn:
        old = text(
            "INSERT INTO data_source_quarantine "
            "(source_id, run_id, target_table, record, reasons, created_at) "
            "VALUES (:s, :run, :t, :record, :reasons, :at)"
        )
        for n in range(3):
            conn.execute(
                old,
                {
                    "s": "counters",
                    "run": n + 1,
                    "t": "counters",
                    "record": json.dumps(record),
                    "reasons": json.dumps([f"reason of run {n + 1}"]),
                    "at": (base + timedelta(hours=n)).replace(tzinfo=None),
                },
            )
        conn.execute(
            old,
            {
                "s": "counters",
                "run": 3,
                "t": None,
                "record": json.dumps({"text": "1,2,3,4"}),
                "reasons": json.dumps(["ragged"]),
                "at": base.replace(tzinfo=None),
            },
        )
    command.upgrade(config, "head")
    with store.connect() as conn:
        found = quality.list_entries(conn, "counters", limit=None)
    by_table = {e["target_table"]: e for e in found}
    assert len(found) == 2 and set(by_table) == {"counters", ""}
    entry = by_table["counters"]
    assert (entry["times_seen"], entry["run_id"], entry["reasons"]) == (3, 3, ["reason of run 3"])
    assert abs((entry["first_seen"] - base).total_seconds()) < 1
    assert abs((entry["last_seen"] - base - timedelta(hours=2)).total_seconds()) < 1
    assert entry["content_hash"] == quality.content_hash(record)
    assert by_table[""]["times_seen"] == 1
    # The engine's next refusal of the same record counts up the migrated entry.
    with store.begin() as conn:
        quality.store_rejects(conn, [quality.reject("counters", "counters", record, ["again"], 9)])
    with store.connect() as conn:
        (again,) = [
            e for e in quality.list_entries(conn, "counters", limit=None) if e["run_id"] == 9
        ]
    assert again["id"] == entry["id"] and again["times_seen"] == 4


def test_migration_hash_is_the_engines() -> None:
    import importlib

    migration = importlib.import_module(
        "factorysync.store.migrations.versions.0006_quarantine_entries"
    )
    samples: list[Any] = [
        {"b": 1, "a": [1.5, None, True], "c": {"z": "ü", "y": 2**70}},
        "2,6,7",
        [1, 2, 3],
        {"ts": "2026-01-05T07:00:00+07:00"},
    ]
    for sample in samples:
        assert migration.content_hash(sample) == quality.content_hash(sample)
