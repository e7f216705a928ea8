"""The console's data browser (``/data``): the table list, the grid with the data API's
filters, order and keyset pages, roles, clear errors for bad filters, CSV and XLSX
exports of every matching row (read back), and, in a real browser, the filter and export
flow at desktop and phone sizes and live mode following the table's changes."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient

from factorysync import services
from factorysync.api import create_app
from factorysync.engine.runner import Runner
from factorysync.store.store import Store
from tests.api.conftest import machine_source, machines
from tests.conftest import write_json
from tests.waiting import PATIENCE
from tests.web.conftest import PASSWORDS, LiveServer, add_users, serve
from tests.web.test_csp import Watch
from tests.web.test_pages import csrf_of

TOTAL = 250
BROWSER_PATIENCE_MS = int(PATIENCE * 1000)


def notes() -> list[dict[str, Any]]:
    """Text a spreadsheet would run as a formula, a control character, and plain text."""
    return [
        {"id": 1, "note": '=HYPERLINK("http://x","y")', "at": "2026-01-05T01:00:00Z"},
        {"id": 2, "note": "bell\x07ring", "at": "2026-01-05T02:00:00Z"},
        {"id": 3, "note": "Mesin berhenti", "at": None},
    ]


def make_plant(store: Store, data_dir: Path) -> None:
    add_users(store)
    write_json(data_dir / "machines.json", {"data": machines(TOTAL)})
    services.create_source(store, machine_source(data_dir / "machines.json"))
    assert Runner(store).sync("machines").sync_status == "success"
    write_json(data_dir / "notes.json", {"data": notes()})
    services.create_source(
        store,
        {
            "source_id": "shift_notes",
            "name": "Catatan shift",
            "source_type": "json",
            "connections": [{"connection_config": {"file_path": str(data_dir / "notes.json")}}],
            "mappings": [
                {
                    "target_table": "shift_notes",
                    "mapping_config": {"records_path": "data", "primary_key": ["id"]},
                }
            ],
        },
    )
    assert Runner(store).sync("shift_notes").sync_status == "success"
    # A source that never synced: its table is listed, without data yet.
    services.create_source(
        store,
        {
            "source_id": "scrap_report",
            "name": "Laporan Scrap",
            "source_type": "json",
            "connections": [{"connection_config": {"file_path": str(data_dir / "no.json")}}],
            "mappings": [{"target_table": "scrap_report"}],
        },
    )


@pytest.fixture
def app(store: Store, data_dir: Path) -> Iterator[TestClient]:
    make_plant(store, data_dir)
    with TestClient(create_app(store)) as client:
        yield client


def log_in(client: TestClient, role: str) -> None:
    token = csrf_of(client.get("/login").text)
    form = {"username": f"{role}1", "password": PASSWORDS[role], "csrf": token, "next": "/data"}
    answer = client.post("/login", data=form, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/data"


def browser_log_in(page: Any, base: str, role: str) -> None:
    page.goto(f"{base}/data")
    assert "/login" in page.url
    page.fill("input[name=username]", f"{role}1")
    page.fill("input[name=password]", PASSWORDS[role])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/data")


def cells(html: str, column: str) -> list[str]:
    """The text of one column's cells, in page order."""
    heads = re.findall(r'<th data-column="([^"]+)"', html)
    body = html.split('<tbody id="data-rows">', 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr data-key=[^>]*>(.*?)</tr>", body, re.S)
    index = heads.index(column)
    return [re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)[index] for r in rows]


def next_link(html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" id="next-page"', html)
    return found.group(1).replace("&amp;", "&") if found else None


# -- access ----------------------------------------------------------------------------
def test_without_a_session_pages_send_to_the_login(app: TestClient) -> None:
    for path in ("/data", "/data/machines?line=LINE-A", "/data/machines/export.csv"):
        answer = app.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=%2Fdata")
    assert (
        "line%3DLINE-A"
        in app.get("/data/machines?line=LINE-A", follow_redirects=False).headers["location"]
    )
    # Script requests (live mode) get a 401 rather than a login page.
    events = app.get("/data/machines/events", headers={"X-Fragment": "live"})
    assert events.status_code == 401


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_every_role_reads_data_as_the_api_allows(app: TestClient, role: str) -> None:
    log_in(app, role)
    listing = app.get("/data")
    assert listing.status_code == 200
    assert 'id="nav-data"' in listing.text
    grid = app.get("/data/machines")
    assert grid.status_code == 200
    assert len(cells(grid.text, "machine_id")) == 50


# -- the table list --------------------------------------------------------------------
def test_table_list_names_writers_rows_and_last_change(app: TestClient) -> None:
    log_in(app, "viewer")
    page = app.get("/data").text
    machines_row = page.split('<tr data-table="machines">', 1)[1].split("</tr>", 1)[0]
    assert 'data-rows="250"' in machines_row
    assert 'data-source="machines"' in machines_row
    assert re.search(r"<time [^>]*>2\d{3}-\d\d-\d\d \d\d:\d\d:\d\d</time>", machines_row)
    scrap_row = page.split('<tr data-table="scrap_report">', 1)[1].split("</tr>", 1)[0]
    assert "not synced yet" in scrap_row and '<a href="/data/scrap_report"' not in scrap_row
    # One source's tables.
    mine = app.get("/data?source=shift_notes").text
    assert 'data-table="shift_notes"' in mine and 'data-table="machines"' not in mine


def test_each_source_page_links_to_its_data(app: TestClient) -> None:
    log_in(app, "viewer")
    source_page = app.get("/sources/shift_notes")
    assert source_page.status_code == 200
    assert 'href="/data?source=shift_notes" id="source-data"' in source_page.text


def test_big_tables_are_counted_up_to_a_cap(
    app: TestClient, monkeypatch: Any, backend: str, store: Store
) -> None:
    from factorysync.services import data_browse

    monkeypatch.setattr(data_browse, "COUNT_CAP", 100)
    log_in(app, "viewer")
    page = app.get("/data").text
    machines_row = page.split('<tr data-table="machines">', 1)[1].split("</tr>", 1)[0]
    # No planner estimate (SQLite has none; PostgreSQL's before ANALYZE): "more than".
    assert 'data-rows="100"' in machines_row and 'data-more="1"' in machines_row
    assert "more than 100" in machines_row
    if backend == "postgresql":
        with store.begin() as conn:
            conn.exec_driver_sql("ANALYZE machines")
        page = app.get("/data").text
        machines_row = page.split('<tr data-table="machines">', 1)[1].split("</tr>", 1)[0]
        assert 'data-estimated="1"' in machines_row and "≈ 250 (estimate)" in machines_row


# -- the grid --------------------------------------------------------------------------
def test_grid_shows_kinds_and_times_in_the_plant_zone(app: TestClient) -> None:
    log_in(app, "viewer")
    page = app.get("/data/machines?machine_id=M-001").text
    kinds = dict(re.findall(r'<th data-column="([^"]+)" data-kind="([^"]+)"', page))
    assert kinds["qty_good"] == "integer" and kinds["oee"] == "float"
    assert kinds["ts"] == "datetime" and kinds["running"] == "boolean"
    assert kinds["meta"] == "json" and kinds["_synced_at"] == "datetime"
    assert '<small class="col-kind">date &amp; time</small>' in page
    # 01:01 at +07:00 is shown as it is in Asia/Jakarta (whatever the store keeps: UTC).
    assert cells(page, "ts") == ["2026-01-05 01:01:00"]
    assert cells(page, "running") == ["true"]
    assert cells(page, "meta") == ["—"]
    assert "Times are shown in Asia/Jakarta" in page


def test_filters_order_and_keyset_pages(app: TestClient) -> None:
    log_in(app, "viewer")
    url: str | None = "/data/machines?line=LINE-A&order=-machine_id&limit=25"
    seen: list[str] = []
    pages = 0
    while url:
        page = app.get(url)
        assert page.status_code == 200
        pages += 1
        if pages == 2:
            assert "Rows 26–50" in page.text and 'id="first-page"' in page.text
        seen += cells(page.text, "machine_id")
        url = next_link(page.text)
    expected = sorted((f"M-{i:03d}" for i in range(TOTAL) if i % 2), reverse=True)
    assert seen == expected and pages == 5
    # The data API's operators; a sort link per column turns the order around.
    page = app.get("/data/machines?qty_good__gte=2400&running=true&order=qty_good").text
    assert cells(page, "qty_good") == ["2410", "2420", "2440", "2470", "2480"]
    assert 'aria-sort="ascending"' in page
    assert 'href="/data/machines?qty_good__gte=2400&amp;running=true&amp;order=-qty_good"' in page


def test_the_filter_form_becomes_a_plain_address(app: TestClient) -> None:
    log_in(app, "viewer")
    answer = app.get(
        "/data/machines?f-col=qty_good&f-op=gte&f-val=2000&f-col=line&f-op=eq&f-val=LINE-B"
        "&f-col=&f-op=eq&f-val=&order=-qty_good&limit=25",
        follow_redirects=False,
    )
    assert answer.status_code == 303
    target = answer.headers["location"]
    assert target == "/data/machines?qty_good__gte=2000&line=LINE-B&order=-qty_good&limit=25"
    page = app.get(target).text
    assert cells(page, "qty_good")[:2] == ["2480", "2460"]
    # The form shows the filters it applied, and the export links carry them.
    assert '<option value="qty_good" selected>' in page
    assert 'href="/data/machines/export.csv?qty_good__gte=2000&amp;line=LINE-B' in page


def test_bad_filters_are_explained_on_the_page(app: TestClient) -> None:
    log_in(app, "viewer")
    answer = app.get("/data/machines?qty_good__gte=lots&nope=1&ts__lt=yesterday&oee__about=1")
    assert answer.status_code == 422
    problems = answer.text.split('id="data-problems"', 1)[1].split("</div>", 1)[0]
    assert "qty_good__gte: &#39;lots&#39; is not a whole number" in problems
    assert "nope: this table has no column nope" in problems
    assert "ts__lt: &#39;yesterday&#39; is not a date and time such as 2026-01-05 07:00" in problems
    assert "oee__about: unknown condition about" in problems
    assert cells(answer.text, "machine_id") == []
    # The same in Bahasa Indonesia.
    csrf = re.search(r'name="csrf" value="([^"]+)"', answer.text)
    assert csrf
    app.post("/language", data={"csrf": csrf.group(1), "lang": "id", "next": "/data"})
    page = app.get("/data/machines?qty_good__gte=lots&limit=5000").text
    assert "qty_good__gte: &#39;lots&#39; bukan bilangan bulat" in page
    assert "limit: baris per halaman harus bilangan bulat dari 1 sampai 1000" in page
    # An export with a bad filter explains it the same way instead of a broken file.
    assert app.get("/data/machines/export.csv?qty_good__gte=lots").status_code == 422
    late = app.get("/data/machines/export.xlsx?since=soon")
    assert late.status_code == 422 and late.text.count("since: &#39;soon&#39; bukan tanggal") == 1
    assert app.get("/data/no_such_table").status_code == 404
    assert app.get("/data/no_such_table/events").status_code == 404


# -- exports ---------------------------------------------------------------------------
def test_csv_export_holds_every_matching_row(app: TestClient) -> None:
    log_in(app, "viewer")
    answer = app.get("/data/machines/export.csv?line=LINE-A&order=-machine_id&limit=25&view-page=3")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert re.match(
        r'attachment; filename="machines-\d{8}-\d{4}\.csv"', answer.headers["content-disposition"]
    )
    assert answer.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert len(rows) == 125  # every match, not the page of 25
    assert rows[0]["machine_id"] == "M-249" and rows[-1]["machine_id"] == "M-001"
    first = rows[0]
    assert first["ts"] == "2026-01-05T09:09:00+07:00"
    assert first["running"] == "false" and first["line"] == "LINE-A"
    assert first["_source_id"] == "machines"
    blank = next(r for r in rows if r["machine_id"] == "M-245")
    assert blank["qty_good"] == "" and blank["meta"] == ""
    with_meta = next(r for r in rows if r["machine_id"] == "M-001")
    assert with_meta["oee"] == "0.501"
    # Text a spreadsheet would run as a formula is shown as text.
    notes_csv = app.get("/data/shift_notes/export.csv?order=id").content.decode("utf-8-sig")
    lines = list(csv.DictReader(io.StringIO(notes_csv)))
    assert lines[0]["note"] == '\'=HYPERLINK("http://x","y")'
    assert lines[0]["at"] == "2026-01-05T08:00:00+07:00" and lines[2]["at"] == ""


def test_xlsx_export_reads_back_with_openpyxl(app: TestClient) -> None:
    log_in(app, "operator")
    answer = app.get("/data/machines/export.xlsx?running=false&order=machine_id")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = openpyxl.load_workbook(io.BytesIO(answer.content))
    sheet = book["machines"]
    rows = list(sheet.iter_rows(values_only=True))
    header, body = rows[0], rows[1:]
    assert header[:3] == ("machine_id", "line", "qty_good")
    assert len(body) == len([i for i in range(TOTAL) if i % 3 == 0]) == 84
    record = dict(zip(header, body[1], strict=True))
    assert record["machine_id"] == "M-003" and record["running"] is False
    assert record["qty_good"] == 30 and record["oee"] == pytest.approx(0.503)
    assert record["ts"] == datetime(2026, 1, 5, 3, 3)  # plant time (Excel has no zones)
    about = dict(book["about"].iter_rows(values_only=True))
    assert about["running"] == "false" and about["time zone"] == "Asia/Jakarta"
    assert about["rows"] == "84"
    notes_book = openpyxl.load_workbook(
        io.BytesIO(app.get("/data/shift_notes/export.xlsx").content)
    )
    notes_rows = list(notes_book["shift_notes"].iter_rows())
    formula = notes_rows[1][1]
    assert formula.value == '=HYPERLINK("http://x","y")' and formula.data_type == "s"
    assert notes_rows[2][1].value == "bellring"  # a character XLSX cannot hold is left out


# -- in a real browser -----------------------------------------------------------------
@pytest.fixture
def console(store: Store, data_dir: Path) -> Iterator[LiveServer]:
    make_plant(store, data_dir)
    yield from serve(store)


def no_wider_than_the_screen(page: Any) -> None:
    width = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width[0] <= width[1], width


def first_cell(page: Any, column: str) -> str:
    """The text of the first row's cell in ``column``."""
    return str(
        page.evaluate(
            """column => {
                const heads = [...document.querySelectorAll('#data-rows-table th')];
                const at = heads.findIndex(th => th.dataset.column === column);
                return document.querySelector('#data-rows tr').children[at].textContent;
            }""",
            column,
        )
    )


@pytest.mark.parametrize("backend", ["sqlite"])  # the pages' queries: both, above
@pytest.mark.parametrize("size", [(1440, 900), (390, 844)])
def test_filter_sort_and_export_in_the_browser(
    console: LiveServer, browser: Any, size: tuple[int, int], tmp_path: Path
) -> None:
    base = console.url
    context = browser.new_context(
        viewport={"width": size[0], "height": size[1]}, accept_downloads=True
    )
    page = context.new_page()
    page.set_default_timeout(BROWSER_PATIENCE_MS)
    watch = Watch(page)
    browser_log_in(page, base, "viewer")
    page.goto(f"{base}/data")
    page.click("#data-tables a[href='/data/machines']")
    page.wait_for_selector("#data-rows tr")
    no_wider_than_the_screen(page)
    # The grid scrolls sideways inside its own box at phone width.
    box = page.evaluate(
        "(e => [e.scrollWidth, e.clientWidth])(document.getElementById('data-scroll'))"
    )
    if size[0] < 500:
        assert box[0] > box[1], box
    page.select_option("#data-filters select[name=f-col] >> nth=0", "line")
    page.select_option("#data-filters select[name=f-op] >> nth=0", "eq")
    page.fill("#data-filters input[name=f-val] >> nth=0", "LINE-B")
    page.click("#apply-filters")
    page.wait_for_url(re.compile(r"/data/machines\?line=LINE-B$"))
    page.click("th[data-column=qty_good] a")
    page.wait_for_selector("th[data-column=qty_good][aria-sort=ascending]")
    assert first_cell(page, "qty_good") == "20"
    page.click("th[data-column=qty_good] a")
    page.wait_for_selector("th[data-column=qty_good][aria-sort=descending]")
    # NULLs come first when descending, as in the data API.
    assert first_cell(page, "qty_good") == "—"
    no_wider_than_the_screen(page)
    with page.expect_download() as download:
        page.click("#export-csv")
    saved = tmp_path / "export.csv"
    download.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    assert len(rows) == 125 and {r["line"] for r in rows} == {"LINE-B"}
    assert rows[0]["qty_good"] == "" and rows[-1]["qty_good"] == "20"
    # A bad value typed in the form is explained on the page.
    page.fill("#data-filters input[name=f-val] >> nth=0", "")
    page.select_option("#data-filters select[name=f-col] >> nth=1", "qty_good")
    page.select_option("#data-filters select[name=f-op] >> nth=1", "gte")
    page.fill("#data-filters input[name=f-val] >> nth=1", "many")
    page.click("#apply-filters")
    problem = page.wait_for_selector("#data-problems")
    assert "qty_good__gte: 'many' is not a whole number" in problem.inner_text()
    no_wider_than_the_screen(page)
    assert watch.violations == []
    context.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_live_mode_shows_new_rows_without_a_reload(
    console: LiveServer, browser: Any, data_dir: Path
) -> None:
    base = console.url
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(BROWSER_PATIENCE_MS)
    watch = Watch(page)
    browser_log_in(page, base, "viewer")
    page.goto(f"{base}/data/machines?line=LINE-A")
    assert page.locator("#live-state").is_hidden()
    page.click("#live-link")
    page.wait_for_url(re.compile(r"view-live=1"))
    assert "order=-_synced_at" in page.url and "line=LINE-A" in page.url
    page.wait_for_selector("#live-state[data-state=on]")
    page.evaluate("window.stillHere = true")
    # A sync in this process commits new and changed rows; the page follows.
    records = machines(TOTAL + 3)
    records[1]["qtyGood"] = 999_999
    write_json(data_dir / "machines.json", {"data": records})
    assert Runner(console.store).sync("machines").sync_status == "success"
    page.wait_for_function("() => document.querySelectorAll('#data-rows tr.fresh').length >= 2")
    ids = page.eval_on_selector_all(
        "#data-rows tr.fresh td:first-child", "cells => cells.map(c => c.textContent)"
    )
    # New LINE-A rows (odd numbers) and the changed one, newest first; LINE-B's stay out.
    assert set(ids) == {"M-251", "M-001"}, ids
    assert page.evaluate("window.stillHere") is True  # no reload happened
    assert page.inner_text("#live-state") == "live"
    page.click("#live-link")
    page.wait_for_url(re.compile(r"^[^?]*\?line=LINE-A&order=-_synced_at$"))
    assert page.locator("#live-state").is_hidden()
    assert watch.violations == []
    context.close()


def test_live_mode_ends_when_the_session_logs_out(
    console: LiveServer, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Logged out in another tab: the live page's stream is closed by the server, and the
    page says it is no longer live (it does not go on showing new rows)."""
    from factorysync.services import stream_access

    monkeypatch.setattr(stream_access, "RECHECK_S", 0.2)
    base = console.url
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(BROWSER_PATIENCE_MS)
    browser_log_in(page, base, "viewer")
    page.goto(f"{base}/data/machines?view-live=1")
    page.wait_for_selector("#live-state[data-state=on]")
    other = context.new_page()
    other.set_default_timeout(BROWSER_PATIENCE_MS)
    other.goto(f"{base}/data")
    other.click("#logout")
    other.wait_for_url(re.compile(r"/login"))
    page.wait_for_selector("#live-state[data-state=off]")
    context.close()
