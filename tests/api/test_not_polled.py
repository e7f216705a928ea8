"""A run asked of a realtime source is refused, saying where its rows come from, and
nothing is recorded: ``source sync`` and ``POST /api/sources/{id}/sync`` alike."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import func, select

from factorysync.store.schema import data_source_sync_history as hist_t
from tests.api.conftest import Api
from tests.engine.test_runner import register
from tests.realtime.conftest import mqtt_source


def runs_of(api: Api, source_id: str) -> int:
    with api.store.begin() as conn:
        query = select(func.count()).where(hist_t.c.source_id == source_id)
        return int(conn.execute(query).scalar_one())


def test_the_api_refuses_a_run_of_a_subscription_source(api: Api) -> None:
    register(api.store, mqtt_source("press-feed", "127.0.0.1", 1, ["plant/press/#"]))
    answer = api.post("/api/sources/press-feed/sync", role="operator")
    assert answer.status_code == 409
    detail = answer.json()["detail"]
    assert "'press-feed' is an MQTT subscription" in detail
    assert "factorysync run" in detail
    assert runs_of(api, "press-feed") == 0


def test_source_sync_refuses_it_and_exits_non_zero(api: Api, env: dict[str, str]) -> None:
    register(api.store, mqtt_source("press-feed", "127.0.0.1", 1, ["plant/press/#"]))
    proc = subprocess.run(
        [sys.executable, "-m", "factorysync.cli", "source", "sync", "press-feed"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env | {"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: source 'press-feed' is an MQTT subscription: it is written continuously by "
        "the realtime service of 'factorysync run', not by one-off syncs; its live state is "
        "in 'factorysync source list' and 'factorysync status'"
    ]
    assert runs_of(api, "press-feed") == 0
