"""The console in a real browser: headless Chromium against a running server with the
plant demo. Log in, see the sources, create a CSV source through the form, test,
discover and preview it, sync it, see its history row and charts, see a failing source's
alert, switch language, and check that a viewer cannot edit.

Each main page is saved as a 1280×800 screenshot in the test's own folder, and must be
a real picture (the README's pictures are made by ``make screenshots``,
scripts/screenshots.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from factorysync import services
from factorysync.demo.run import run_demo
from factorysync.store.store import Store
from tests.waiting import PATIENCE
from tests.web.conftest import PASSWORDS, LiveServer, add_failing_source, add_users, serve

VIEWPORT = {"width": 1280, "height": 800}
# How long the browser waits for a page, an element or a run: generous, for a machine
# busy with more than this test (it costs nothing when the page is quick).
BROWSER_PATIENCE_MS = int(PATIENCE * 1000)


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the browser flow once; the pages' queries are covered on both stores


@pytest.fixture
def plant(store: Store, data_dir: Path) -> Iterator[LiveServer]:
    run_demo(store, data_dir / "demo", size_mb=0.3)
    add_users(store)
    (data_dir / "line_counts.csv").write_text(
        "id,machine,count,temp_f\n1,PRESS-01,120,98.6\n2,PRESS-02,95,101.3\n3,WELD-07,310,88.0\n",
        encoding="utf-8",
    )
    add_failing_source(store, data_dir)
    yield from serve(store)


def log_in(page: Any, base: str, role: str) -> None:
    page.goto(f"{base}/sources")
    assert "/login" in page.url
    page.fill("input[name=username]", f"{role}1")
    page.fill("input[name=password]", PASSWORDS[role])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/sources")


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the screenshots go: the test's own folder."""
    path = tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"))
    assert (folder / f"{name}.png").stat().st_size > 10_000, name


def test_console_end_to_end(plant: LiveServer, browser: Any, shots: Path) -> None:
    base = plant.url
    admin = browser.new_context(viewport=VIEWPORT, locale="en-US")
    page = admin.new_page()
    page.set_default_timeout(BROWSER_PATIENCE_MS)
    # The browser reports every Content-Security-Policy violation on its console.
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Security Policy" in m.text else 0)

    page.goto(f"{base}/login")
    shot(page, shots, "login")
    log_in(page, base, "admin")

    # Data resources: every demo source, with type icon, status and last run.
    rows = page.locator("tr.source")
    assert rows.count() >= 40
    failing = page.locator("tr.source[data-source=scrap_report]")
    assert failing.get_attribute("data-status") == "active"
    assert failing.locator("[data-run-status=failed]").count() == 1
    assert failing.locator("td.num.err").inner_text() == "3"
    shot(page, shots, "sources")
    page.fill("input[name=q]", "scrap_rep")
    page.click("#filters button[type=submit]")
    assert page.locator("tr.source").count() == 1

    # Overview: totals, failing sources first.
    page.goto(f"{base}/")
    assert int(page.locator("#totals a.tile").first.locator("b").inner_text()) >= 40
    assert "scrap_report" in page.locator("#failing").inner_text()
    assert page.locator("svg.chart[data-points='24']").count() == 1
    shot(page, shots, "overview")

    # A new CSV source through the form: test, discover, preview, save.
    page.goto(f"{base}/sources")
    page.click("#add-source")
    page.click("a[data-kind=csv]")
    page.fill("input[name=source_id]", "line_counts")
    page.fill("input[name=name]", "Hitungan Lini")
    page.fill("input[name='cfg.file_path']", "line_counts.csv")
    page.fill("input[name=target_table]", "line_counts")
    page.fill("input[name=primary_key]", "id")
    page.click("#probe-test")
    page.wait_for_selector("#probe-result .probe[data-probe=test][data-ok=true]")
    assert "1 csv file(s)" in page.inner_text("#probe-result")
    page.click("#probe-discover")
    page.wait_for_selector("#probe-result tr[data-field=temp_f]")
    page.fill("input[name='f.col.0']", "id")
    page.fill("input[name='f.col.1']", "machine")
    page.fill("input[name='f.col.2']", "temperature_c")
    page.fill("input[name='f.from.2']", "temp_f")
    page.select_option("select[name='f.type.2']", "float")
    page.fill("input[name='f.expr.2']", "round((value - 32) * 5 / 9, 1)")
    page.click("#probe-preview")
    page.wait_for_selector("#probe-result table.preview")
    preview = page.inner_text("#probe-result table.preview")
    assert "temperature_c" in preview and "37" in preview and "PRESS-01" in preview
    page.locator("#probe-result").scroll_into_view_if_needed()
    shot(page, shots, "source-form")
    page.click("#save")
    page.wait_for_url(re.compile(r"/sources/line_counts\?notice="))

    # Sync now: the page follows the run until its history row and charts show.
    page.click("#sync-now")
    page.wait_for_selector("tr.run[data-run-status=success]")
    run = page.locator("tr.run").first
    assert run.locator("td.num").nth(0).inner_text() == "3"  # processed
    assert run.locator("td.num").nth(1).inner_text() == "3"  # inserted
    assert page.locator("#charts svg.chart[data-kind=bar][data-points='1']").count() == 2
    assert page.locator("#charts svg.chart[data-kind=line]").count() == 1
    shot(page, shots, "source-detail")

    # The failing source's alert, acknowledged by the admin.
    page.goto(f"{base}/alerts")
    alert = page.locator("tr.alert[data-source=scrap_report][data-rule=consecutive_failures]")
    assert alert.get_attribute("data-state") == "open"
    assert "3 failed runs in a row" in alert.inner_text()
    shot(page, shots, "alerts")
    alert.locator("button.ack").click()
    page.wait_for_load_state()
    acked = page.locator("tr.alert[data-source=scrap_report]")
    assert acked.get_attribute("data-state") == "acknowledged"

    # Bahasa Indonesia, remembered for the user across pages and sessions.
    page.click("button[data-lang=id]")
    page.wait_for_load_state()
    assert "Peringatan" in page.inner_text("header")
    page.goto(f"{base}/sources")
    assert "Sumber data" in page.inner_text("h1")
    shot(page, shots, "sources-id")
    page.click("button[data-lang=en]")
    page.wait_for_load_state()
    admin.close()
    assert violations == []  # every page and inline result above ran under the policy

    # A viewer reads but cannot edit: no buttons, and the server refuses the request.
    viewer = browser.new_context(viewport=VIEWPORT)
    page = viewer.new_page()
    page.set_default_timeout(BROWSER_PATIENCE_MS)
    log_in(page, base, "viewer")
    assert page.locator("tr.source").count() >= 40
    assert page.locator("#add-source").count() == 0
    page.goto(f"{base}/sources/line_counts")
    assert page.locator("tr.run").count() == 1
    for button in ("#sync-now", "#edit-source", "#set-inactive", "#test-stored"):
        assert page.locator(button).count() == 0, button
    assert page.locator("#connections").count() == 0  # the registry is for operators
    csrf = page.locator("#logout").locator("xpath=..").locator("input[name=csrf]").input_value()
    refused = page.request.post(f"{base}/sources/line_counts/sync", form={"csrf": csrf})
    assert refused.status == 403 and "needs role 'operator'" in refused.text()
    refused = page.request.post(
        f"{base}/sources/line_counts/status", form={"csrf": csrf, "status": "inactive"}
    )
    assert refused.status == 403
    assert page.request.get(f"{base}/sources/new").status == 403
    page.goto(f"{base}/alerts")
    assert page.locator("button.ack").count() == 0
    viewer.close()
    assert len(services.history(plant.store, "line_counts")) == 1  # nothing more ran
