"""``/metrics``: Prometheus text with run, row, freshness, scheduler, realtime and HTTP
metrics; counts follow the history table as runs finish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from factorysync.api import metrics
from factorysync.engine.runner import Runner
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.store import Store
from factorysync.store.types import utcnow
from tests.api.conftest import Api, machine_source, make_api
from tests.conftest import write_json


def samples(api: Api, role: str | None = "viewer") -> dict[tuple[str, frozenset[Any]], float]:
    response = api.get("/metrics", role=role)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(found: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def test_metrics_follow_runs_and_requests(synced: Api, data_dir: Path) -> None:
    api = synced
    api.get("/api/data/machines", role="viewer")
    found = samples(api)
    assert value(found, "factorysync_runs_total", source_id="machines", status="success") == 1
    assert value(found, "factorysync_rows_total", source_id="machines", action="inserted") == 250
    assert value(found, "factorysync_rows_total", source_id="machines", action="processed") == 250
    assert value(found, "factorysync_run_duration_seconds_count", source_id="machines") == 1
    assert (
        value(found, "factorysync_run_duration_seconds_bucket", source_id="machines", le="+Inf")
        == 1
    )
    # Measured against the sync's own time, not a guess at how long the steps above take.
    with api.store.connect() as conn:
        last_sync = conn.execute(
            select(reg_t.c.last_sync).where(reg_t.c.source_id == "machines")
        ).scalar_one()
    since = value(found, "factorysync_seconds_since_last_success", source_id="machines")
    assert 0 <= since <= (utcnow() - last_sync).total_seconds()
    assert value(found, "factorysync_sources", status="active") == 1
    assert value(found, "factorysync_runs_in_progress") == 0
    assert value(found, "factorysync_scheduler_lag_seconds") >= 0
    http = [
        v
        for (name, labels), v in found.items()
        if name == "factorysync_http_request_duration_seconds_count"
        and ("route", "/api/data/{target_table}") in labels
    ]
    assert http and sum(http) >= 1
    # Realtime ingest reports into the same exposition (families appear once used).
    metrics.REALTIME_MESSAGES.labels("press_line_a").inc(3)
    metrics.REALTIME_LATENCY.labels("press_line_a").observe(0.2)
    found = samples(api)
    assert value(found, "factorysync_realtime_messages_total", source_id="press_line_a") >= 3
    assert value(found, "factorysync_realtime_latency_seconds_count", source_id="press_line_a") >= 1

    # A failed run and another success: counters grow by exactly one each.
    (data_dir / "machines.json").write_text("{broken")
    Runner(api.store).sync("machines")
    write_json(data_dir / "machines.json", {"data": []})
    Runner(api.store).sync("machines")
    found = samples(api)
    assert value(found, "factorysync_runs_total", source_id="machines", status="failed") == 1
    assert value(found, "factorysync_runs_total", source_id="machines", status="success") == 2
    assert value(found, "factorysync_rows_total", source_id="machines", action="deleted") == 250
    assert value(found, "factorysync_run_duration_seconds_count", source_id="machines") == 3


def test_metrics_need_a_token_unless_public(api: Api, store: Store) -> None:
    assert api.get("/metrics", role=None).status_code == 401
    for public in make_api(store, metrics_public=True):
        assert public.get("/metrics", role=None).status_code == 200


def test_runs_still_running_are_counted_when_they_finish(api: Api, data_dir: Path) -> None:
    write_json(data_dir / "m.json", {"data": [{"machineId": "M-1"}]})
    api.post("/api/sources", json=machine_source(data_dir / "m.json"))
    runner = Runner(api.store)
    claim = runner.claim("machines")
    totals = metrics.RunTotals()
    with api.store.connect() as conn:
        totals.update(conn)
    assert totals.running == {claim.run_id} and not totals.runs
    runner.execute(claim)
    with api.store.connect() as conn:
        totals.update(conn)
    assert totals.running == set() and totals.runs == {("machines", "success"): 1}
