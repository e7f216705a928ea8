"""The console on a phone (390×844) and on a desktop (1440×900), in headless Chromium over
the plant demo: no page is wider than the screen, the folded menu opens without script
and shows Log out and the language switch on screen, the alert's Acknowledge button is
on screen and big enough to tap, and so is every button, field and table link."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from factorysync.demo.run import run_demo
from factorysync.engine.quarantine import reject, store_rejects
from factorysync.store.store import Store
from factorysync.store.types import utcnow
from tests.web.conftest import LiveServer, add_failing_source, add_users, serve
from tests.web.test_e2e import BROWSER_PATIENCE_MS, log_in

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
TOUCH_PX = 40
# What a finger taps: buttons, fields, and links in tables, lists, tabs, pagers and menus.
TAPPABLE = (
    "button, a.button, select, summary, label.menu-button,"
    " input:not([type=hidden]):not([type=checkbox]):not([type=radio]),"
    " td a, li > a, p > a, nav a, .tabs a, .pager a, .langs a"
)
# Every page of the console: (path, a selector that shows it is ready).
PAGES = [
    ("/", "#totals"),
    ("/sources", "tr.source"),
    ("/sources/scrap_report", "#quarantine-pages"),
    ("/sources/{good}", "tr.run"),
    ("/alerts", "tr.alert"),
    ("/sources/no_such_source", "p.error"),
    ("/sources/new", "a[data-kind=csv]"),
    ("/sources/new?type=csv", "#source-form"),
    ("/sources/{good}/edit", "#source-form"),
]


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def plant(store: Store, data_dir: Path) -> Iterator[LiveServer]:
    """The demo plant, a failing source with an open alert and 60 quarantined records
    (two pages)."""
    run_demo(store, data_dir / "demo", size_mb=0.3)
    add_users(store)
    add_failing_source(store, data_dir)
    now = utcnow()
    with store.begin() as conn:
        for i in range(60):
            record = {"id": i, "machine": f"PRESS-{i:02d}", "note": "x" * 150}
            entry = reject("scrap_report", "scrap_report", record, ["count: not a number"], None)
            store_rejects(conn, [entry], now=now - timedelta(minutes=i))
    yield from serve(store)


def _good_source(page: Any) -> str:
    """A demo source whose last run succeeded (it has history and charts)."""
    row = page.locator("tr.source:has([data-run-status=success])").first
    return str(row.get_attribute("data-source"))


def _open(page: Any, url: str, ready: str) -> None:
    page.goto(url)
    page.wait_for_selector(ready, state="attached")


def _overflow(page: Any) -> list[int]:
    return list(
        page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
    )


def _wide(page: Any) -> list[str]:
    """The elements that reach past the screen's right edge, described (for messages)."""
    found: list[str] = page.evaluate(
        """() => { const edge = document.documentElement.clientWidth;
          return Array.from(document.querySelectorAll('body *'))
            .filter(el => el.getBoundingClientRect().right > edge + 0.5
                          || el.scrollWidth > el.clientWidth + 1)
            .slice(-6).map(el => el.tagName + '.' + el.className + ' '
                           + el.getBoundingClientRect().right.toFixed(0)); }"""
    )
    return found


def _too_small(page: Any) -> list[str]:
    """Visible tap targets under TOUCH_PX tall, described."""
    found: list[str] = page.evaluate(
        """([selector, least]) => Array.from(document.querySelectorAll(selector))
          .filter(el => { const r = el.getBoundingClientRect();
                          return r.width > 0 && r.height > 0 && r.height < least; })
          .map(el => el.tagName + (el.id ? '#' + el.id : '') + ' "'
                     + (el.innerText || el.name || '').trim().slice(0, 30) + '" '
                     + el.getBoundingClientRect().height.toFixed(1) + 'px')""",
        [TAPPABLE, TOUCH_PX],
    )
    return found


def _inside(box: dict[str, float] | None, viewport: dict[str, int]) -> bool:
    return (
        box is not None
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= viewport["width"]
        and box["y"] + box["height"] <= viewport["height"]
    )


def test_every_page_fits_a_phone(plant: LiveServer, browser: Any) -> None:
    base = plant.url
    # No script at all: the menu and every page work without it.
    context = browser.new_context(viewport=PHONE, java_script_enabled=False, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(BROWSER_PATIENCE_MS)

    page.goto(f"{base}/login")
    assert _overflow(page)[0] <= _overflow(page)[1], "login page"
    assert _too_small(page) == [], "login page"
    log_in(page, base, "admin")
    good = _good_source(page)

    # The menu is folded: Log out and the language switch appear when it is opened.
    assert not page.locator("#logout").is_visible()
    assert not page.locator("button[data-lang=id]").is_visible()
    page.click("#menu-button")
    for target in (
        "#logout",
        "button[data-lang=id]",
        "button[data-lang=en]",
        "nav a[href='/alerts']",
    ):
        assert page.locator(target).is_visible(), target
        assert _inside(page.locator(target).bounding_box(), PHONE), target
    assert _too_small(page) == [], "open menu"
    page.click("#menu-button")
    assert not page.locator("#logout").is_visible()

    for path, ready in PAGES:
        _open(page, base + path.format(good=good), ready)
        width, screen = _overflow(page)
        assert width <= screen, f"{path}: {width} px on a {screen} px screen: {_wide(page)}"
        assert _too_small(page) == [], path

    # The failing source's alert: Acknowledge on screen and big enough to tap.
    _open(page, f"{base}/alerts", "tr.alert")
    ack = page.locator("tr.alert[data-source=scrap_report] button.ack").first
    ack.scroll_into_view_if_needed()
    box = ack.bounding_box()
    assert _inside(box, PHONE), box
    assert box is not None and box["height"] >= TOUCH_PX
    ack.click()
    page.wait_for_selector("tr.alert[data-source=scrap_report][data-state=acknowledged]")

    # The quarantine's pager is tappable and leads to the next page.
    _open(page, f"{base}/sources/scrap_report", "#quarantine-pages")
    page.click("#quarantine-pages a[rel=next]")
    page.wait_for_selector("#quarantine-total[data-page='2']")
    assert page.locator("#quarantine tr[data-entry]").count() == 10
    assert _overflow(page)[0] <= _overflow(page)[1]

    # The language switch from the opened menu.
    page.click("#menu-button")
    page.click("button[data-lang=id]")
    page.wait_for_selector("html[lang=id]")
    assert _overflow(page)[0] <= _overflow(page)[1]
    context.close()


def test_the_desktop_shows_the_whole_menu(plant: LiveServer, browser: Any) -> None:
    base = plant.url
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(BROWSER_PATIENCE_MS)
    log_in(page, base, "admin")
    good = _good_source(page)
    assert not page.locator("#menu-button").is_visible()
    for target in ("#logout", "button[data-lang=id]", "nav a[href='/sources']"):
        assert page.locator(target).is_visible(), target
        assert _inside(page.locator(target).bounding_box(), DESKTOP), target
    for path, ready in PAGES:
        _open(page, base + path.format(good=good), ready)
        width, screen = _overflow(page)
        assert width <= screen, f"{path}: {width} px wide on a {screen} px screen"
    # Tables stay tables on a desktop: the alert's columns sit side by side.
    _open(page, f"{base}/alerts", "tr.alert")
    assert page.locator("#alerts thead").is_visible()
    context.close()
