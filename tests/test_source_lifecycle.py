"""A source's lifecycle from the CLI and the API, on SQLite and PostgreSQL: delete keeping
its rows or dropping them (a shared target table keeps the other sources' rows and is
dropped only when nothing is left), refused while a run is in progress; duplicate with
its secrets copied on the server, never shown; enable, disable and maintenance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, Table, Text, func, insert, inspect, select, update

from factorysync import services
from factorysync.engine.runner import Runner
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.schema import data_source_quarantine as quarantine_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import data_source_sync_state as state_t
from factorysync.store.schema import infolog
from factorysync.store.store import Store
from tests.api.conftest import Api, cli_with_input, machines, make_api
from tests.conftest import run_cli, write_json

SECRET = "k-LIFECYCLE-9931"


def part_source(source_id: str, path: Path, table: str = "parts") -> dict[str, Any]:
    """A JSON source with a secret, writing ``table`` (several may share it)."""
    return {
        "source_id": source_id,
        "name": source_id.title(),
        "source_type": "json",
        "refresh_interval": 60,
        "connections": [
            {
                "connection_config": {"file_path": str(path)},
                "authentication_config": {"api_key": SECRET},
            }
        ],
        "mappings": [
            {
                "target_table": table,
                "mapping_config": {"records_path": "data", "primary_key": ["machine_id"]},
            }
        ],
    }


def synced(store: Store, data_dir: Path, source_id: str, n: int, table: str = "parts") -> None:
    path = write_json(data_dir / f"{source_id}.json", {"data": machines(n)})
    services.create_source(store, part_source(source_id, path, table))
    result = Runner(store).sync(source_id)
    assert result.sync_status == "success", result.error_message


def rows_of(store: Store, table: str) -> dict[str, int]:
    """Rows per ``_source_id`` in ``table`` ({} when the table does not exist)."""
    with store.connect() as conn:
        if not inspect(conn).has_table(table):
            return {}
        t = Table(table, MetaData(), Column("_source_id", Text()))
        found = conn.execute(select(t.c._source_id, func.count()).group_by(t.c._source_id))
        return {str(sid): int(n) for sid, n in found}


def has_table(store: Store, table: str) -> bool:
    with store.connect() as conn:
        return inspect(conn).has_table(table)


def events(store: Store, event: str) -> list[Any]:
    with store.connect() as conn:
        return list(
            conn.execute(select(infolog).where(infolog.c.event == event).order_by(infolog.c.id))
        )


def count(store: Store, table: Any, source_id: str) -> int:
    with store.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(table).where(table.c.source_id == source_id)
            ).scalar_one()
        )


def quarantine(store: Store, source_id: str) -> None:
    with store.begin() as conn:
        conn.execute(
            insert(quarantine_t).values(
                source_id=source_id,
                target_table="parts",
                content_hash=f"h-{source_id}",
                record={"machineId": None},
                reasons=["machine_id: missing"],
            )
        )


def running_row(store: Store, source_id: str, sync_type: str = "full") -> int:
    """A run in progress on another host (so no check takes it for a dead one of ours)."""
    with store.begin() as conn:
        return int(
            conn.execute(
                insert(hist_t)
                .values(
                    source_id=source_id,
                    sync_type=sync_type,
                    sync_status="running",
                    trigger="test",
                    worker="another-host:4242",
                )
                .returning(hist_t.c.id)
            ).scalar_one()
        )


def end_run(store: Store, run_id: int) -> None:
    with store.begin() as conn:
        conn.execute(update(hist_t).where(hist_t.c.id == run_id).values(sync_status="success"))


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    yield from make_api(store)


# -- API -------------------------------------------------------------------------------
def test_api_delete_keeps_rows_and_history_by_default(api: Api, data_dir: Path) -> None:
    store = api.store
    synced(store, data_dir, "press", 6)
    quarantine(store, "press")
    assert count(store, state_t, "press") > 0

    answer = api.delete("/api/sources/press")
    assert answer.status_code == 204 and answer.content == b""
    assert api.get("/api/sources/press").status_code == 404
    assert rows_of(store, "parts") == {"press": 6}
    assert count(store, state_t, "press") == 0  # cursors and stream state go
    assert count(store, quarantine_t, "press") == 1  # kept, as before
    assert [r["source_id"] for r in api.get("/api/sources/press/history").json()] == ["press"]
    [event] = events(store, "source_deleted")
    assert event.source_id == "press" and event.details["drop_data"] is False
    assert event.details["deleted_by"] == "api:admin-user"


def test_api_delete_drops_only_its_rows_then_the_table(api: Api, data_dir: Path) -> None:
    store = api.store
    synced(store, data_dir, "press", 5)
    synced(store, data_dir, "weld", 3)
    quarantine(store, "press")
    assert rows_of(store, "parts") == {"press": 5, "weld": 3}

    answer = api.delete("/api/sources/press?drop_data=true")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tables"] == {"parts": {"rows_deleted": 5, "table_dropped": False}}
    assert body["rows_deleted"] == 5 and body["quarantine_removed"] == 1
    assert rows_of(store, "parts") == {"weld": 3}  # the other source's rows stay
    assert count(store, quarantine_t, "press") == 0

    # The last source writing the table: once its rows are gone, so is the table.
    answer = api.delete("/api/sources/weld", params={"drop_data": "true"})
    assert answer.json()["tables"] == {"parts": {"rows_deleted": 3, "table_dropped": True}}
    assert not has_table(store, "parts")
    [first, second] = events(store, "source_deleted")
    assert first.details["tables"]["parts"]["table_dropped"] is False
    assert "table(s) parts dropped" in second.message
    assert api.delete("/api/sources/weld?drop_data=true").status_code == 404


def test_api_delete_keeps_a_table_holding_rows_of_a_removed_source(
    api: Api, data_dir: Path
) -> None:
    store = api.store
    synced(store, data_dir, "press", 4)
    synced(store, data_dir, "weld", 2)
    assert api.delete("/api/sources/press").status_code == 204  # its rows are kept
    answer = api.delete("/api/sources/weld?drop_data=true")
    assert answer.json()["tables"]["parts"] == {"rows_deleted": 2, "table_dropped": False}
    assert rows_of(store, "parts") == {"press": 4}


def test_api_delete_refused_while_a_run_is_in_progress(api: Api, data_dir: Path) -> None:
    store = api.store
    synced(store, data_dir, "press", 3)
    run_id = running_row(store, "press")
    refused = api.delete("/api/sources/press?drop_data=true")
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert f"source 'press' is syncing (run {run_id} on another-host:4242)" in detail
    assert "delete it when the run has ended" in detail
    assert rows_of(store, "parts") == {"press": 3}
    end_run(store, run_id)

    window = running_row(store, "press", "realtime")
    refused = api.delete("/api/sources/press")
    assert refused.status_code == 409
    assert "disable it first (factorysync source disable press)" in refused.json()["detail"]
    end_run(store, window)
    assert api.get("/api/sources/press").status_code == 200
    assert api.delete("/api/sources/press?drop_data=true").status_code == 200
    assert events(store, "source_deleted")[0].details["deleted_by"] == "api:admin-user"


def test_api_duplicate_copies_secrets_on_the_server(api: Api, data_dir: Path) -> None:
    store = api.store
    synced(store, data_dir, "press", 4)
    answer = api.post("/api/sources/press/duplicate", json={"source_id": "press2"})
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == "/api/sources/press2"
    assert SECRET not in answer.text
    copy = answer.json()
    assert (copy["source_id"], copy["name"], copy["status"]) == (
        "press2",
        "Press (copy)",
        "inactive",
    )
    assert copy["created_by"] == "admin-user"
    assert copy["connections"][0]["authentication_config"] == {"api_key": "***"}
    assert copy["mappings"][0]["target_table"] == "parts"
    with store.connect() as conn:
        stored = declaration_of(get_source(conn, "press2"), store.box)
    assert stored.connections[0].authentication_config == {"api_key": SECRET}
    [event] = events(store, "source_duplicated")
    assert event.details == {"copy_of": "press", "by": "api:admin-user"}
    assert SECRET not in str(event.message) + str(event.details)

    # The copy runs with the copied secret, writing its own rows next to the original's.
    assert Runner(store).sync("press2").sync_status == "success"
    assert rows_of(store, "parts") == {"press": 4, "press2": 4}

    named = api.post("/api/sources/press/duplicate", json={"source_id": "p3", "name": "Pers 3"})
    assert named.status_code == 201 and named.json()["name"] == "Pers 3"
    taken = api.post("/api/sources/press/duplicate", json={"source_id": "press2"})
    assert taken.status_code == 409 and "exists already" in taken.json()["detail"]
    bad = api.post("/api/sources/press/duplicate", json={"source_id": "Bad Id!"})
    assert bad.status_code == 422 and "source_id" in bad.text
    assert api.post("/api/sources/ghost/duplicate", json={"source_id": "g2"}).status_code == 404
    unknown = api.post("/api/sources/press/duplicate", json={"source_id": "x", "colour": 1})
    assert unknown.status_code == 422


def test_api_lifecycle_roles(api: Api, data_dir: Path) -> None:
    synced(api.store, data_dir, "press", 2)
    for role in ("operator", "viewer"):
        assert api.delete("/api/sources/press", role=role).status_code == 403
        duplicate = api.post("/api/sources/press/duplicate", role=role, json={"source_id": "c"})
        assert duplicate.status_code == 403
    assert api.delete("/api/sources/press", role=None).status_code == 401
    assert api.post("/api/sources/press/reset", role="operator").status_code == 200
    assert api.post("/api/sources/press/reset", role="viewer").status_code == 403
    assert rows_of(api.store, "parts") == {"press": 2}


# -- CLI -------------------------------------------------------------------------------
def test_cli_delete_asks_and_drops_data(store: Store, data_dir: Path) -> None:
    synced(store, data_dir, "press", 5)
    synced(store, data_dir, "weld", 2)

    declined = cli_with_input("source", "delete", "press", "--drop-data", text="n\n")
    assert declined.returncode == 1, declined.stdout + declined.stderr
    assert "delete source press (Press), with its data:" in declined.stdout
    assert "parts: 5 row(s) deleted; the table stays (also written by weld)" in declined.stdout
    assert "history: 1 run(s) kept" in declined.stdout
    assert rows_of(store, "parts") == {"press": 5, "weld": 2}

    done = cli_with_input("source", "delete", "press", "--drop-data", text="y\n")
    assert done.returncode == 0, done.stderr
    assert "parts: 5 row(s) deleted" in done.stdout and "press: deleted" in done.stdout
    assert rows_of(store, "parts") == {"weld": 2}

    dropped = run_cli("source", "delete", "weld", "--drop-data", "--yes", "--json", check=True)
    assert '"table_dropped": true' in dropped.stdout
    assert not has_table(store, "parts")
    first = events(store, "source_deleted")[0]
    assert first.details["deleted_by"].startswith("cli")
    missing = run_cli("source", "delete", "weld", "--yes")
    assert missing.returncode == 1 and "no source 'weld'" in missing.stderr


def test_cli_delete_keeps_data_and_is_refused_while_running(store: Store, data_dir: Path) -> None:
    synced(store, data_dir, "press", 3)
    run_id = running_row(store, "press")
    refused = run_cli("source", "delete", "press", "--keep-data", "--yes")
    assert refused.returncode == 1
    assert f"source 'press' is syncing (run {run_id} on another-host:4242)" in refused.stderr
    end_run(store, run_id)
    kept = run_cli("source", "delete", "press", "--keep-data", "--yes", check=True)
    assert "press: deleted (rows already synced are kept)" in kept.stdout
    assert rows_of(store, "parts") == {"press": 3}


def test_cli_duplicate_and_status(store: Store, data_dir: Path) -> None:
    synced(store, data_dir, "press", 2)
    made = run_cli("source", "duplicate", "press", "press_b", check=True)
    assert "press_b: created as a copy of press (inactive" in made.stdout
    assert SECRET not in made.stdout + made.stderr
    with store.connect() as conn:
        copy = get_source(conn, "press_b")
        assert declaration_of(copy, store.box).connections[0].authentication_config == {
            "api_key": SECRET
        }
    assert copy["status"] == "inactive" and copy["name"] == "Press (copy)"
    taken = run_cli("source", "duplicate", "press", "press_b")
    assert taken.returncode == 1 and "exists already" in taken.stderr
    bad = run_cli("source", "duplicate", "press", "Bad Id")
    assert bad.returncode == 2 and "source_id" in bad.stderr

    for command, status in (("enable", "active"), ("maintenance", "maintenance")):
        proc = run_cli("source", command, "press_b", check=True)
        assert proc.stdout.strip() == f"press_b: {status}"
        with store.connect() as conn:
            assert get_source(conn, "press_b")["status"] == status
    run_cli("source", "disable", "press_b", check=True)
    assert services.sources(store, "inactive")[0]["source_id"] == "press_b"
