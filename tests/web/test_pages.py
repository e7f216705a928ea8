"""Console pages through the app (SQLite and PostgreSQL): sessions, CSRF, roles, the
source form's validation and write-only secrets, language and time zone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from factorysync import services
from factorysync.alerts import RULES, STATES
from factorysync.alerts.records import SEVERITIES
from factorysync.api import create_app
from factorysync.store.accounts import ROLES
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import users as users_t
from factorysync.store.store import Store
from factorysync.web.i18n import MESSAGES
from factorysync.web.session import SESSION_COOKIE
from factorysync.web.views import SOURCE_STATUSES
from tests.conftest import write_json
from tests.web.conftest import PASSWORDS, add_users

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "factorysync" / "web" / "templates"
SECRET = "k-SECRET-7731"


@pytest.fixture
def app(store: Store, data_dir: Path) -> Iterator[TestClient]:
    add_users(store)
    path = write_json(data_dir / "oee.json", {"data": [{"machine": "M-1", "oee": 0.81}]})
    services.create_source(
        store,
        {
            "source_id": "oee",
            "name": "OEE Mesin",
            "source_type": "json",
            "connections": [
                {
                    "connection_config": {"file_path": str(path)},
                    "authentication_config": {"api_key": SECRET},
                }
            ],
            "mappings": [{"target_table": "oee", "mapping_config": {"records_path": "data"}}],
        },
    )
    with TestClient(create_app(store)) as client:
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def log_in(client: TestClient, role: str) -> str:
    """Log in; returns the CSRF token of the session's forms."""
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={
            "username": f"{role}1",
            "password": PASSWORDS[role],
            "csrf": token,
            "next": "/sources",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/sources"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    return csrf_of(client.get("/sources").text)


def test_every_page_needs_a_session(app: TestClient) -> None:
    for url in ("/", "/sources", "/sources/oee", "/alerts", "/sources/new"):
        answer = app.get(url, follow_redirects=False)
        assert answer.status_code == 303, url
        assert answer.headers["location"].startswith("/login?next=")
    assert app.get("/sources/rows", headers={"X-Fragment": "rows"}).status_code == 401
    assert app.post("/sources/oee/sync", data={"csrf": "x"}).status_code == 401


def test_login_needs_the_form_token_and_the_right_password(app: TestClient) -> None:
    refused = app.post("/login", data={"username": "admin1", "password": PASSWORDS["admin"]})
    assert refused.status_code == 403 and "form expired" in refused.text
    token = csrf_of(app.get("/login").text)
    wrong = app.post("/login", data={"username": "admin1", "password": "nope", "csrf": token})
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    assert SESSION_COOKIE not in app.cookies
    token = csrf_of(app.get("/login?next=//evil.example").text)
    answer = app.post(
        "/login",
        data={
            "username": "admin1",
            "password": PASSWORDS["admin"],
            "csrf": token,
            "next": "//evil.example",
        },
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/"


def test_posts_need_the_csrf_token_and_logout_revokes(app: TestClient) -> None:
    token = log_in(app, "operator")
    assert app.post("/sources/oee/sync", data={}).status_code == 403
    assert (
        app.post(
            "/sources/oee/sync", data={"csrf": token[:-1] + ("1" if token.endswith("0") else "0")}
        ).status_code
        == 403
    )
    assert (
        app.post("/sources/oee/sync", data={"csrf": token}, follow_redirects=False).status_code
        == 303
    )
    session = app.cookies[SESSION_COOKIE]
    assert app.post("/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
    app.cookies.set(SESSION_COOKIE, session)  # the old cookie no longer opens a session
    assert app.get("/", follow_redirects=False).status_code == 303


def test_roles(app: TestClient) -> None:
    token = log_in(app, "viewer")
    page = app.get("/sources/oee").text
    assert 'id="sync-now"' not in page and 'id="edit-source"' not in page
    assert SECRET not in page and "connection_config" not in page
    assert app.get("/sources/new").status_code == 403
    assert app.get("/sources/oee/edit").status_code == 403
    for action, data in (("sync", {}), ("status", {"status": "inactive"}), ("test", {})):
        answer = app.post(f"/sources/oee/{action}", data={"csrf": token, **data})
        assert answer.status_code == 403, action
    assert app.post("/sources/new", data={"csrf": token, "source_type": "json"}).status_code == 403

    token = log_in(app, "operator")
    page = app.get("/sources/oee").text
    assert 'id="sync-now"' in page and 'id="edit-source"' not in page
    assert (
        app.post("/sources/oee/status", data={"csrf": token, "status": "inactive"}).status_code
        == 403
    )
    tested = app.post("/sources/oee/test", data={"csrf": token})
    assert tested.status_code == 200 and 'data-ok="true"' in tested.text


def test_form_errors_sit_next_to_their_fields(app: TestClient) -> None:
    token = log_in(app, "admin")
    answer = app.post(
        "/sources/new",
        data={
            "csrf": token,
            "intent": "save",
            "source_type": "csv",
            "connection_type": "file",
            "source_id": "Bad Id",
            "name": "x",
            "priority": "9",
            "refresh_interval": "60",
            "cfg.file_path": "",
            "cfg.delimiter": ";;",
            "target_table": "line",
            "sync_strategy": "incremental",
            "f.col.0": "",
        },
    )
    assert answer.status_code == 422
    errors = dict(re.findall(r'data-error-for="([^"]+)">([^<]*)<', answer.text))
    assert "must be a slug" in errors["source_id"]
    assert "less than or equal to 3" in errors["priority"]
    assert errors["cfg.file_path"] == "Field required"
    assert "one character" in errors["cfg.delimiter"]
    assert "needs mapping_config.cursor_field" in errors["mapping"]
    assert 'value="Bad Id"' in answer.text  # what was typed is kept


def test_secrets_are_write_only(app: TestClient, store: Store) -> None:
    token = log_in(app, "admin")
    form = app.get("/sources/oee/edit").text
    assert SECRET not in form and re.search(r'name="auth\.name\.\d+" value="api_key"', form)
    assert SECRET not in app.get("/sources/oee").text
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form))
    data = {k: v for k, v in fields.items() if not k.startswith("auth.value")}
    data |= {"csrf": token, "intent": "save", "name": "OEE per Mesin", "sync_strategy": "full"}
    data |= {"priority": "1", "on_invalid": "quarantine"}
    saved = app.post("/sources/oee/edit", data=data, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    with store.connect() as conn:
        decl = declaration_of(get_source(conn, "oee"), store.box)
    assert decl.name == "OEE per Mesin" and decl.priority == 1
    assert decl.connections[0].authentication_config == {"api_key": SECRET}  # kept
    # A probe from the edit form uses the stored secret without showing it.
    probe = app.post(
        "/sources/oee/edit", data={**data, "intent": "preview"}, headers={"X-Fragment": "probe"}
    )
    assert probe.status_code == 200 and "M-1" in probe.text and SECRET not in probe.text


def test_language_is_remembered_per_user(app: TestClient, store: Store) -> None:
    token = log_in(app, "viewer")
    assert "Data resources" in app.get("/sources").text
    answer = app.post(
        "/language", data={"csrf": token, "lang": "id", "next": "/alerts"}, follow_redirects=False
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/alerts"
    with store.connect() as conn:
        assert (
            conn.execute(select(users_t.c.language).where(users_t.c.username == "viewer1")).scalar()
            == "id"
        )
    app.cookies.clear()
    log_in(app, "viewer")
    page = app.get("/sources").text
    assert "Sumber data" in page and "Data resources" not in page
    assert app.post("/language", data={"csrf": csrf_of(page), "lang": "fr"}).status_code == 422


def test_times_are_shown_in_the_plant_zone(app: TestClient, store: Store) -> None:
    with store.begin() as conn:
        conn.execute(
            insert(hist_t).values(
                source_id="oee",
                sync_type="full",
                sync_status="success",
                records_processed=10,
                sync_duration_ms=500,
                sync_started_at=datetime(2026, 1, 5, 1, 0, tzinfo=UTC),
            )
        )
    log_in(app, "viewer")
    page = app.get("/sources/oee").text
    assert "05-01 08:00:00" in page  # 01:00 UTC is 08:00 in Asia/Jakarta
    assert "Times in Asia/Jakarta" in page
    assert 'data-kind="line" data-points="1"' in page


def test_every_label_exists_in_both_languages() -> None:
    used = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r'\bt\(\s*["\']([a-z0-9_.]+)["\']', template.read_text()))
    assert len(used) > 50, "labels not found in the templates"
    # Keys made from a value: every value they can take.
    used = {k for k in used if not k.endswith(".")}
    used |= {f"status.{s}" for s in SOURCE_STATUSES}
    used |= {f"run.{s}" for s in ("running", "success", "failed", "partial")}
    used |= {f"role.{r}" for r in ROLES} | {f"alert.{s}" for s in STATES}
    used |= {f"rule.{r}" for r in RULES} | {f"severity.{s}" for s in SEVERITIES}
    missing = sorted(k for k in used if k not in MESSAGES)
    assert not missing, missing
    for key, (english, bahasa) in MESSAGES.items():
        assert english.strip() and bahasa.strip(), key
