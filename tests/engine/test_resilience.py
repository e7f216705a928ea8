"""Failover, retries, the circuit, the scheduler, retention (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from factorysync.connectors import registry as connector_registry
from factorysync.connectors.base import Batch, Connector, ReadRequest
from factorysync.connectors.file import FileConfig
from factorysync.engine import history
from factorysync.engine.retention import purge
from factorysync.engine.runner import Runner
from factorysync.engine.schedule import next_due
from factorysync.engine.scheduler import Scheduler
from factorysync.errors import ConnectorRetriable
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.conftest import write_json
from tests.engine.test_runner import json_source, register
from tests.waiting import PATIENCE, wait_until


def source_row(store: Store, sid: str) -> Any:
    with store.connect() as conn:
        return conn.execute(select(reg_t).where(reg_t.c.source_id == sid)).one()


def test_failover_to_backup(store: Store, data_dir: Path) -> None:
    backup = write_json(data_dir / "copy" / "oee.json", [{"id": 1, "oee": 0.8}])
    src = json_source("oee", data_dir / "live" / "oee.json", primary_key="id")
    src["connections"] = [
        {
            "connection_name": "mes",
            "connection_config": {"file_path": str(data_dir / "live/oee.json")},
        },
        {
            "connection_name": "nightly",
            "is_backup": True,
            "connection_config": {"file_path": str(backup)},
        },
    ]
    register(store, src)
    result = Runner(store).sync("oee")
    assert result.sync_status == "success" and result.connection_name == "nightly"
    with store.connect() as conn:
        run = conn.execute(select(hist_t).where(hist_t.c.id == result.run_id)).one()
    assert run.connection_name == "nightly"
    assert run.details["failover"] == [
        f"connection 'mes' failed: file not found: {data_dir}/live/oee.json"
    ]
    write_json(data_dir / "live" / "oee.json", [{"id": 1, "oee": 0.9}])
    again = Runner(store).sync("oee")
    assert again.connection_name == "mes" and again.records_updated == 1


def test_circuit_opens_after_five_failures_and_closes_on_success(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = data_dir / "flaky.json"
    register(store, json_source("flaky", path, primary_key="id"))
    runner = Runner(store)
    for attempt in range(1, 6):
        assert runner.sync("flaky").sync_status == "failed"
        row = source_row(store, "flaky")
        assert row.error_count == attempt
        assert row.status == ("error" if attempt == 5 else "active")
    assert row.last_error == f"connection 'primary' failed: file not found: {path}"
    # The back-off grows with each failure (interval 60 s → 16 × 60 s, capped at 1 h).
    assert row.next_sync - datetime.now(UTC) > timedelta(minutes=15)

    # The source comes back; the scheduler retries on its back-off and closes the circuit.
    write_json(path, [{"id": 1}])
    monkeypatch.setattr(history, "MAX_BACKOFF_S", 1)
    with store.begin() as conn:
        conn.execute(update(reg_t).values(next_sync=datetime.now(UTC)))
    scheduler = Scheduler(store)
    scheduler.run_forever(stop_after=3)
    row = source_row(store, "flaky")
    assert (row.status, row.error_count, row.last_error) == ("active", 0, None)


def test_inactive_and_maintenance_are_skipped(store: Store, data_dir: Path) -> None:
    path = write_json(data_dir / "a.json", [{"id": 1}])
    register(store, json_source("on", path), json_source("off", path), json_source("maint", path))
    with store.begin() as conn:
        conn.execute(update(reg_t).where(reg_t.c.source_id == "off").values(status="inactive"))
        conn.execute(update(reg_t).where(reg_t.c.source_id == "maint").values(status="maintenance"))
    Scheduler(store).run_forever(stop_after=1.5)
    with store.connect() as conn:
        ran = set(conn.execute(select(hist_t.c.source_id)).scalars())
    assert ran == {"on"}


def test_scheduler_runs_by_priority_under_the_limit(store: Store, data_dir: Path) -> None:
    path = write_json(data_dir / "a.json", [{"id": 1}])
    sources = []
    for i in range(6):
        src = json_source(f"p{i}", path)
        src["priority"] = 3 if i < 3 else 1
        sources.append(src)
    register(store, *sources)
    scheduler = Scheduler(store, max_concurrent=1)

    def ran() -> list[str]:
        with store.connect() as conn:
            return list(
                conn.execute(
                    select(hist_t.c.source_id)
                    .where(hist_t.c.sync_status != "running")
                    .order_by(hist_t.c.id)
                ).scalars()
            )

    loop = threading.Thread(target=scheduler.run_forever)
    loop.start()
    try:
        order = wait_until(lambda: (done := ran()) and len(done) >= 6 and done, state=ran)
    finally:
        scheduler.stop()
        loop.join(PATIENCE)
    assert set(order[:3]) == {"p3", "p4", "p5"} and set(order[3:6]) == {"p0", "p1", "p2"}


class FlakyConnector(Connector):
    """Fails with a transient error a set number of times, then reads one record."""

    type_name = "flaky"
    config_model = FileConfig
    failures: int = 0

    def _check(self) -> str:
        return "ok"

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        if FlakyConnector.failures > 0:
            FlakyConnector.failures -= 1
            raise ConnectorRetriable("connection reset by peer")
        yield Batch([{"id": 1}])


def test_transient_errors_are_retried(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(connector_registry.BUILTIN, "command", f"{__name__}:FlakyConnector")
    src = json_source("retry", Path("x"), primary_key="id")
    src["source_type"] = "command"
    src["connections"][0]["connection_type"] = "command"
    register(store, src)
    runner = Runner(store)
    runner.backoff = 0.01
    FlakyConnector.failures = 2
    assert runner.sync("retry").sync_status == "success"
    FlakyConnector.failures = 3
    failed = runner.sync("retry")
    assert failed.sync_status == "failed"
    assert failed.error_message == "connection 'primary' failed: connection reset by peer"


def test_explode_where_and_lookback(store: Store, data_dir: Path) -> None:
    orders = [
        {
            "order": "A",
            "ts": "2026-01-05T08:00:00+07:00",
            "lines": [{"item": 1, "qty": 2}, {"item": 2, "qty": 0}],
        },
        {"order": "B", "ts": "2026-01-05T09:00:00+07:00", "lines": [{"item": 1, "qty": 5}]},
    ]
    path = write_json(data_dir / "orders.json", orders)
    register(
        store,
        json_source(
            "lines",
            path,
            primary_key=["order", "item"],
            cursor_field="ts",
            sync_strategy="incremental",
            explode="lines",
            where="row['qty'] > 0",
            lookback=3600,
        ),
    )
    runner = Runner(store)
    assert runner.sync("lines").records_inserted == 2
    # A late row one hour older than the cursor is still picked up thanks to lookback.
    orders.append(
        {"order": "C", "ts": "2026-01-05T08:30:00+07:00", "lines": [{"item": 9, "qty": 1}]}
    )
    write_json(path, orders)
    assert runner.sync("lines").records_inserted == 1
    with store.connect() as conn:
        keys = sorted((r["order"], r["item"]) for r in read_rows(conn, "lines"))
    assert keys == [("A", 1), ("B", 1), ("C", 9)]


def test_explode_of_a_non_list_is_quarantined(store: Store, data_dir: Path) -> None:
    path = write_json(data_dir / "o.json", [{"id": 1, "lines": "oops"}])
    register(store, json_source("bad_explode", path, explode="lines"))
    result = Runner(store).sync("bad_explode")
    assert result.records_rejected == 1
    from factorysync import services

    (row,) = services.quarantined(store, "bad_explode")
    assert row["reasons"] == ["explode: 'lines' holds a str, not a list"]


def test_retention_purges_old_rows(store: Store, data_dir: Path) -> None:
    today = datetime.now(UTC).date()
    rows = [{"id": i, "day": (today - timedelta(days=i * 10)).isoformat()} for i in range(5)]
    path = write_json(data_dir / "r.json", rows)
    src = json_source(
        "ret",
        path,
        primary_key="id",
        cursor_field="day",
        sync_strategy="incremental",
        retention_field="day",
    )
    src["mappings"][0]["data_retention_days"] = 25
    register(store, src)
    assert Runner(store).sync("ret").records_inserted == 5
    assert purge(store, "ret") == 2
    with store.connect() as conn:
        assert sorted(r["id"] for r in read_rows(conn, "ret")) == [0, 1, 2]
        run = conn.execute(select(hist_t).where(hist_t.c.sync_type == "retention")).one()
    assert run.records_deleted == 2


def test_next_due_from_interval_frequency_and_cron() -> None:
    at = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # 07:00 in Asia/Jakarta
    assert next_due({"refresh_interval": 300}, at) == at + timedelta(seconds=300)
    with_minute = {"refresh_interval": 300, "mappings": [{"sync_frequency": "minute"}]}
    assert next_due(with_minute, at) == at + timedelta(seconds=60)
    cron = {"refresh_interval": 300, "schedule": "30 7 * * *"}
    assert next_due(cron, at, "Asia/Jakarta") == datetime(2026, 1, 5, 0, 30, tzinfo=UTC)


def test_bad_cron_is_refused_at_apply() -> None:
    from factorysync.errors import ConfigError
    from factorysync.intake import parse_sources

    src = json_source("c", Path("x"))
    src["schedule"] = "every day"
    with pytest.raises(ConfigError, match="schedule 'every day' is not a valid cron expression"):
        parse_sources({"sources": [src]})


def test_concurrent_sync_of_one_source_is_refused(store: Store, data_dir: Path) -> None:
    from factorysync.engine.runner import AlreadyRunning

    path = write_json(data_dir / "a.json", [{"id": i} for i in range(5)])
    register(store, json_source("once", path))
    runner = Runner(store)
    claim = runner.claim("once")
    with pytest.raises(AlreadyRunning, match="already syncing"):
        runner.sync("once")
    other = threading.Thread(target=runner.execute, args=(claim,))
    other.start()
    other.join(PATIENCE)
    assert not other.is_alive()
    assert runner.sync("once").sync_status == "success"
