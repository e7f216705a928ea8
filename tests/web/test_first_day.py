"""The plant engineer's first day, in one journey through the console, at a laptop
(1440×900) and a phone (390×844) size, in the system Chromium over the plant demo:

1. log in through the login form;
2. add a CSV source from scratch (type card, file path, Test connection, Discover fills
   the target table and fields, Preview, Save) and sync it from its page;
3. browse its rows in the data browser, filter them and export the filtered rows as CSV;
4. see the failing source first on the sources list, marked as failing;
5. page through a quarantine of 60 records, relax the rule that refused them and replay
   them into their table;
6. delete the new source with its rows: gone from the list and from the data browser.

At the phone size the menu is opened through ☰ Menu to go anywhere, and no page visited
is wider than the screen; at both sizes no page reports a Content-Security-Policy
violation.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from sqlalchemy import inspect

from factorysync import services
from factorysync.demo.run import run_demo
from factorysync.engine.runner import Runner
from factorysync.store.store import Store
from tests.waiting import PATIENCE, wait_until
from tests.web.conftest import PASSWORDS, LiveServer, add_failing_source, add_users, serve
from tests.web.test_csp import Watch

PATIENCE_MS = int(PATIENCE * 1000)
LAPTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
COLUMNS = ["id", "machine", "line", "count"]
# What the engineer's CSV holds, as the data browser and the export show it.
PRESS_ROWS = [
    {"id": "1", "machine": "PRESS-01", "line": "LINE-A", "count": "120"},
    {"id": "2", "machine": "PRESS-02", "line": "LINE-B", "count": "95"},
    {"id": "3", "machine": "WELD-07", "line": "LINE-A", "count": "310"},
    {"id": "4", "machine": "PAINT-02", "line": "LINE-C", "count": "42"},
]
REFUSED = 60  # quarantined records of ``quality_checks``: two pages of 50


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def plant(store: Store, data_dir: Path) -> Iterator[LiveServer]:
    """The demo plant with users, the engineer's CSV under the data root, a source whose
    file is missing (3 failed runs), and a CSV source whose 60 rows broke its rule."""
    run_demo(store, data_dir / "demo", size_mb=0.3)
    add_users(store)
    text = ",".join(COLUMNS) + "\n"
    text += "".join(",".join(r[c] for c in COLUMNS) + "\n" for r in PRESS_ROWS)
    (data_dir / "press_counts.csv").write_text(text, encoding="utf-8")
    add_failing_source(store, data_dir)
    checks = "id,machine,count\n" + "".join(
        f"{i},PRESS-{i:02d},{500 + i}\n" for i in range(1, REFUSED + 1)
    )
    (data_dir / "quality_checks.csv").write_text(checks, encoding="utf-8")
    services.create_source(
        store,
        {
            "source_id": "quality_checks",
            "name": "Quality checks",
            "source_type": "csv",
            "category": "quality",
            "connections": [
                {"connection_config": {"file_path": str(data_dir / "quality_checks.csv")}}
            ],
            "mappings": [
                {
                    "target_table": "quality_checks",
                    "mapping_config": {
                        "primary_key": ["id"],
                        "fields": {
                            "id": {"type": "integer"},
                            "machine": "machine",
                            "count": {"type": "integer"},
                        },
                        "validate": [{"field": "count", "rule": "max", "value": 100}],
                    },
                }
            ],
        },
    )
    run = Runner(store).sync("quality_checks")
    assert run.records_rejected == REFUSED, run
    yield from serve(store)


class Journey:
    """One browser page at one size. Navigation goes through the menu as a user's would;
    every page the browser loads reports its width when it has loaded (the reports are
    checked at the phone size, including pages the console reloads by itself), and each
    step's page is checked again once it shows what the step waits for."""

    def __init__(self, browser: Any, base: str, viewport: dict[str, int]) -> None:
        self.base = base
        self.phone = viewport["width"] < 500
        self.context = browser.new_context(
            viewport=viewport, locale="en-US", accept_downloads=True, is_mobile=self.phone
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(PATIENCE_MS)
        self.watch = Watch(self.page)
        self.landed: set[str] = set()
        self.widths: list[tuple[str, int, int]] = []  # (path, scrollWidth, clientWidth)
        self.page.on("framenavigated", self._landed)
        self.page.expose_function(
            "reportWidth", lambda url, w, c: self.widths.append((self._path(url), w, c))
        )
        self.page.add_init_script(
            "window.addEventListener('load', () => window.reportWidth(location.href,"
            " document.documentElement.scrollWidth, document.documentElement.clientWidth));"
        )

    def _landed(self, frame: Any) -> None:
        if frame.parent_frame is None and frame.url.startswith(self.base):
            self.landed.add(self._path(frame.url))

    @staticmethod
    def _path(url: str) -> str:
        parts = urlsplit(url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def ready(self, selector: str) -> None:
        """Wait for the page to show ``selector``, then check it fits the screen."""
        self.page.wait_for_selector(selector, state="attached")
        self.page.wait_for_load_state()
        width, screen = self.page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        self.widths.append((self._path(self.page.url), width, screen))
        if self.phone:
            assert width <= screen, f"{self.page.url}: {width} px wide on a {screen} px screen"

    def finish(self) -> None:
        """Every page landed on reported its width (at the phone size: within the screen);
        no page reported a Content-Security-Policy violation."""

        def all_reported() -> bool:
            self.page.evaluate("0")  # a round trip: the browser's reports are taken in
            return self.landed <= {path for path, _, _ in self.widths}

        wait_until(
            all_reported,
            what="a width report from every page landed on",
            state=lambda: self.landed - {path for path, _, _ in self.widths},
        )
        if self.phone:
            wide = [(path, w, c) for path, w, c in self.widths if w > c]
            assert wide == [], wide
        assert self.watch.violations == []
        self.context.close()

    def menu(self, href: str, ready: str) -> None:
        """Follow a link of the header menu; on a phone, open ☰ Menu first."""
        link = self.page.locator(f"#menu nav a[href='{href}']")
        if self.phone:
            assert not link.is_visible(), "the phone's menu starts folded"
            assert self.page.inner_text("#menu-button").split() == ["☰", "Menu"]
            self.page.click("#menu-button")
            link.wait_for(state="visible")
        else:
            assert not self.page.locator("#menu-button").is_visible()
        link.click()
        self.page.wait_for_url(re.compile(re.escape(self.base + href) + r"(\?.*)?$"))
        self.ready(ready)

    def find_source(self, source_id: str) -> Any:
        """Search the sources list for ``source_id``; the matching rows."""
        self.page.fill("#filters input[name=q]", source_id)
        self.page.click("#filters button[type=submit]")
        self.page.wait_for_url(re.compile(r"/sources\?.*q=" + re.escape(source_id)))
        self.ready("#source-rows tr.count-row")
        return self.page.locator(f"tr.source[data-source='{source_id}']")


def grid(page: Any) -> list[dict[str, str]]:
    """The data browser's rows, each as column → shown text."""
    rows: list[dict[str, str]] = page.evaluate(
        """() => {
            const heads = [...document.querySelectorAll('#data-rows-table th')]
                .map(th => th.dataset.column);
            return [...document.querySelectorAll('#data-rows tr')].map(tr =>
                Object.fromEntries([...tr.children].map((td, i) =>
                    [heads[i], td.textContent.trim()])));
        }"""
    )
    return rows


def ours(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Rows cut to the CSV's columns, in id order."""
    return sorted(({c: r[c] for c in COLUMNS} for r in rows), key=lambda r: int(r["id"]))


def probe(page: Any, button: str, done: str) -> None:
    page.click(f"#probe-{button}")
    page.wait_for_selector(f"#probe-result {done}")


def quarantined_ids(page: Any) -> set[int]:
    """The ``id`` of each quarantined record on the page shown."""
    texts = page.locator("#quarantine tr[data-entry] code").all_inner_texts()
    found = {int(m.group(1)) for text in texts if (m := re.search(r'"id":\s*"?(\d+)', text))}
    assert len(found) == len(texts), texts
    return found


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_first_day(plant: LiveServer, browser: Any, viewport: dict[str, int]) -> None:
    base, store = plant.url, plant.store
    me = Journey(browser, base, viewport)
    page = me.page

    # 1. Log in through the login form.
    page.goto(f"{base}/")
    page.wait_for_url(re.compile(r"/login\?next="))
    me.ready("input[name=username]")
    page.fill("input[name=username]", "admin1")
    page.fill("input[name=password]", PASSWORDS["admin"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    me.ready("#totals")

    # 2. A CSV source from scratch: nothing typed but the file's path.
    me.menu("/sources", "tr.source")
    page.click("#add-source")
    page.wait_for_url(f"{base}/sources/new")
    me.ready("a[data-kind=csv]")
    page.click("a[data-kind=csv]")
    me.ready("#source-form")
    page.fill("input[name='cfg.file_path']", "press_counts.csv")
    probe(page, "test", ".probe[data-probe=test][data-ok=true]")
    assert "1 csv file(s)" in page.inner_text("#probe-result")
    probe(page, "discover", ".discovered")
    assert page.input_value("input[name=target_table]") == "press_counts"
    assert page.input_value("input[name=source_id]") == "press-counts"
    assert page.locator("#probe-result [data-no-key]").count() == 1  # a CSV has no key
    named = page.eval_on_selector_all(
        "input[name^='f.col.']", "inputs => inputs.map(i => i.value).filter(v => v)"
    )
    assert named == COLUMNS
    probe(page, "preview", "table.preview")
    preview = page.inner_text("#probe-result table.preview")
    assert all(r["machine"] in preview for r in PRESS_ROWS), preview
    me.ready("#probe-result table.preview")
    page.click("#save")
    page.wait_for_url(re.compile(r"/sources/press-counts\?notice="))
    me.ready("#sync-now")
    page.click("#sync-now")
    me.ready("tr.run[data-run-status=success]")
    run = page.locator("tr.run").first
    assert run.locator("td.num").nth(0).inner_text() == "4"  # processed
    assert run.locator("td.num").nth(1).inner_text() == "4"  # inserted

    # 3. Its rows in the data browser, filtered, and the filtered rows exported.
    page.click("#source-data")
    page.wait_for_url(f"{base}/data?source=press-counts")
    me.ready("#data-tables tr[data-table=press_counts]")
    assert page.locator("#data-tables tr[data-table]").count() == 1
    page.click("#data-tables a[href='/data/press_counts']")
    page.wait_for_url(f"{base}/data/press_counts")
    me.ready("#data-rows tr")
    assert ours(grid(page)) == PRESS_ROWS
    page.select_option("#data-filters select[name=f-col] >> nth=0", "line")
    page.select_option("#data-filters select[name=f-op] >> nth=0", "eq")
    page.fill("#data-filters input[name=f-val] >> nth=0", "LINE-A")
    page.click("#apply-filters")
    page.wait_for_url(f"{base}/data/press_counts?line=LINE-A")
    me.ready("#data-rows tr")
    line_a = [r for r in PRESS_ROWS if r["line"] == "LINE-A"]
    assert ours(grid(page)) == line_a
    with page.expect_download() as download:
        page.click("#export-csv")
    exported = Path(download.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert ours(rows) == line_a and len(rows) == len(line_a)
    assert all(r["_source_id"] == "press-counts" for r in rows)

    # 4. The failing source: first on the list, marked as failing.
    me.menu("/sources", "tr.source")
    first = page.locator("tr.source").first
    assert first.get_attribute("data-source") == "scrap_report"
    assert "failing" in (first.get_attribute("class") or "").split()
    assert first.get_attribute("data-failing") == "3"
    assert first.locator(".badge.failing[data-failing='3']").is_visible()
    assert "failing" not in (page.locator("tr.source").nth(1).get_attribute("class") or "")

    # 5. A quarantine of 60 records over two pages; the rule relaxed, then replayed.
    found = me.find_source("quality_checks")
    assert found.count() == 1
    found.locator(".card-title a").click()
    page.wait_for_url(f"{base}/sources/quality_checks")
    me.ready("#quarantine-pages")
    assert page.inner_text("#quarantine-count") == str(REFUSED)
    total = page.locator("#quarantine-total")
    assert total.get_attribute("data-total") == str(REFUSED)
    assert total.get_attribute("data-pages") == "2"
    assert "1–50 of 60 entries" in total.inner_text()
    assert "count" in page.inner_text("#quarantine tr[data-entry] >> nth=0")  # the reason
    first_page = quarantined_ids(page)
    assert len(first_page) == 50
    page.click("#quarantine-pages a[rel=next]")
    page.wait_for_url(re.compile(r"/sources/quality_checks\?qpage=2"))
    me.ready("#quarantine-total[data-page='2']")
    second_page = quarantined_ids(page)
    assert len(second_page) == REFUSED - 50
    assert first_page | second_page == set(range(1, REFUSED + 1))

    page.click("#edit-source")
    page.wait_for_url(f"{base}/sources/quality_checks/edit")
    me.ready("#source-form")
    extra = page.locator("textarea[name=mapping_extra]")
    if not extra.is_visible():
        page.locator("details:has(textarea[name=mapping_extra]) > summary").click()
    mapping = orjson.loads(extra.input_value())
    assert mapping["validate"] == [{"field": "count", "rule": "max", "value": 100}]
    mapping["validate"][0]["value"] = 1000
    extra.fill(orjson.dumps(mapping).decode())
    page.click("#save")
    page.wait_for_url(re.compile(r"/sources/quality_checks\?notice="))
    me.ready("#quarantine-replay")
    page.click("#quarantine-replay")
    page.wait_for_url(re.compile(r"/sources/quality_checks\?notice=Replay"))
    me.ready("#quarantine-card")
    notice = page.inner_text("p.notice")
    assert f"{REFUSED} loaded, 0 still rejected, 0 left" in notice, notice
    assert page.locator("#quarantine-count").count() == 0
    assert page.locator("#quarantine tr[data-entry]").count() == 0
    page.click("#source-data")
    page.wait_for_url(f"{base}/data?source=quality_checks")
    me.ready("#data-tables tr[data-table=quality_checks]")
    rows_cell = page.locator("#data-tables tr[data-table=quality_checks] td[data-rows]")
    assert rows_cell.get_attribute("data-rows") == str(REFUSED)
    page.click("#data-tables a[href='/data/quality_checks']")
    page.wait_for_url(f"{base}/data/quality_checks")
    me.ready("#data-rows tr")
    shown = grid(page)
    assert len(shown) == 50 and {r["count"] for r in shown} <= {
        str(500 + i) for i in range(1, REFUSED + 1)
    }

    # 6. The new source deleted with its rows: gone from the list and the data browser.
    me.menu("/sources", "tr.source")
    found = me.find_source("press-counts")
    assert found.count() == 1
    found.locator(".card-title a").click()
    page.wait_for_url(f"{base}/sources/press-counts")
    me.ready("#delete-source")
    page.click("#delete-source")
    page.wait_for_url(f"{base}/sources/press-counts/delete")
    me.ready("#confirm-delete")
    assert "4 rows" in page.inner_text("#delete-tables")
    page.check("#drop-data")
    page.click("#confirm-delete")
    me.ready("#source-deleted[data-drop-data='1']")
    me.menu("/sources", "tr.source")
    assert me.find_source("press-counts").count() == 0
    assert page.locator("#source-rows tr.count-row td").get_attribute("data-total") == "0"
    me.menu("/data", "#data-tables")
    assert page.locator("#data-tables tr[data-table=press_counts]").count() == 0
    assert page.locator("#data-tables tr[data-table=quality_checks]").count() == 1
    gone = page.goto(f"{base}/data/press_counts")
    assert gone is not None and gone.status == 404
    me.ready("main")
    assert "press-counts" not in {s["source_id"] for s in services.sources(store)}
    with store.connect() as conn:
        assert not inspect(conn).has_table("press_counts")  # no other source wrote it

    # 7. Every page landed on fitted the phone's screen; none reported a policy violation.
    assert len(me.landed) >= 15, me.landed
    me.finish()
