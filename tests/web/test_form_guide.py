"""The add/edit source form that guides, in a real browser (system Chromium) at a laptop
(1440×900) and a phone (390×844) size: a CSV file, a PostgreSQL table with every awkward
column type and a JSON API are added from scratch with only the type card, Test,
Discover, Preview and the connection's own inputs (discovery fills the target table, key
and fields: no field name is typed), saved, synced from the source page, and their rows
read back. Every result shows right under the buttons, a stale error banner goes away
after a good test, secrets are password inputs never sent back, and streaming types
start on the ``realtime`` strategy.

Without JavaScript the server does the same: a ``discover`` post answers the whole form
filled in. (OPC UA browsing and ticking nodes: test_form_guide_opcua.py.)
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from factorysync import services
from factorysync.api import create_app
from factorysync.store.store import Store
from factorysync.store.targets.read import read_rows
from factorysync.web.samples import sample_text
from tests.conftest import PG_ADMIN_URL
from tests.waiting import PATIENCE
from tests.web.conftest import PASSWORDS, LiveServer, add_users, serve
from tests.web.test_pages import csrf_of, log_in

LAPTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
PATIENCE_MS = int(PATIENCE * 1000)
SECRET = "Pg-Secret-Never-Shown-77"
TOKEN = "Api-Token-Never-Shown-42"
CSV = "id,machine,count,temp_f\n1,PRESS-01,120,98.6\n2,PRESS-02,95,101.3\n3,WELD-07,310,88.0\n"
ORDERS = [
    {"orderId": 1, "machineName": "M-1", "qty": 5, "madeAt": "2026-01-05T08:00:00"},
    {"orderId": 2, "machineName": "M-2", "qty": 7, "madeAt": "2026-01-05T09:30:00"},
]


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def console(store: Store, data_dir: Path) -> Iterator[LiveServer]:
    add_users(store)
    (data_dir / "line_counts.csv").write_text(CSV, encoding="utf-8")
    yield from serve(store)


@pytest.fixture
def pg_table() -> Iterator[str]:
    """A table in database ``test`` with a primary key, a timestamptz column and every
    value type a driver hands over as something other than JSON; dropped after."""
    name = f"fs_guide_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + "/test")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {name} (id integer PRIMARY KEY, machine text NOT NULL, "
                "made_at timestamptz, made_local timestamp, shift_day date, shift_start time, "
                "qty numeric(10, 2), payload jsonb, raw bytea, uid uuid)"
            )
        )
        conn.execute(
            sa.text(
                f"INSERT INTO {name} VALUES "
                "(1, 'PRESS-01', '2026-01-05 08:00:00+07', '2026-01-05 08:00:00', "
                "'2026-01-05', '08:00', 12.50, '{\"a\": [1, 2]}', '\\x0102', "
                "'6f1c2a4e-1d2b-4c3d-9e8f-0a1b2c3d4e5f'), "
                "(2, 'PRESS-02', '2026-01-05 09:00:00+07', '2026-01-05 09:00:00', "
                "'2026-01-05', '09:00', 7.25, '{\"b\": {\"c\": null}}', '\\x03', "
                "'7f1c2a4e-1d2b-4c3d-9e8f-0a1b2c3d4e5f')"
            )
        )
    try:
        yield name
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        engine.dispose()


@pytest.fixture
def orders_api() -> Iterator[str]:
    """A JSON API on loopback: GET /orders with the right bearer token answers ORDERS."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization") or "")
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.send_response(401)
                self.end_headers()
                return
            body = orjson.dumps(ORDERS)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/orders"
    finally:
        server.shutdown()
        server.server_close()
    assert f"Bearer {TOKEN}" in seen  # the token typed in its password input was sent


def new_page(browser: Any, base: str, viewport: dict[str, int]) -> Any:
    page = browser.new_context(viewport=viewport, locale="en-US").new_page()
    page.set_default_timeout(PATIENCE_MS)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Security Policy" in m.text else 0)
    page.violations = violations
    page.goto(f"{base}/login")
    page.fill("input[name=username]", "admin1")
    page.fill("input[name=password]", PASSWORDS["admin"])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/(sources)?$"))
    return page


def pick_type(page: Any, base: str, kind: str) -> None:
    page.goto(f"{base}/sources/new")
    card = page.locator(f"a[data-kind={kind}]")
    assert card.locator("[data-summary]").inner_text().strip()  # one sentence per type
    card.click()
    page.wait_for_selector("#source-form")


def in_view(page: Any, selector: str) -> bool:
    """Whether the element's top edge is inside the viewport."""
    return bool(
        page.evaluate(
            "s => { const r = document.querySelector(s).getBoundingClientRect();"
            " return r.top >= 0 && r.top < window.innerHeight && r.height > 0; }",
            selector,
        )
    )


def probe(page: Any, button: str, done: str) -> None:
    page.click(f"#probe-{button}")
    page.wait_for_selector(f"#probe-result {done}")
    assert in_view(page, "#probe-result"), f"{button}: result not in view"


def sync_and_count(page: Any, store: Store, table: str) -> list[dict[str, Any]]:
    page.click("#sync-now")
    page.wait_for_selector("tr.run[data-run-status=success]")
    with store.connect() as conn:
        return read_rows(conn, table)


def see_in_data_browser(page: Any, base: str, table: str, values: list[str]) -> None:
    """The synced rows, as the data browser shows them (the engineer's way to look)."""
    page.goto(f"{base}/data/{table}")
    page.wait_for_selector("#data-rows-table tbody tr")
    grid = page.inner_text("#data-rows-table")
    for value in values:
        assert value in grid, (value, grid[:500])
    no_side_scroll(page)


def no_side_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"page is {width} px wide"


def test_csv_source_from_scratch_on_a_laptop(console: LiveServer, browser: Any) -> None:
    base, store = console.url, console.store
    page = new_page(browser, base, LAPTOP)
    pick_type(page, base, "csv")
    # Labels are words, not config keys; what connects is shown at once.
    label = page.locator("label.cfg[data-key=file_path] .cfg-label").inner_text()
    assert label.startswith("File path")
    assert page.locator("input[name='cfg.file_path']").is_visible()
    assert page.locator("select[name=sync_strategy]").input_value() == "full"
    page.fill("input[name='cfg.file_path']", "line_counts.csv")

    # A preview before any mapping: the form says what is missing (a banner) ...
    page.click("#probe-preview")
    page.wait_for_selector("#form-errors")
    # ... and a good test, with the mapping still empty, clears it.
    probe(page, "test", ".probe[data-probe=test][data-ok=true]")
    assert page.locator("#form-errors").count() == 0
    assert page.locator(".field-error").count() == 0
    assert "1 csv file(s)" in page.inner_text("#probe-result")

    probe(page, "discover", ".discovered")
    assert page.input_value("input[name=target_table]") == "line_counts"
    assert page.input_value("input[name=source_id]") == "line-counts"
    assert page.locator("#probe-result [data-no-key]").count() == 1  # a CSV has none
    cols = [page.input_value(f"input[name='f.col.{i}']") for i in range(4)]
    assert cols == ["id", "machine", "count", "temp_f"]
    assert page.input_value("select[name='f.type.3']") == "float"

    probe(page, "preview", "table.preview")
    raw = page.inner_text("#probe-result table.raw")
    mapped = page.inner_text("#probe-result table.preview")
    assert "PRESS-01" in raw and "temp_f" in mapped and "98.6" in mapped
    page.click("#save")
    page.wait_for_url(re.compile(r"/sources/line-counts\?notice="))
    rows = sync_and_count(page, store, "line_counts")
    assert sorted(r["machine"] for r in rows) == ["PRESS-01", "PRESS-02", "WELD-07"]
    assert page.violations == []


@pytest.mark.postgres
@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_postgresql_source_from_scratch(
    console: LiveServer, browser: Any, pg_table: str, viewport: dict[str, int]
) -> None:
    base, store = console.url, console.store
    page = new_page(browser, base, viewport)
    pick_type(page, base, "database")
    no_side_scroll(page)
    for key in ("dialect", "host", "port", "database", "table"):  # not under More options
        assert page.locator(f"[name='cfg.{key}']").is_visible(), key
    secret = page.locator("label[data-secret=password] input[name^='auth.value.']")
    assert secret.get_attribute("type") == "password"
    page.select_option("select[name='cfg.dialect']", "postgresql")
    page.fill("input[name='cfg.host']", "127.0.0.1")
    page.fill("input[name='cfg.port']", "5432")
    page.fill("input[name='cfg.database']", "test")
    page.fill("input[name='cfg.table']", pg_table)
    page.fill("label[data-secret=username] input[name^='auth.value.']", "postgres")
    secret.fill(SECRET)  # trust authentication: accepted, never shown

    probe(page, "test", ".probe[data-probe=test][data-ok=true]")
    probe(page, "discover", ".discovered")  # timestamptz, numeric, jsonb, bytea, uuid
    result = page.inner_text("#probe-result")
    assert "internal error" not in result and "2026-01-05" in result
    assert page.input_value("input[name=target_table]") == pg_table
    assert page.input_value("input[name=primary_key]") == "id"  # the table's primary key
    naive = page.locator("#probe-result tr[data-field=made_local] td.note").inner_text()
    assert "read as UTC" in naive
    assert page.locator("#probe-result tr[data-field=made_at] td.note").inner_text() == ""
    assert SECRET not in page.content()
    no_side_scroll(page)
    if viewport == PHONE:  # touch targets
        for button in page.locator("#form-actions button").all():
            assert button.bounding_box()["height"] >= 40

    probe(page, "preview", "table.preview")
    assert "PRESS-02" in page.inner_text("#probe-result table.preview")
    page.click("#save")
    page.wait_for_url(re.compile(r"\?notice="))
    source_id = pg_table.replace("_", "-")
    rows = sync_and_count(page, store, pg_table)
    assert sorted(r["id"] for r in rows) == [1, 2]
    see_in_data_browser(page, base, pg_table, ["PRESS-01", "PRESS-02"])
    edit = page.request.get(f"{base}/sources/{source_id}/edit").text()
    assert SECRET not in edit and "stored, leave empty to keep" in edit
    assert page.violations == []


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_api_source_from_scratch(
    console: LiveServer, browser: Any, orders_api: str, viewport: dict[str, int]
) -> None:
    base, store = console.url, console.store
    page = new_page(browser, base, viewport)
    pick_type(page, base, "api")
    assert page.locator("input[name='cfg.url']").is_visible()
    page.fill("input[name='cfg.url']", orders_api)
    auth = page.locator("textarea[name='cfg.auth']")  # shown, with an example
    assert auth.is_visible() and '"bearer"' in auth.get_attribute("placeholder")
    # The kind of authentication is picked, not typed.
    kinds = page.locator("select[name='cfg.auth.type'] option").all_inner_texts()
    assert {"none", "bearer", "basic", "api_key"} <= set(kinds)
    page.select_option("select[name='cfg.auth.type']", "bearer")
    token = page.locator("label[data-secret=token] input[name^='auth.value.']")
    assert token.get_attribute("type") == "password"
    token.fill(TOKEN)
    probe(page, "test", ".probe[data-probe=test][data-ok=true]")
    probe(page, "discover", ".discovered")
    assert page.input_value("input[name=target_table]") == "orders"
    cols = [page.input_value(f"input[name='f.col.{i}']") for i in range(4)]
    assert cols == ["order_id", "machine_name", "qty", "made_at"]
    assert page.input_value("input[name='f.from.0']") == "orderId"
    note = page.locator("#probe-result tr[data-field=madeAt] td.note").inner_text()
    assert "naive timestamps in text" in note
    assert TOKEN not in page.locator("#probe-result").inner_html()
    probe(page, "preview", "table.preview")
    assert "M-2" in page.inner_text("#probe-result table.preview")
    page.click("#save")
    page.wait_for_url(re.compile(r"/sources/orders\?notice="))
    rows = sync_and_count(page, store, "orders")
    assert sorted(r["order_id"] for r in rows) == [1, 2]
    see_in_data_browser(page, base, "orders", ["M-1", "M-2"])
    assert TOKEN not in page.request.get(f"{base}/sources/orders/edit").text()
    assert page.violations == []


# -- without a browser -------------------------------------------------------------------
@pytest.fixture
def client(store: Store, data_dir: Path) -> Iterator[TestClient]:
    add_users(store)
    (data_dir / "line_counts.csv").write_text(CSV, encoding="utf-8")
    with TestClient(create_app(store)) as c:
        yield c


def test_streaming_types_start_realtime(client: TestClient) -> None:
    log_in(client, "admin")
    for kind, strategy in (
        ("mqtt", "realtime"),
        ("opcua", "realtime"),
        ("modbus", "realtime"),
        ("s7", "realtime"),
        ("push", "realtime"),
        ("csv", "full"),
        ("database", "full"),
    ):
        page = client.get(f"/sources/new?type={kind}").text
        chosen = re.search(r'<select name="sync_strategy">.*?<option selected>(\w+)<', page, re.S)
        assert chosen and chosen.group(1) == strategy, kind


def test_discover_without_javascript_fills_the_form(client: TestClient) -> None:
    token = log_in(client, "admin")
    form = {
        "csrf": token,
        "intent": "discover",
        "source_type": "csv",
        "connection_type": "file",
        "cfg.file_path": "line_counts.csv",
        "cfg.has_header": "on",  # a checkbox checked by default, as a browser posts it
        "target_table": "",  # no mapping yet: discovery needs none
        "f.col.0": "",
        "mapping_extra": "{not json",
    }
    page = client.post("/sources/new", data=form)
    assert page.status_code == 200, page.text
    assert 'name="target_table" value="line_counts"' in page.text
    assert 'name="f.col.3" value="temp_f"' in page.text
    assert 'name="source_id" value="line-counts"' in page.text
    assert 'id="form-errors"' not in page.text


def test_a_new_source_tests_before_it_has_a_mapping(client: TestClient) -> None:
    token = log_in(client, "admin")
    base = {"csrf": token, "source_type": "csv", "connection_type": "file"}
    tested = client.post(
        "/sources/new",
        data={**base, "intent": "test", "cfg.file_path": "line_counts.csv", "cfg.has_header": "on"},
        headers={"X-Fragment": "probe"},
    )
    assert tested.status_code == 200 and 'data-ok="true"' in tested.text
    # The connection's own problems still stop it, next to their input.
    broken = client.post("/sources/new", data={**base, "intent": "test", "cfg.file_path": ""})
    assert broken.status_code == 422
    assert 'data-error-for="cfg.file_path"' in broken.text
    assert 'data-error-for="target_table"' not in broken.text  # not asked for a test
    # Preview needs the mapping.
    preview = client.post(
        "/sources/new", data={**base, "intent": "preview", "cfg.file_path": "line_counts.csv"}
    )
    assert preview.status_code == 422 and 'id="form-errors"' in preview.text


def test_secret_keys_are_password_inputs_and_never_echoed(client: TestClient) -> None:
    token = log_in(client, "admin")
    page = client.get("/sources/new?type=api").text
    for key in ("token", "username", "password", "api_key"):
        found = re.search(
            rf'data-secret="{key}">[^<]*<input type="hidden" name="auth\.name\.(\d+)" '
            rf'value="{key}">\s*<input type="password" name="auth\.value\.\1"',
            page,
        )
        assert found, key
    # Posted back (with a problem elsewhere), the value typed is not in the answer.
    index = re.search(r'name="auth\.name\.(\d+)" value="token"', page)
    assert index
    answer = client.post(
        "/sources/new",
        data={
            "csrf": token,
            "intent": "save",
            "source_type": "api",
            "connection_type": "api",
            "cfg.url": "http://127.0.0.1:9/x",
            f"auth.name.{index.group(1)}": "token",
            f"auth.value.{index.group(1)}": TOKEN,
        },
    )
    assert answer.status_code == 422 and TOKEN not in answer.text


def test_samples_of_every_type_render_as_text() -> None:
    shown = [
        sample_text(v)
        for v in (
            datetime(2026, 1, 5, 8, 0, tzinfo=UTC),
            datetime(2026, 1, 5, 8, 0),
            date(2026, 1, 5),
            time(8, 30),
            Decimal("12.50"),
            b"\x01\x02",
            uuid.UUID("6f1c2a4e-1d2b-4c3d-9e8f-0a1b2c3d4e5f"),
            {"a": [1, {"b": Decimal("1.5")}], 2: None},
            "x" * 500,
        )
    ]
    assert shown[:7] == [
        '"2026-01-05T08:00:00+00:00"',
        '"2026-01-05T08:00:00"',
        '"2026-01-05"',
        '"08:30:00"',
        '"12.50"',
        '"0x0102"',
        '"6f1c2a4e-1d2b-4c3d-9e8f-0a1b2c3d4e5f"',
    ]
    assert shown[7] == '{"a":[1,{"b":"1.5"}],"2":null}'
    assert len(shown[8]) == 200


@pytest.mark.postgres
def test_stored_postgresql_source_discovers_timestamptz(
    client: TestClient, store: Store, pg_table: str
) -> None:
    services.create_source(
        store,
        {
            "source_id": "pg-guide",
            "name": "PG",
            "source_type": "database",
            "connections": [
                {
                    "connection_config": {
                        "dialect": "postgresql",
                        "host": "127.0.0.1",
                        "database": "test",
                        "table": pg_table,
                    },
                    "authentication_config": {"username": "postgres"},
                }
            ],
            "mappings": [{"target_table": "pg_guide", "mapping_config": {"primary_key": ["id"]}}],
        },
    )
    token = log_in(client, "operator")
    answer = client.post("/sources/pg-guide/discover", data={"csrf": token})
    assert answer.status_code == 200, answer.text
    assert 'data-field="made_at"' in answer.text and "2026-01-05T01:00:00" in answer.text
    assert csrf_of(client.get("/sources/pg-guide").text)


def test_a_kind_picked_beside_a_json_box_becomes_its_type() -> None:
    from starlette.datastructures import FormData

    from factorysync.connectors.api.config import ApiConfig
    from factorysync.web.config_form import config_fields, parse_config

    auth = next(f for f in config_fields(ApiConfig, {}) if f.key == "auth")
    assert auth.widget == "json" and "oauth2_client_credentials" in auth.options
    url = ("cfg.url", "http://127.0.0.1:9/orders")
    errors: dict[str, list[str]] = {}
    picked = parse_config(
        ApiConfig, FormData([url, ("cfg.auth.type", "bearer")]), errors, "{error}"
    )
    assert picked["auth"] == {"type": "bearer"} and errors == {}
    # The JSON's other keys stay; the picked kind wins over a typed one.
    both = FormData(
        [url, ("cfg.auth", '{"type": "basic", "name": "X-Key"}'), ("cfg.auth.type", "api_key")]
    )
    assert parse_config(ApiConfig, both, errors, "{error}")["auth"] == {
        "type": "api_key",
        "name": "X-Key",
    }
    # Nothing picked: the JSON as typed; an unknown kind is ignored.
    odd = FormData([url, ("cfg.auth", '{"type": "basic"}'), ("cfg.auth.type", "magic")])
    assert parse_config(ApiConfig, odd, errors, "{error}")["auth"] == {"type": "basic"}
    shown = next(
        f for f in config_fields(ApiConfig, {"auth": {"type": "basic"}}) if f.key == "auth"
    )
    assert shown.kind == "basic"
