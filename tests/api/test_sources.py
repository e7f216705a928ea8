"""The registry over HTTP: create, read, change, remove, test and sync sources; every
validation error names its field."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from factorysync.engine import runner as runner_module
from factorysync.engine.runner import Runner
from factorysync.security.secret_values import IDENTIFIER_KEYS
from tests.api.conftest import Api, machine_source, machines
from tests.conftest import run_cli, write_json
from tests.waiting import PATIENCE, wait_until


def messages(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [p["msg"] for p in response.json()["detail"]]


def test_create_read_list_update_delete(api: Api, data_dir: Path) -> None:
    write_json(data_dir / "m.json", {"data": machines(3)})
    body = machine_source(data_dir / "m.json", description="press shop")
    created = api.post("/api/sources", json=body)
    assert created.status_code == 201 and created.headers["location"] == "/api/sources/machines"
    source = created.json()
    assert source["created_by"] == "admin-user" and source["description"] == "press shop"
    assert [c["connection_name"] for c in source["connections"]] == ["primary"]
    assert source["connections"][0]["authentication_config"] == {"api_key": "***"}
    assert source["mappings"][0]["target_table"] == "machines"

    again = api.post("/api/sources", json=body)
    assert again.status_code == 409 and "exists already" in again.json()["detail"]
    listed = api.get("/api/sources").json()
    assert [s["source_id"] for s in listed] == ["machines"] and "connections" not in listed[0]
    assert api.get("/api/sources?status=inactive").json() == []

    changed = api.patch("/api/sources/machines", json={"priority": 1, "status": "maintenance"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["priority"], changed.json()["status"]) == (1, "maintenance")
    assert api.get("/api/sources?status=maintenance").json()[0]["source_id"] == "machines"

    assert api.delete("/api/sources/machines").status_code == 204
    assert api.get("/api/sources/machines").status_code == 404
    assert api.delete("/api/sources/machines").status_code == 404
    assert api.patch("/api/sources/machines", json={"priority": 1}).status_code == 404


def test_validation_errors_name_the_field(api: Api, data_dir: Path) -> None:
    good = machine_source(data_dir / "m.json")
    cases = {
        "source_id": ({**good, "source_id": "Bad Id!"}, "source_id"),
        "priority": ({**good, "priority": 9}, "priority"),
        "source_type": ({**good, "source_type": "fax"}, "source_type"),
        "unknown field": ({**good, "colour": "red"}, "colour"),
        "missing name": ({k: v for k, v in good.items() if k != "name"}, "name"),
        "no mappings": ({**good, "mappings": []}, "mappings"),
        "file_path": (
            {**good, "connections": [{"connection_config": {"file_type": "json"}}]},
            "connections[0].connection_config.file_path",
        ),
        "target_table": (
            {**good, "mappings": [{"target_table": "users"}]},
            "mappings.0.target_table",
        ),
        "cursor": (
            {**good, "mappings": [{"target_table": "t", "sync_strategy": "incremental"}]},
            "cursor_field",
        ),
    }
    for case, (body, field) in cases.items():
        found = messages(api.post("/api/sources", json=body))
        assert any(field in m for m in found), (case, found)
    detail = api.post("/api/sources", json={**good, "priority": 9}).json()["detail"][0]
    assert detail["loc"] == ["body", "priority"]
    assert messages(api.post("/api/sources", json=[good]))[0].startswith("body")
    assert (
        api.post(
            "/api/sources", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    # Several problems at once, each named.
    both = messages(api.post("/api/sources", json={**good, "priority": 0, "refresh_interval": 0}))
    assert any("priority" in m for m in both) and any("refresh_interval" in m for m in both)
    assert messages(api.patch("/api/sources/none", json={"source_id": "other"}))  # 422 first
    assert api.get("/api/sources").json() == []


def test_patch_keeps_secrets_not_sent_back(api: Api, data_dir: Path) -> None:
    write_json(data_dir / "m.json", {"data": machines(3)})
    body = machine_source(data_dir / "m.json")
    body["connections"][0]["authentication_config"] = {"user": "plant", "password": "pw-1"}
    body["connections"][0]["connection_config"]["legacy_path"] = "https://plant:pw-2@mes.local/m"
    api.post("/api/sources", json=body)
    shown = api.get("/api/sources/machines").json()
    connection = shown["connections"][0]
    # Identifiers (the user name) are shown; secrets are hidden wherever they appear, and
    # URL passwords anyway.
    assert connection["authentication_config"] == {"user": "plant", "password": "***"}
    assert connection["connection_config"]["legacy_path"] == "https://plant:***@mes.local/m"

    # Sending back what was read changes nothing, secrets included.
    sent_back = {
        "connections": [
            {
                k: connection[k]
                for k in ("connection_name", "connection_config", "authentication_config")
            }
        ]
    }
    assert api.patch("/api/sources/machines", json=sent_back).status_code == 200
    with api.store.connect() as conn:
        from factorysync.store.registry import declaration_of, get_source

        stored = declaration_of(get_source(conn, "machines"), api.store.box).connections[0]
    assert stored.authentication_config == {"user": "plant", "password": "pw-1"}
    assert stored.connection_config["legacy_path"] == "https://plant:pw-2@mes.local/m"

    # Leaving authentication_config out keeps it; sending a new value replaces that key.
    api.patch(
        "/api/sources/machines",
        json={
            "connections": [
                {
                    "connection_name": "primary",
                    "connection_config": {"file_path": str(data_dir / "m.json")},
                }
            ]
        },
    )
    api.patch(
        "/api/sources/machines",
        json={
            "connections": [
                {
                    "connection_name": "primary",
                    "connection_config": {"file_path": str(data_dir / "m.json")},
                    "authentication_config": {"user": "***", "password": "pw-3"},
                }
            ]
        },
    )
    with api.store.connect() as conn:
        stored = declaration_of(get_source(conn, "machines"), api.store.box).connections[0]
    assert stored.authentication_config == {"user": "plant", "password": "pw-3"}


def test_test_endpoint_reports_each_connection(api: Api, data_dir: Path) -> None:
    write_json(data_dir / "m.json", {"data": machines(3)})
    body = machine_source(data_dir / "m.json")
    body["connections"].append(
        {
            "connection_name": "nightly",
            "is_backup": True,
            "connection_config": {"file_path": str(data_dir / "gone.json")},
        }
    )
    api.post("/api/sources", json=body)
    result = api.post("/api/sources/machines/test").json()
    assert result["ok"] is False
    primary, backup = result["connections"]
    assert (primary["connection_name"], primary["ok"]) == ("primary", True)
    assert "file(s)" in primary["message"]
    assert (backup["connection_name"], backup["ok"]) == ("nightly", False)
    assert "file not found" in backup["message"]
    assert api.post("/api/sources/nope/test").status_code == 404


def test_sync_returns_the_run_and_refuses_a_second(
    api: Api, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_json(data_dir / "m.json", {"data": machines(20)})
    api.post("/api/sources", json=machine_source(data_dir / "m.json"))
    started = threading.Event()
    release = threading.Event()
    original = Runner._run

    def slow_run(self: Runner, *args: Any, **kwargs: Any) -> None:
        started.set()
        release.wait(PATIENCE)  # held until the test has seen it running
        original(self, *args, **kwargs)

    monkeypatch.setattr(Runner, "_run", slow_run)
    try:
        first = api.post("/api/sources/machines/sync", role="operator")
        assert first.status_code == 202, first.text
        run = first.json()
        assert run["sync_status"] == "running"
        assert run["url"].endswith(f"/api/runs/{run['run_id']}")
        assert first.headers["location"] == run["url"]
        assert started.wait(PATIENCE)
        assert api.get(f"/api/runs/{run['run_id']}").json()["sync_status"] == "running"
        busy = api.post("/api/sources/machines/sync", role="operator")
        assert busy.status_code == 409 and "already syncing" in busy.json()["detail"]
    finally:
        release.set()
    done = api.wait_run(run["run_id"], timeout=PATIENCE)
    assert done["sync_status"] == "success" and done["records_inserted"] == 20
    assert done["trigger"] == "api:operator-user"
    # The run's row is closed a moment before the process lets go of the source.
    wait_until(lambda: runner_module._running == set(), what="the source to be let go")
    history = api.get("/api/sources/machines/history").json()
    assert [h["id"] for h in history] == [run["run_id"]]
    assert api.get("/api/sources/machines/history?limit=0").status_code == 422
    assert api.post("/api/sources/nope/sync").status_code == 404
    assert api.get("/api/runs/999999").status_code == 404
    assert api.get("/api/runs/0").status_code == 422


def test_sync_can_wait_for_the_run_to_end(
    api: Api, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_json(data_dir / "m.json", {"data": machines(20)})
    api.post("/api/sources", json=machine_source(data_dir / "m.json"))
    done = api.post("/api/sources/machines/sync?wait_s=600", role="operator")
    assert done.status_code == 200, done.text
    run = done.json()
    assert (run["sync_status"], run["records_inserted"]) == ("success", 20)
    assert done.headers["location"].endswith(f"/api/runs/{run['id']}")

    # A run that outlasts wait_s is answered as without it: 202 and where to follow it.
    release = threading.Event()
    original = Runner._run

    def slow_run(self: Runner, *args: Any, **kwargs: Any) -> None:
        release.wait(PATIENCE)  # held until the answer has come
        original(self, *args, **kwargs)

    monkeypatch.setattr(Runner, "_run", slow_run)
    try:
        later = api.post("/api/sources/machines/sync?wait_s=0.2", role="operator")
        assert later.status_code == 202 and later.json()["sync_status"] == "running"
    finally:
        release.set()
    assert api.wait_run(later.json()["run_id"], timeout=PATIENCE)["records_updated"] == 0
    wait_until(lambda: runner_module._running == set(), what="the source to be let go")

    # A failed run is still the finished run, with its (redacted) error.
    (data_dir / "m.json").write_text("{ not json")
    failed = api.post("/api/sources/machines/sync?wait_s=600", role="operator")
    assert failed.status_code == 200 and failed.json()["sync_status"] == "failed"
    assert failed.json()["error_message"]
    for wrong in ("-1", "3601", "soon"):
        answer = api.post(f"/api/sources/machines/sync?wait_s={wrong}", role="operator")
        assert answer.status_code == 422, wrong


def test_status_and_templates(api: Api, data_dir: Path) -> None:
    write_json(data_dir / "m.json", {"data": machines(3)})
    api.post("/api/sources", json=machine_source(data_dir / "m.json"))
    status = api.get("/api/status", role="viewer").json()
    assert status["sources"] == 1 and status["by_status"] == {"active": 1}
    assert status["runs_in_progress"] == 0 and status["scheduler_lag_s"] >= 0
    from factorysync.store.schema import data_source_templates

    with api.store.begin() as conn:
        conn.execute(
            data_source_templates.insert().values(
                template_name="mes_api",
                display_name="MES API",
                template_type="api",
                template_config={
                    "source_type": "api",
                    "authentication_config": api.store.box.encrypt_config({"token": "t-1"}),
                },
            )
        )
    templates = {t["template_name"]: t for t in api.get("/api/templates", role="operator").json()}
    assert templates["mes_api"]["authentication_config"] == {"token": "***"}
    assert all(
        v == "***" or k in IDENTIFIER_KEYS
        for t in templates.values()
        for k, v in t["authentication_config"].items()
    )


def test_templates_never_show_a_secret_stored_in_clear(api: Api) -> None:
    """A template written by plain SQL may hold a token in clear inside template_config:
    the API and ``source templates`` mask it wherever it would appear, and name its
    author, not the user id."""
    from sqlalchemy import select

    from factorysync.store.schema import data_source_templates, users

    token = "tok-in-clear-7f3a9c"
    with api.store.begin() as conn:
        author = conn.execute(
            select(users.c.id).where(users.c.username == "admin-user")
        ).scalar_one()
        conn.execute(
            data_source_templates.insert().values(
                template_name="plain_sql_api",
                template_type="api",
                template_config={
                    "source_type": "api",
                    "connection_config": {"base_url": "https://mes.example"},
                    "authentication_config": {"type": "bearer", "token": token},
                },
                created_by=author,
            )
        )
    answer = api.get("/api/templates", role="operator")
    assert answer.status_code == 200
    assert token not in answer.text
    shown = {t["template_name"]: t for t in answer.json()}["plain_sql_api"]
    assert shown["authentication_config"] == {"type": "bearer", "token": "***"}
    assert shown["connection_config"] == {"base_url": "https://mes.example"}
    assert shown["created_by"] == "admin-user" and "created_by_id" not in shown
    listed = run_cli("source", "templates", "--json", check=True)  # the same view
    assert token not in listed.stdout and "plain_sql_api" in listed.stdout
