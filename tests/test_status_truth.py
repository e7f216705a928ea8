"""What ``status``, ``source list``, the API, ``/metrics`` and the console say is true:
scheduler lag counts only polled sources, realtime and push sources show their live
state, a source failing every run shows as failing, and a killed worker shows as dead."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from factorysync.api import create_app
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import workers as workers_t
from factorysync.store.store import Store
from factorysync.store.types import utcnow
from tests.api.conftest import role_tokens, start_server
from tests.conftest import run_cli, write_json
from tests.realtime.conftest import (  # noqa: F401 - fixtures
    Publisher,
    broker,
    mqtt_source,
    publisher,
    topic_root,
)
from tests.waiting import wait_until
from tests.web.conftest import PASSWORDS, add_users


def apply(tmp_path: Path, *sources: dict[str, Any]) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps({"sources": list(sources)}))))
    run_cli("apply", str(path), check=True)


def cli_json(*args: str) -> Any:
    return json.loads(run_cli(*args, "--json", check=True).stdout)


def json_source(source_id: str, path: Path, **mapping: Any) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": source_id,
        "source_type": "json",
        "connections": [{"connection_config": {"file_path": str(path)}}],
        "mappings": [
            {
                "target_table": source_id,
                "mapping_config": {"records_path": "data", "primary_key": ["id"]},
                **mapping,
            }
        ],
    }


def push_source(source_id: str) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": source_id,
        "source_type": "push",
        "connections": [{"connection_config": {}}],
        "mappings": [
            {
                "target_table": source_id.replace("-", "_"),
                "sync_strategy": "realtime",
                "mapping_config": {"primary_key": ["machine"]},
            }
        ],
    }


# -- lag and live state ----------------------------------------------------------------
def test_lag_counts_polled_sources_and_realtime_ones_show_their_live_state(
    env: dict[str, str],
    tmp_path: Path,
    data_dir: Path,
    broker: tuple[str, int],  # noqa: F811
    publisher: Publisher,  # noqa: F811
    topic_root: str,  # noqa: F811
) -> None:
    token = run_cli("init", check=True).stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    write_json(data_dir / "shifts.json", {"data": [{"id": 1}, {"id": 2}]})
    apply(
        tmp_path,
        mqtt_source("press-a", *broker, [f"{topic_root}/a/#"], mapping={"primary_key": ["m"]}),
        mqtt_source("press-b", *broker, [f"{topic_root}/b/#"], mapping={"primary_key": ["m"]}),
        push_source("scale-push"),
        json_source("shifts", data_dir / "shifts.json", sync_frequency="hourly"),
    )
    server = start_server("run", env=env)
    store = Store()
    try:
        sent = iter(range(1_000_000))

        def press_a_receiving() -> dict[str, Any] | None:
            # Published until the subscription is up: nothing says when from outside.
            publisher.publish(f"{topic_root}/a/line1", {"m": f"M-{next(sent)}", "v": 1})
            found = {r["source_id"]: r for r in cli_json("status")["realtime"]}
            return found["press-a"] if found["press-a"]["state"] == "receiving" else None

        wait_until(press_a_receiving, what="press-a receiving", poll_s=0.3)
        with httpx2.Client(base_url=server.url, headers=headers, timeout=30) as client:
            pushed = client.post("/api/ingest/scale-push", json=[{"machine": "S-1", "kg": 5}])
            assert pushed.status_code == 200, pushed.text
            wait_until(
                lambda: cli_json("source", "show", "shifts")["last_sync"],
                what="the scheduler's first run of shifts",
            )
            # Their history windows leave subscription and push sources with a next_sync
            # in the past, which the scheduler never acts on: it is no lag.
            with store.begin() as conn:
                conn.execute(
                    update(reg_t)
                    .where(reg_t.c.source_id.in_(["press-a", "press-b", "scale-push"]))
                    .values(next_sync=utcnow() - timedelta(hours=1))
                )
            status = cli_json("status")
            assert status["scheduler_lag_s"] < 5, status
            live = {r["source_id"]: r for r in status["realtime"]}
            assert set(live) == {"press-a", "press-b", "scale-push"}
            assert live["press-a"]["state"] == "receiving"
            assert live["press-a"]["records_last_minute"] >= 1
            assert live["press-a"]["last_message_age_s"] < 60
            assert live["press-b"]["state"] == "waiting"
            assert live["press-b"]["last_message_at"] is None
            assert live["scale-push"]["state"] == "receiving"
            # Subscriptions say since when they are up; push sources have none.
            assert live["press-a"]["subscribed_since"] is not None
            assert live["press-b"]["subscribed_since"] is not None
            assert live["scale-push"]["subscribed_since"] is None

            api_status = client.get("/api/status").json()
            assert api_status["scheduler_lag_s"] < 5
            assert {r["source_id"] for r in api_status["realtime"]} == set(live)
            listed = {s["source_id"]: s for s in client.get("/api/sources").json()}
            assert listed["press-a"]["live"]["state"] == "receiving"
            assert listed["press-a"]["cadence"]["text"] == "continuous (mqtt subscription)"
            assert listed["shifts"]["live"] is None
            assert listed["shifts"]["cadence"]["text"] == "every 1 h (sync_frequency hourly)"
            metrics = client.get("/metrics").text
            lag = re.search(r"^factorysync_scheduler_lag_seconds (\S+)$", metrics, re.M)
            assert lag and float(lag.group(1)) < 5
            ages = dict(
                re.findall(
                    r'^factorysync_realtime_last_message_age_seconds\{source_id="([^"]+)"\} (\S+)$',
                    metrics,
                    re.M,
                )
            )
            assert set(ages) == {"press-a", "scale-push"} and float(ages["press-a"]) < 60

        table = run_cli("source", "list", check=True).stdout
        rows = {line.split()[0]: line for line in table.splitlines() if line.strip()}
        assert "receiving" in rows["press-a"] and "/min" in rows["press-a"]
        assert "waiting" in rows["press-b"]
        assert "ago" not in rows["press-b"].split("waiting", 1)[1]  # no past "next sync"
        assert re.search(r"\bin (\d+m|1h)\b", rows["shifts"]), rows["shifts"]  # next run
    finally:
        store.dispose()
        code, _, err = server.stop(signal.SIGTERM)
    assert code == 0, err


# -- failing -------------------------------------------------------------------------
def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def log_in(client: TestClient, role: str) -> None:
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"username": f"{role}1", "password": PASSWORDS[role], "csrf": token, "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303


@pytest.fixture
def console(store: Store) -> Iterator[TestClient]:
    add_users(store)
    with TestClient(create_app(store)) as client:
        yield client


def test_a_source_failing_every_run_shows_as_failing_on_every_surface(
    store: Store, console: TestClient, tmp_path: Path, data_dir: Path
) -> None:
    write_json(data_dir / "fine.json", {"data": [{"id": 1}]})
    missing = data_dir / "gone" / "oee.json"
    apply(tmp_path, json_source("fine", data_dir / "fine.json"), json_source("oee", missing))
    run_cli("source", "sync", "fine", check=True)
    for _ in range(3):
        assert run_cli("source", "sync", "oee").returncode != 0

    status = cli_json("status")
    assert status["by_status"] == {"active": 2}  # the circuit is not open yet
    assert status["failing"] == 1
    assert [(f["source_id"], f["consecutive_failures"]) for f in status["failing_sources"]] == [
        ("oee", 3)
    ]
    listed = {s["source_id"]: s for s in cli_json("source", "list")}
    assert listed["oee"]["failing"] and listed["oee"]["consecutive_failures"] == 3
    assert not listed["fine"]["failing"]
    table = run_cli("source", "list", check=True).stdout
    assert re.search(r"^\s*oee .*active failing \(3\)", table, re.M), table
    assert "1 failing" in table

    headers = {"Authorization": f"Bearer {role_tokens(store)['operator']}"}
    api = {s["source_id"]: s for s in console.get("/api/sources", headers=headers).json()}
    assert (api["oee"]["failing"], api["oee"]["consecutive_failures"]) == (True, 3)
    assert (api["fine"]["failing"], api["fine"]["consecutive_failures"]) == (False, 0)
    one = console.get("/api/sources/oee", headers=headers).json()
    assert one["status"] == "active" and one["failing"] and one["consecutive_failures"] == 3
    assert console.get("/api/status", headers=headers).json()["failing"] == 1
    metrics = console.get("/metrics", headers=headers).text
    assert re.search(r"^factorysync_sources_failing 1\.0$", metrics, re.M)
    assert 'factorysync_source_consecutive_failures{source_id="oee"} 3.0' in metrics

    log_in(console, "viewer")
    overview = console.get("/").text
    tile = re.search(
        r'<a class="tile([^"]*)" href="/sources\?status=failing"[^>]*><b>(\d+)</b>', overview
    )
    assert tile and "st-error" in tile.group(1) and tile.group(2) == "1", overview
    rows = console.get("/sources").text
    assert re.search(r'data-source="oee" data-status="active" data-failing="3"', rows)
    assert 'data-source="fine" data-status="active">' in rows
    only = console.get("/sources?status=failing").text
    assert 'data-source="oee"' in only and 'data-source="fine"' not in only
    detail = console.get("/sources/oee").text
    assert re.search(r'class="badge st-error failing" data-failing="3"', detail)

    write_json(missing, {"data": [{"id": 7}]})
    run_cli("source", "sync", "oee", check=True)
    assert cli_json("status")["failing"] == 0
    assert 'data-failing="' not in console.get("/sources").text


# -- workers -------------------------------------------------------------------------
def start_worker(
    env: dict[str, str], cwd: Path, name: str, lease_s: float
) -> subprocess.Popen[bytes]:
    with (cwd / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "factorysync.cli",
                "worker",
                "--name",
                name,
                "--lease-seconds",
                str(lease_s),
            ],
            env={**os.environ, **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_killed_worker_is_shown_dead_after_its_lease(
    store: Store, env: dict[str, str], tmp_path: Path
) -> None:
    lease = 4.0
    run_cli("init", check=True)
    workers = {n: start_worker(env, tmp_path, n, lease) for n in ("line-a", "line-b")}

    def by_name() -> dict[str, dict[str, Any]]:
        return {w["worker_id"].rsplit(":", 1)[1]: w for w in cli_json("status")["workers"]}

    try:
        wait_until(
            lambda: (
                {n: w["status"] for n, w in by_name().items()}
                == {"line-a": "alive", "line-b": "alive"}
            ),
            what="two live workers",
            state=by_name,
        )
        victim = workers["line-a"]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
        killed = time.monotonic()
        wait_until(
            lambda: by_name()["line-a"]["status"] == "dead",
            what="the killed worker shown dead",
            state=by_name,
        )
        assert time.monotonic() - killed >= lease - 1  # not before its lease ran out

        def table_status() -> dict[str, str]:
            with store.connect() as conn:
                rows = conn.execute(select(workers_t.c.worker_id, workers_t.c.status)).all()
            return {r.worker_id.rsplit(":", 1)[1]: r.status for r in rows}

        # The survivor's heartbeat marks it in the table too, and stays alive itself.
        wait_until(
            lambda: table_status() == {"line-a": "dead", "line-b": "alive"},
            what="the workers table marking line-a dead",
            state=table_status,
        )
        metrics_alive = [w for w in by_name().values() if w["status"] == "alive"]
        assert [w["worker_id"].rsplit(":", 1)[1] for w in metrics_alive] == ["line-b"]
    finally:
        for w in workers.values():
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers.values():
            w.wait(timeout=60)
    assert by_name()["line-b"]["status"] == "stopped"
