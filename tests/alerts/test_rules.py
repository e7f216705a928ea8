"""Alert rules and records: de-duplication, acknowledge, staleness, rejected rows,
realtime silence; and ``/api/alerts``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from factorysync.alerts import records, rules
from factorysync.engine.runner import Runner
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.store import Store
from factorysync.store.types import utcnow
from tests.alerts.conftest import file_source
from tests.api.conftest import make_api


def _alerts(store: Store, **kw: object) -> list[dict]:
    with store.connect() as conn:
        return records.list_alerts(conn, **kw)  # type: ignore[arg-type]


def test_one_open_alert_per_source_and_rule(store: Store) -> None:
    now = utcnow()
    alert = {"source_id": "a", "rule": "stale", "message": "a is stale"}
    with store.begin() as conn:
        records.raise_alerts(conn, [alert, {**alert, "source_id": "b"}], now)
        records.raise_alerts(conn, [{**alert, "message": "a is staler"}], now)
    found = {a["source_id"]: a for a in _alerts(store)}
    assert found["a"]["occurrences"] == 2 and found["a"]["message"] == "a is staler"
    assert found["b"]["occurrences"] == 1
    with store.begin() as conn:
        assert records.resolve(conn, ["stale"], now, source_ids=["a"]) == 1
        records.raise_alerts(conn, [alert], now)  # the condition returns: a new alert
    states = sorted((a["source_id"], a["state"]) for a in _alerts(store))
    assert states == [("a", "open"), ("a", "resolved"), ("b", "open")]


def test_acknowledge_keeps_the_alert_until_it_resolves(store: Store) -> None:
    with store.begin() as conn:
        records.raise_alerts(conn, [{"source_id": "a", "rule": "stale", "message": "m"}], utcnow())
        alert_id = records.list_alerts(conn)[0]["id"]
        acked = records.acknowledge(conn, alert_id, "budi")
        assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == "budi"
        # Seen again while acknowledged: still one alert, still acknowledged.
        records.raise_alerts(conn, [{"source_id": "a", "rule": "stale", "message": "m"}], utcnow())
    [alert] = _alerts(store)
    assert alert["state"] == "acknowledged" and alert["occurrences"] == 2


def test_staleness_and_silence(store: Store, data_dir: Path) -> None:
    file_source(store, data_dir, "fresh")
    file_source(store, data_dir, "old")
    file_source(store, data_dir, "paused")
    file_source(
        store,
        data_dir,
        "spindle",
        source_type="mqtt",
        connections=[{"connection_config": {"host": "127.0.0.1", "topics": ["plant/#"]}}],
    )
    now = utcnow()
    with store.begin() as conn:
        conn.execute(update(reg_t).values(last_sync=now - timedelta(seconds=30)))
        conn.execute(  # 3 × 60 s interval without success: stale
            update(reg_t)
            .where(reg_t.c.source_id.in_(["old", "paused"]))
            .values(last_sync=now - timedelta(seconds=200))
        )
        conn.execute(
            update(reg_t).where(reg_t.c.source_id == "paused").values(status="maintenance")
        )
        conn.execute(  # no MQTT message for 11 minutes
            update(reg_t)
            .where(reg_t.c.source_id == "spindle")
            .values(last_sync=now - timedelta(seconds=660))
        )
        rules.check_sources(conn, store.settings, now)
    found = {(a["source_id"], a["rule"]) for a in _alerts(store, states=["open"])}
    assert found == {("old", "stale"), ("spindle", "realtime_silence")}
    message = _alerts(store, source_id="old")[0]["message"]
    assert "last success 0:03:20 ago (expected every 0:01:00)" in message

    Runner(store).sync("old")  # a success resolves staleness at once
    with store.begin() as conn:
        conn.execute(update(reg_t).where(reg_t.c.source_id == "spindle").values(last_sync=utcnow()))
        rules.check_sources(conn, store.settings, utcnow())
    assert _alerts(store, states=["open"]) == []
    assert {a["rule"] for a in _alerts(store, states=["resolved"])} == {
        "stale",
        "realtime_silence",
    }


def test_rejected_rows_rate(store: Store, data_dir: Path) -> None:
    path = file_source(
        store,
        data_dir,
        "quality",
        mappings=[
            {
                "target_table": "quality",
                "mapping_config": {
                    "primary_key": ["id"],
                    "validate": [{"field": "qty", "rule": "min", "value": 0}],
                },
            }
        ],
    )
    path.write_text('[{"id": 1, "qty": -1}, {"id": 2, "qty": 3}]', encoding="utf-8")
    result = Runner(store).sync("quality")
    assert result.sync_status == "success" and result.records_rejected == 1
    [alert] = _alerts(store)
    assert alert["rule"] == "rejected_rows" and "rejected 1 of 2 records (50%)" in alert["message"]
    path.write_text('[{"id": 1, "qty": 1}, {"id": 2, "qty": 3}]', encoding="utf-8")
    Runner(store).sync("quality")
    assert _alerts(store)[0]["state"] == "resolved"


def test_a_broken_rule_never_fails_the_run(store: Store, data_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    file_source(store, data_dir, "steady")

    def broken(*args: object) -> int:
        raise RuntimeError("rule bug")

    monkeypatch.setattr(rules, "evaluate_run", broken)
    assert Runner(store).sync("steady").sync_status == "success"


def test_api_lists_and_acknowledges(store: Store) -> None:
    with store.begin() as conn:
        records.raise_alerts(
            conn,
            [
                {"source_id": "a", "rule": "rejected_rows", "message": "a"},
                {"source_id": "b", "rule": "consecutive_failures", "message": "b"},
            ],
            utcnow(),
        )
    api = next(make_api(store))
    listed = api.get("/api/alerts", role="viewer")
    assert listed.status_code == 200 and len(listed.json()) == 2
    assert "notified_state" not in listed.json()[0]
    alert_id = next(a["id"] for a in listed.json() if a["source_id"] == "b")
    assert api.post(f"/api/alerts/{alert_id}/acknowledge", role="viewer").status_code == 403
    acked = api.post(f"/api/alerts/{alert_id}/acknowledge", role="operator")
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "operator-user"
    only_open = api.get("/api/alerts?state=open", role="viewer").json()
    assert [a["source_id"] for a in only_open] == ["a"]
    assert [a["source_id"] for a in api.get("/api/alerts?source_id=b").json()] == ["b"]
    missing = api.post("/api/alerts/999999/acknowledge")
    assert missing.status_code == 404 and "no alert 999999" in missing.json()["detail"]
    api.client.__exit__(None, None, None)
