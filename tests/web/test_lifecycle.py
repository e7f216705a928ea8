"""A source's lifecycle in the console (SQLite and PostgreSQL): delete with or without its
rows after a confirmation page, duplicate with secrets kept on the server, reset with a
confirmation, status buttons; roles, CSRF, the refusal while a run is in progress; and
the delete flow in a phone-sized browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Column, MetaData, Table, Text, func, insert, inspect, select, update

from factorysync import services
from factorysync.api import create_app
from factorysync.engine.runner import Runner
from factorysync.settings import Settings, reset_settings
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import infolog
from factorysync.store.store import Store
from factorysync.web.i18n import MESSAGES
from tests.conftest import write_json
from tests.waiting import PATIENCE
from tests.web.conftest import PASSWORDS, add_users, serve
from tests.web.test_pages import log_in

SECRET = "k-CONSOLE-LIFE-5521"
PHONE = {"width": 390, "height": 844}


def declaration(source_id: str, path: Path) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": f"Line {source_id}",
        "source_type": "json",
        "connections": [
            {
                "connection_config": {"file_path": str(path)},
                "authentication_config": {"api_key": SECRET},
            }
        ],
        "mappings": [
            {
                "target_table": "counts",
                "mapping_config": {"records_path": "data", "primary_key": ["machine"]},
            }
        ],
    }


def plant(store: Store, data_dir: Path) -> None:
    """Sources ``press`` (3 rows) and ``weld`` (2 rows), sharing the table ``counts``."""
    add_users(store)
    for source_id, n in (("press", 3), ("weld", 2)):
        rows = [{"machine": f"{source_id}-{i}", "count": i} for i in range(n)]
        path = write_json(data_dir / f"{source_id}.json", {"data": rows})
        services.create_source(store, declaration(source_id, path))
        assert Runner(store).sync(source_id).sync_status == "success"


@pytest.fixture
def app(store: Store, data_dir: Path) -> Iterator[TestClient]:
    plant(store, data_dir)
    with TestClient(create_app(store)) as client:
        yield client


def rows_of(store: Store, table: str = "counts") -> dict[str, int]:
    with store.connect() as conn:
        if not inspect(conn).has_table(table):
            return {}
        t = Table(table, MetaData(), Column("_source_id", Text()))
        found = conn.execute(select(t.c._source_id, func.count()).group_by(t.c._source_id))
        return {str(sid): int(n) for sid, n in found}


def exists(store: Store, source_id: str) -> bool:
    return source_id in {s["source_id"] for s in services.sources(store)}


def events(store: Store, event: str) -> list[Any]:
    with store.connect() as conn:
        return list(
            conn.execute(select(infolog).where(infolog.c.event == event).order_by(infolog.c.id))
        )


def test_source_page_offers_the_actions_by_role(app: TestClient) -> None:
    log_in(app, "admin")
    page = app.get("/sources/press").text
    for button in ("delete-source", "duplicate-source", "reset-source", "set-inactive"):
        assert f'id="{button}"' in page, button
    app.cookies.clear()
    log_in(app, "operator")
    page = app.get("/sources/press").text
    assert 'id="reset-source"' in page
    assert 'id="delete-source"' not in page and 'id="duplicate-source"' not in page
    app.cookies.clear()
    log_in(app, "viewer")
    page = app.get("/sources/press").text
    assert 'id="reset-source"' not in page and 'id="delete-source"' not in page


def test_delete_keeping_rows(app: TestClient, store: Store) -> None:
    token = log_in(app, "admin")
    page = app.get("/sources/press/delete")
    assert page.status_code == 200
    assert 'name="drop_data" value="1" id="drop-data">' in page.text  # unchecked
    assert "Also delete the 3 rows this source wrote" in page.text
    assert "3 rows in table counts: the table stays: weld also write it" in page.text
    assert SECRET not in page.text

    done = app.post("/sources/press/delete", data={"csrf": token})
    assert done.status_code == 200 and "Source press deleted." in done.text
    assert 'data-drop-data="0"' in done.text
    assert not exists(store, "press")
    assert rows_of(store) == {"press": 3, "weld": 2}
    [event] = events(store, "source_deleted")
    assert event.details["deleted_by"] == "console:admin1" and event.details["drop_data"] is False
    assert app.get("/sources/press/delete").status_code == 404


def test_delete_with_rows_then_the_table(app: TestClient, store: Store) -> None:
    token = log_in(app, "admin")
    done = app.post("/sources/press/delete", data={"csrf": token, "drop_data": "1"})
    assert done.status_code == 200
    assert 'data-table="counts" data-rows-deleted="3"' in done.text
    assert "table dropped" not in done.text
    assert rows_of(store) == {"weld": 2}

    page = app.get("/sources/weld/delete").text
    assert "2 rows in table counts: the table is dropped (no other source writes it)" in page
    done = app.post("/sources/weld/delete", data={"csrf": token, "drop_data": "1"})
    assert "2 rows deleted from table counts · table dropped" in done.text
    with store.connect() as conn:
        assert not inspect(conn).has_table("counts")


def test_delete_refused_while_a_run_is_in_progress(app: TestClient, store: Store) -> None:
    token = log_in(app, "admin")
    with store.begin() as conn:
        run_id = conn.execute(
            insert(hist_t)
            .values(
                source_id="press",
                sync_type="full",
                sync_status="running",
                worker="another-host:77",
            )
            .returning(hist_t.c.id)
        ).scalar_one()
    refused = app.post("/sources/press/delete", data={"csrf": token, "drop_data": "1"})
    assert refused.status_code == 409
    assert f"(run {run_id} on another-host:77): delete it when the run has ended" in refused.text
    assert 'id="drop-data" checked' in refused.text  # the choice is kept for the retry
    assert exists(store, "press") and rows_of(store)["press"] == 3
    with store.begin() as conn:
        conn.execute(update(hist_t).where(hist_t.c.id == run_id).values(sync_status="success"))
    assert app.post("/sources/press/delete", data={"csrf": token}).status_code == 200


def test_duplicate_keeps_secrets_on_the_server(app: TestClient, store: Store) -> None:
    token = log_in(app, "admin")
    page = app.get("/sources/press/duplicate")
    assert page.status_code == 200
    assert 'value="press_copy"' in page.text and 'value="Line press (copy)"' in page.text
    assert SECRET not in page.text and 'id="secrets-note"' in page.text

    made = app.post(
        "/sources/press/duplicate",
        data={"csrf": token, "new_id": "press_copy", "name": "Line press (copy)"},
        follow_redirects=False,
    )
    assert made.status_code == 303 and made.headers["location"] == "/sources/press_copy/edit"
    form = app.get("/sources/press_copy/edit")
    assert form.status_code == 200 and SECRET not in form.text
    with store.connect() as conn:
        copy = get_source(conn, "press_copy")
        auth = declaration_of(copy, store.box).connections[0].authentication_config
    assert auth == {"api_key": SECRET}
    assert copy["status"] == "inactive" and copy["created_by"] == "admin1"
    [event] = events(store, "source_duplicated")
    assert event.details == {"copy_of": "press", "by": "console:admin1"}

    taken = app.post("/sources/press/duplicate", data={"csrf": token, "new_id": "press_copy"})
    assert taken.status_code == 409 and "exists already" in taken.text
    assert 'value="press_copy"' in taken.text
    bad = app.post("/sources/press/duplicate", data={"csrf": token, "new_id": "Bad Id"})
    assert bad.status_code == 422 and "must be a slug" in bad.text


def test_reset_asks_then_logs(app: TestClient, store: Store) -> None:
    token = log_in(app, "operator")
    page = app.get("/sources/press/reset")
    assert page.status_code == 200 and 'id="confirm-reset"' in page.text
    done = app.post("/sources/press/reset", data={"csrf": token}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"].startswith("/sources/press?notice=Reset%20counts")
    [event] = events(store, "source_reset")
    assert event.details["reset_by"] == "console:operator1"
    assert rows_of(store)["press"] == 3  # rows stay


def test_status_buttons_from_the_source_page(app: TestClient, store: Store) -> None:
    token = log_in(app, "admin")
    for status in ("inactive", "maintenance", "active"):
        page = app.get("/sources/press").text
        assert f'id="set-{status}"' in page
        answer = app.post("/sources/press/status", data={"csrf": token, "status": status})
        assert answer.status_code == 200 and "Status set to" in answer.text
        with store.connect() as conn:
            assert get_source(conn, "press")["status"] == status
    with store.connect() as conn:  # each change is logged with who made it
        logged = conn.execute(
            select(infolog.c.details)
            .where(infolog.c.source_id == "press", infolog.c.event == "source_status")
            .order_by(infolog.c.id)
        ).scalars()
        assert [(d["status"], d["by"]) for d in logged] == [
            (s, "console:admin1") for s in ("inactive", "maintenance", "active")
        ]


def test_roles_and_csrf(app: TestClient, store: Store) -> None:
    token = log_in(app, "operator")
    for action in ("delete", "duplicate"):
        assert app.get(f"/sources/press/{action}").status_code == 403, action
        refused = app.post(f"/sources/press/{action}", data={"csrf": token, "new_id": "x2"})
        assert refused.status_code == 403, action
    app.cookies.clear()
    token = log_in(app, "viewer")
    assert app.get("/sources/press/reset").status_code == 403
    assert app.post("/sources/press/reset", data={"csrf": token}).status_code == 403
    app.cookies.clear()
    log_in(app, "admin")
    for action, data in (
        ("delete", {"drop_data": "1"}),
        ("duplicate", {"new_id": "press_two"}),
        ("reset", {}),
    ):
        for sent in ({}, {"csrf": "forged"}):
            answer = app.post(f"/sources/press/{action}", data={**data, **sent})
            # Refused as a stale form, not for the role.
            assert answer.status_code == 403, action
            assert answer.text == MESSAGES["error.csrf_token"][0], action
    assert exists(store, "press") and not exists(store, "press_two")
    assert rows_of(store)["press"] == 3 and events(store, "source_reset") == []


def test_the_pages_speak_bahasa_indonesia(app: TestClient) -> None:
    token = log_in(app, "admin")
    app.post("/language", data={"csrf": token, "lang": "id", "next": "/"})
    page = app.get("/sources/weld/delete").text
    assert MESSAGES["life.delete_confirm"][1] in page and "Hapus juga 2 baris" in page
    assert MESSAGES["life.duplicate_secrets"][1] in app.get("/sources/weld/duplicate").text
    # Every label of these pages is translated, not copied.
    ours = [k for k in MESSAGES if k.startswith("life.")]
    assert len(ours) > 20 and all(MESSAGES[k][0] != MESSAGES[k][1] for k in ours)
    templates = Path(__file__).resolve().parents[2] / "src" / "factorysync" / "web" / "templates"
    for name in ("confirm_delete", "confirm_duplicate", "confirm_reset", "source_deleted"):
        used = re.findall(r'\bt\("([a-z_.]+)"', (templates / f"{name}.html").read_text())
        assert used and all(k in MESSAGES for k in used), name


# -- in a browser, phone-sized ---------------------------------------------------------
@pytest.fixture
def sqlite_store(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    """The browser flow runs once, on SQLite: the queries are covered on both stores
    above (this module's other tests take the ``backend`` parameter)."""
    values = {
        "FACTORYSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'browser.db'}",
        "FACTORYSYNC_DATA_ROOTS": str(data_dir),
        "FACTORYSYNC_SECRET_KEY": "",
        "FACTORYSYNC_SECRET_KEY_FILE": str(tmp_path / "browser.key"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    store = Store(Settings())
    services.init_store(store)
    yield store
    store.dispose()
    reset_settings()


def test_delete_flow_on_a_phone(sqlite_store: Store, data_dir: Path, browser: Any) -> None:
    store = sqlite_store
    plant(store, data_dir)
    with contextmanager(serve)(store) as server:
        context = browser.new_context(viewport=PHONE, locale="en-US")
        page = context.new_page()
        page.set_default_timeout(int(PATIENCE * 1000))
        page.goto(f"{server.url}/sources/press")
        page.fill("input[name=username]", "admin1")
        page.fill("input[name=password]", PASSWORDS["admin"])
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/sources/press")
        page.click("#delete-source")
        page.wait_for_url(f"{server.url}/sources/press/delete")
        page.check("#drop-data")
        button = page.locator("#confirm-delete")
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        assert box is not None
        assert box["height"] >= 40, box
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
        assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], box
        # Nothing wider than the phone: the page does not scroll sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        button.click()
        page.wait_for_selector("#source-deleted")
        assert page.locator("#source-deleted").get_attribute("data-drop-data") == "1"
        context.close()
    assert rows_of(store) == {"weld": 2} and not exists(store, "press")
