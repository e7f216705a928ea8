"""Change capture into the outbox, on SQLite and PostgreSQL: every write path of a
forwarded table adds its entries in the transaction of the change, and nothing is
captured for a table that is not forwarded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from factorysync.forward.outbox import Outbox
from factorysync.realtime.writer import Incoming, MicroBatchWriter
from factorysync.services.lifecycle import delete_source
from factorysync.store.store import Store
from tests.forward.plant_helpers import (
    entries,
    forwarding_store,
    json_source,
    machines,
    register,
    sent,
    sync,
)
from tests.realtime.conftest import mqtt_source

URL = "nats://127.0.0.1:4222"


@pytest.fixture
def fstore(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    with forwarding_store(monkeypatch, URL) as store:
        yield store


def by_machine(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["machine"]: r for r in rows}


def test_full_sync_captures_inserts_updates_and_hard_deletes(fstore: Store, data_dir: Path) -> None:
    path = data_dir / "m.json"
    register(fstore, json_source("line1", path, "production"))
    first = sync(fstore, "line1", path, machines(30))
    # The first load (straight into the new table) is one "rows" entry.
    assert entries(fstore) == [("production", "line1", "rows")]
    [(work, rows)] = sent(fstore)
    assert (work.run_id, len(rows)) == (first.run_id, 30)
    assert [r["machine"] for r in rows] == sorted(r["machine"] for r in rows)  # key order
    row = by_machine(rows)["M-001"]
    assert row["qty"] == 10 and row["running"] is True and row["oee"] == 0.501
    assert row["ts"] == "2026-01-04T18:00:00+00:00"  # ISO 8601, UTC, with the offset
    assert row["_run_id"] == first.run_id and row["_deleted_at"] is None
    assert "_source_id" not in row and "_row_hash" in row  # NULL after a columnar load
    Outbox(fstore).done([work])
    assert entries(fstore) == []

    # One row changed, two gone, one new: the deleted keys before the DELETE, then rows.
    changed = machines(30)
    changed[5]["qty"] = 999
    changed = [r for r in changed if r["machine"] not in ("M-010", "M-011")]
    changed.append({"machine": "M-100", "qty": 1, "oee": 0.9, "running": True, "ts": None})
    second = sync(fstore, "line1", path, changed)
    assert (second.records_inserted, second.records_updated, second.records_deleted) == (1, 1, 2)
    assert entries(fstore) == [("production", "line1", "delete"), ("production", "line1", "rows")]
    (deleted, keys), (work, rows) = sent(fstore)
    assert deleted.op == "delete" and sorted(k["machine"] for k in keys) == ["M-010", "M-011"]
    assert work.run_id == second.run_id
    assert {r["machine"]: r["qty"] for r in rows} == {"M-005": 999, "M-100": 1}

    # An unchanged snapshot changes nothing and captures nothing.
    Outbox(fstore).done([deleted, work])
    sync(fstore, "line1", path, changed)
    assert entries(fstore) == []


def test_soft_deletes_are_forwarded_as_rows(fstore: Store, data_dir: Path) -> None:
    path = data_dir / "m.json"
    register(fstore, json_source("line1", path, "production", delete_mode="soft"))
    sync(fstore, "line1", path, machines(5))
    Outbox(fstore).done([w for w, _ in sent(fstore)])
    second = sync(fstore, "line1", path, machines(4))
    assert entries(fstore) == [("production", "line1", "rows")]
    [(work, rows)] = sent(fstore)
    assert work.run_id == second.run_id
    assert [r["machine"] for r in rows] == ["M-004"]
    assert rows[0]["_deleted_at"] is not None and rows[0]["_run_id"] == second.run_id


def test_incremental_batches_are_one_item_per_run(fstore: Store, data_dir: Path) -> None:
    path = data_dir / "m.json"
    source = json_source("line1", path, "production", strategy="incremental", cursor_field="qty")
    register(fstore, source)
    sync(fstore, "line1", path, machines(20))
    Outbox(fstore).done([w for w, _ in sent(fstore)])
    later = sync(fstore, "line1", path, machines(20) + machines(40)[20:])
    found = sent(fstore)
    assert [w.run_id for w, _ in found] == [later.run_id]
    machines_sent = [r["machine"] for r in found[0][1]]
    # Rows at the stored cursor are read again but unchanged: only the new ones go.
    assert machines_sent == [f"M-{i:03d}" for i in range(20, 40)]


def test_nothing_is_captured_for_tables_not_forwarded(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    with forwarding_store(monkeypatch, URL, tables="energy") as store:
        path = data_dir / "m.json"
        register(store, json_source("line1", path, "production"))
        sync(store, "line1", path, machines(10))
        sync(store, "line1", path, machines(8, qty=1))
        assert entries(store) == []
        with store.connect() as conn:
            assert conn.get_execution_options()["factorysync_forward"].names == {"energy"}


def test_nothing_is_captured_when_forwarding_is_off(store: Store, data_dir: Path) -> None:
    path = data_dir / "m.json"
    register(store, json_source("line1", path, "production"))
    sync(store, "line1", path, machines(10))
    sync(store, "line1", path, machines(8, qty=1))
    assert entries(store) == []
    with store.connect() as conn:
        assert "factorysync_forward" not in conn.get_execution_options()


def test_realtime_upserts_send_only_what_each_flush_changed(fstore: Store) -> None:
    register(
        fstore,
        mqtt_source(
            "press",
            "127.0.0.1",
            1883,
            ["plant/+/status"],
            table="machine_state",
            mapping={"primary_key": ["machine_id"], "fields": {"machine_id": "m", "speed": "s"}},
        ),
    )
    writer = MicroBatchWriter(fstore, "press", window_s=3600)
    writer.open()
    try:
        writer.flush([Incoming([{"m": "M1", "s": 1}, {"m": "M2", "s": 2}])])
        [(work, rows)] = sent(fstore)
        assert work.run_id == writer.window.run_id
        assert {r["machine_id"]: r["speed"] for r in rows} == {"M1": 1, "M2": 2}
        Outbox(fstore).done([work])

        writer.flush([Incoming([{"m": "M2", "s": 2}])])  # unchanged: nothing captured
        assert entries(fstore) == []
        writer.flush([Incoming([{"m": "M2", "s": 3}, {"m": "M3", "s": 4}])])
        writer.flush([Incoming([{"m": "M3", "s": 5}])])
        # Two entries of the same window: one item, reading only what they changed
        # (M1, unchanged since the first flush, is not sent again).
        assert entries(fstore) == [("machine_state", "press", "rows")] * 2
        [(work, rows)] = sent(fstore)
        assert len(work.seqs) == 2 and work.run_id == writer.window.run_id
        assert {r["machine_id"]: r["speed"] for r in rows} == {"M2": 3, "M3": 5}
    finally:
        writer.stop()


def test_a_deleted_key_inserted_again_is_not_sent_as_deleted(fstore: Store, data_dir: Path) -> None:
    path = data_dir / "m.json"
    register(fstore, json_source("line1", path, "production"))
    sync(fstore, "line1", path, machines(5))
    Outbox(fstore).done([w for w, _ in sent(fstore)])
    sync(fstore, "line1", path, machines(3))  # M-003 and M-004 deleted
    sync(fstore, "line1", path, machines(4))  # M-003 back
    found = sent(fstore)
    assert [w.op for w, _ in found] == ["delete", "rows"]
    assert [k["machine"] for k in found[0][1]] == ["M-004"]
    assert [r["machine"] for r in found[1][1]] == ["M-003"]


def test_a_source_deleted_with_its_data_deletes_its_forwarded_rows(
    fstore: Store, data_dir: Path
) -> None:
    path = data_dir / "m.json"
    register(
        fstore,
        json_source("line1", path, "production"),
        json_source("line2", data_dir / "n.json", "production"),
    )
    sync(fstore, "line1", path, machines(3))
    sync(fstore, "line2", data_dir / "n.json", machines(2))
    Outbox(fstore).done([w for w, _ in sent(fstore)])
    delete_source(fstore, "line1", drop_data=True)
    [(work, keys)] = sent(fstore)
    assert (work.op, work.source_id, work.run_id) == ("delete", "line1", 0)
    assert sorted(k["machine"] for k in keys) == ["M-000", "M-001", "M-002"]
