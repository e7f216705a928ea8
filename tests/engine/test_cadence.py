"""Cadence: one rule for refresh_interval, sync_frequency and schedule, as the plant
engineer meets it through ``apply``, ``source sync`` and ``source show``."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import update

from factorysync import services
from factorysync.api import create_app
from factorysync.errors import ConfigError
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.store import Store
from tests.conftest import run_cli, write_json
from tests.web.conftest import PASSWORDS, add_users

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def master_data(data_dir: Path, source_id: str = "machines_master", **declared: Any) -> dict:
    """A master-data source like the seed's own example: full strategy, a frequency."""
    path = write_json(
        data_dir / f"{source_id}.json", {"data": [{"id": 1, "name": "Press 1"}, {"id": 2}]}
    )
    mapping = {
        "target_table": source_id,
        "sync_strategy": "full",
        "mapping_config": {"records_path": "data", "primary_key": ["id"]},
    }
    mapping.update(declared.pop("mapping", {}))
    return {
        "source_id": source_id,
        "name": "Master data",
        "source_type": "json",
        "connections": [{"connection_config": {"file_path": str(path)}}],
        "mappings": [mapping],
        **declared,
    }


def apply(tmp_path: Path, *sources: dict) -> Any:
    path = tmp_path / "sources.yaml"
    # Through JSON: shared parts would become YAML aliases, which apply refuses.
    path.write_text(yaml.safe_dump(json.loads(json.dumps({"sources": list(sources)}))))
    return run_cli("apply", str(path))


def shown(source_id: str) -> dict[str, Any]:
    return json.loads(run_cli("source", "show", source_id, "--json", check=True).stdout)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("frequency", "seconds", "text"),
    [
        ("daily", 86400, "every 24 h (sync_frequency daily)"),
        ("hourly", 3600, "every 1 h (sync_frequency hourly)"),
        (None, 3600, "every 1 h (sync_frequency hourly)"),
    ],
)
def test_a_synced_source_is_next_due_one_declared_period_later(
    env: dict[str, str],
    tmp_path: Path,
    data_dir: Path,
    frequency: str | None,
    seconds: int,
    text: str,
) -> None:
    run_cli("init", check=True)
    mapping = {"sync_frequency": frequency} if frequency else {}
    assert apply(tmp_path, master_data(data_dir, mapping=mapping)).returncode == 0
    run_cli("source", "sync", "machines_master", check=True)

    source = shown("machines_master")
    assert source["refresh_interval"] == seconds  # the registry holds the interval in effect
    assert source["cadence"]["text"] == text and source["cadence"]["seconds"] == seconds
    # The next run is one period after this run's start (runs do not drift by their length).
    run = json.loads(run_cli("history", "machines_master", "--json", check=True).stdout)[0]
    assert run["sync_status"] == "success"
    next_sync, last_sync = when(source["next_sync"]), when(source["last_sync"])
    assert next_sync - when(run["sync_started_at"]) == timedelta(seconds=seconds)
    assert timedelta(seconds=seconds - 60) < next_sync - last_sync <= timedelta(seconds=seconds)
    listed = json.loads(run_cli("source", "list", "--json", check=True).stdout)
    assert [s["cadence"]["text"] for s in listed] == [text]
    # Applying the same file again changes nothing: the derived interval is not a change.
    again = apply(tmp_path, master_data(data_dir, mapping=mapping))
    assert again.returncode == 0 and "0 updated" in again.stdout, again.stdout


@SQLITE_ONLY
def test_declarations_that_disagree_are_refused_naming_both(
    env: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:
    run_cli("init", check=True)
    both = master_data(data_dir, refresh_interval=300, mapping={"sync_frequency": "daily"})
    proc = apply(tmp_path, both)
    assert proc.returncode == 2
    assert (
        "sources[0] (source_id 'machines_master'): refresh_interval: 300 s differs from "
        "mappings[0].sync_frequency 'daily' (every 24 h)" in proc.stderr
    ), proc.stderr

    cron = master_data(data_dir, "shifts", schedule="0 6 * * *", refresh_interval=600)
    two_tables = master_data(data_dir, "two", mapping={"sync_frequency": "minute"})
    two_tables["mappings"].append(
        {**two_tables["mappings"][0], "target_table": "two_b", "sync_frequency": "hourly"}
    )
    proc = apply(tmp_path, cron, two_tables)
    assert proc.returncode == 2
    assert "refresh_interval: 600 s and schedule '0 6 * * *' both set when" in proc.stderr
    assert (
        "mappings[1].sync_frequency: 'hourly' differs from mappings[0].sync_frequency 'minute'"
        in proc.stderr
    ), proc.stderr
    # Nothing of a refused file is stored.
    assert json.loads(run_cli("source", "list", "--json", check=True).stdout) == []

    agree = master_data(data_dir, refresh_interval=3600, mapping={"sync_frequency": "hourly"})
    assert apply(tmp_path, agree).returncode == 0
    # Both declared and agreeing: the frequency names the cadence.
    assert shown("machines_master")["cadence"]["text"] == "every 1 h (sync_frequency hourly)"


@SQLITE_ONLY
def test_a_changed_frequency_is_not_overruled_by_the_derived_interval(
    store: Store, data_dir: Path
) -> None:
    """The API and the console send the stored source back with one thing changed: the
    interval the old frequency gave must not stay and contradict the new frequency."""
    services.create_source(store, master_data(data_dir, mapping={"sync_frequency": "daily"}))
    with store.connect() as conn:
        stored = services.public_source(store, get_source(conn, "machines_master"))
    mapping = {k: stored["mappings"][0][k] for k in ("target_table", "mapping_config")}
    change = services.update_source(
        store, "machines_master", {"mappings": [{**mapping, "sync_frequency": "hourly"}]}
    )
    assert "refresh_interval: 86400 → 3600" in change.details
    with store.connect() as conn:
        source = get_source(conn, "machines_master")
    assert source["refresh_interval"] == 3600
    # A declared refresh_interval that disagrees is refused, naming both.
    with pytest.raises(ConfigError) as refused:
        services.update_source(store, "machines_master", {"refresh_interval": 60})
    assert any(
        "refresh_interval: 60 s differs from mappings[0].sync_frequency 'hourly'" in p
        for p in refused.value.problems
    ), refused.value.problems


@SQLITE_ONLY
def test_a_source_stored_with_the_old_default_runs_at_its_frequency(
    store: Store, data_dir: Path
) -> None:
    """Before the rule, a daily source was stored with refresh_interval 300 (the default
    then) and ran every 5 minutes; the frequency now wins without a new apply."""
    services.create_source(store, master_data(data_dir, mapping={"sync_frequency": "daily"}))
    with store.begin() as conn:
        conn.execute(update(reg_t).values(refresh_interval=300))
    with store.connect() as conn:
        source = get_source(conn, "machines_master")
        decl = declaration_of(source, store.box)  # still a valid declaration
    assert decl.refresh_interval == 86400 and not decl.refresh_interval_declared
    result = services.sync_many(store, ["machines_master"])[0]
    assert result.sync_status == "success"
    with store.connect() as conn:
        after = get_source(conn, "machines_master")
    assert (after["next_sync"] - after["last_sync"]).total_seconds() > 86400 - 60
    shown_now = services.public_source(store, after)
    assert shown_now["cadence"]["text"] == "every 24 h (sync_frequency daily)"


@SQLITE_ONLY
def test_the_console_shows_the_cadence_and_does_not_force_an_interval(
    store: Store, data_dir: Path
) -> None:
    add_users(store)
    services.create_source(store, master_data(data_dir, mapping={"sync_frequency": "daily"}))
    with TestClient(create_app(store)) as console:
        login = console.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', login)
        assert csrf
        console.post(
            "/login",
            data={"username": "admin1", "password": PASSWORDS["admin"], "csrf": csrf.group(1)},
        )
        page = console.get("/sources/machines_master").text
        assert (
            '<span id="cadence" data-kind="interval">every 24 h (sync_frequency daily)</span>'
            in page
        )
        form = console.get("/sources/machines_master/edit").text
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form))
        assert fields["refresh_interval"] == ""  # not declared: the form does not invent one
        data = {k: v for k, v in fields.items() if not k.startswith("auth.value")}
        data |= {"intent": "save", "name": "Mesin", "sync_strategy": "full", "priority": "2"}
        data |= {"on_invalid": "quarantine"}
        saved = console.post("/sources/machines_master/edit", data=data, follow_redirects=False)
        assert saved.status_code == 303, saved.text
        data["refresh_interval"] = "600"  # declared against the stored daily frequency
        refused = console.post("/sources/machines_master/edit", data=data)
        assert refused.status_code == 422
        errors = dict(re.findall(r'data-error-for="([^"]+)">([^<]*)<', refused.text))
        assert (
            "600 s differs from mappings[0].sync_frequency &#39;daily&#39;"
            in errors["refresh_interval"]
        ), errors
    with store.connect() as conn:
        source = get_source(conn, "machines_master")
    assert source["name"] == "Mesin" and source["refresh_interval"] == 86400
