"""The console's screenshots for the README, at a desktop's size and a phone's.

    python scripts/screenshots.py [OUT] [--size-mb 0.3]      (``make screenshots``)

Builds a temporary store with the plant demo, a CSV source synced a few times and a
failing source (three failed runs, so an open alert), serves the console with uvicorn on
127.0.0.1 and drives the system Chromium (Playwright) through its main pages, logged in as
an admin, in English. Each page is saved twice into OUT (default docs/screenshots):
``NAME.png`` at 1440×900 and ``NAME-phone.png`` at 390×844, plus the login page and the
sources list in Bahasa Indonesia at the desktop's size.

The data browser (``/data`` and a table of it) is shot when the server has it: this
script asks with a GET and leaves the page out otherwise, saying so. (Only here: the
tests never skip a page.) Prints the files it wrote, one a line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SIZES = {"": {"width": 1440, "height": 900}, "-phone": {"width": 390, "height": 844}}
USER, PASSWORD = "admin1", "Screenshot-Pass-2026"
PATIENCE_MS = 120_000  # a busy machine: waits end as soon as the page is ready


def build(data: Path, size_mb: float) -> Any:
    """The store the pictures show: the plant demo, ``line_counts`` (a CSV source with a
    few runs) and ``scrap_report``, failing."""
    from factorysync import services
    from factorysync.demo.run import run_demo
    from factorysync.engine.runner import Runner
    from factorysync.settings import Settings
    from factorysync.store import accounts
    from factorysync.store.store import Store

    store = Store(Settings())
    run_demo(store, data / "factorysync-demo", size_mb=size_mb)
    with store.begin() as conn:
        accounts.create_user(conn, USER, "admin", password=PASSWORD)
    counts = data / "line_counts.csv"
    services.create_source(
        store,
        {
            "source_id": "line_counts",
            "name": "Hitungan Lini",
            "source_type": "csv",
            "category": "production",
            "connections": [{"connection_config": {"file_path": counts.name}}],
            "mappings": [
                {"target_table": "line_counts", "mapping_config": {"primary_key": ["id"]}}
            ],
        },
    )
    earlier_runs(store, "line_counts")
    for run in range(4):
        lines = [f"{n},PRESS-{n:02d},{100 + 7 * n + 13 * run}" for n in range(1, 4 + 3 * run)]
        counts.write_text("id,machine,count\n" + "\n".join(lines) + "\n", encoding="utf-8")
        Runner(store).sync("line_counts")
    services.create_source(
        store,
        {
            "source_id": "scrap_report",
            "name": "Laporan Scrap",
            "source_type": "json",
            "category": "quality",
            "connections": [{"connection_config": {"file_path": "gone.json"}}],
            "mappings": [{"target_table": "scrap_report"}],
        },
    )
    for _ in range(3):
        Runner(store).sync("scrap_report")
    return store


def earlier_runs(store: Any, source_id: str) -> None:
    """A day of hourly runs before today's, so that the source page's charts have a shape
    (written to the history as the runner would have)."""
    from datetime import timedelta

    from sqlalchemy import insert

    from factorysync.store.schema import data_source_sync_history as hist_t
    from factorysync.store.types import utcnow

    now = utcnow()
    rows = []
    for hour in range(24, 0, -1):
        started = now - timedelta(hours=hour)
        processed = 120 + (hour * 37) % 90
        rows.append(
            {
                "source_id": source_id,
                "sync_type": "full",
                "sync_status": "success",
                "trigger": "schedule",
                "connection_name": "primary",
                "records_processed": processed,
                "records_inserted": hour % 4,
                "records_updated": processed // 10,
                "records_deleted": 0,
                "records_rejected": 0,
                "sync_duration_ms": 80 + (hour * 53) % 140,
                "sync_started_at": started,
                "sync_completed_at": started + timedelta(milliseconds=80 + (hour * 53) % 140),
            }
        )
    with store.begin() as conn:
        conn.execute(insert(hist_t), rows)


@contextmanager
def serving(store: Any) -> Iterator[str]:
    """The app under uvicorn in a thread, on a free loopback port."""
    import socket

    import uvicorn

    from factorysync.api import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(
        create_app(store), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    end = time.monotonic() + PATIENCE_MS / 1000
    while not server.started:
        if time.monotonic() > end or not thread.is_alive():
            raise SystemExit("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def pages(base: str, request: Any) -> dict[str, tuple[str, str]]:
    """Picture name → (path, what to wait for); the data browser only when it is there."""
    found = {
        "overview": ("/", "#totals"),
        "sources": ("/sources", "tr.source"),
        "source-detail": ("/sources/line_counts", "tr.run"),
        "alerts": ("/alerts", "tr.alert"),
        "source-form": ("/sources/new?type=csv", "#source-form"),
    }
    for name, path in [("data", "/data"), ("data-table", "/data/line_counts")]:
        status = request.get(base + path, max_redirects=0).status
        if status == 200:
            found[name] = (path, "main")
        else:
            print(f"{path}: answered {status}, no {name} picture", file=sys.stderr)
    return found


def log_in(page: Any, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def fill_form(page: Any) -> None:
    """The add form as someone mid-way: fields filled, the file's columns discovered."""
    page.fill("input[name=source_id]", "line_counts_b")
    page.fill("input[name=name]", "Hitungan Lini B")
    page.fill("input[name='cfg.file_path']", "line_counts.csv")
    page.fill("input[name=target_table]", "line_counts_b")
    page.fill("input[name=primary_key]", "id")
    page.click("#probe-discover")
    page.wait_for_selector("#probe-result tr[data-field=count]", state="attached")
    page.locator("#probe-result").scroll_into_view_if_needed()


def shoot(browser: Any, base: str, out: Path) -> list[Path]:
    written: list[Path] = []

    def save(page: Any, name: str) -> None:
        path = out / f"{name}.png"
        page.screenshot(path=str(path))
        written.append(path)

    for suffix, viewport in SIZES.items():
        phone = bool(suffix)
        context = browser.new_context(
            viewport=viewport, locale="en-US", is_mobile=phone, has_touch=phone
        )
        page = context.new_page()
        page.set_default_timeout(PATIENCE_MS)
        page.goto(f"{base}/login")
        save(page, f"login{suffix}")
        log_in(page, base)
        for name, (path, ready) in pages(base, context.request).items():
            page.goto(base + path)
            try:
                page.wait_for_selector(ready, state="attached")
            except Exception as exc:
                raise SystemExit(f"{name}{suffix}: {page.url} never showed {ready}: {exc}") from exc
            if name == "source-form":
                fill_form(page)
            save(page, name + suffix)
        if not phone:  # the language switch, once
            page.goto(f"{base}/sources")
            page.click("button[data-lang=id]")
            page.wait_for_load_state()
            page.goto(f"{base}/sources")
            page.wait_for_selector("tr.source")
            save(page, "sources-id")
            page.click("button[data-lang=en]")
            page.wait_for_load_state()
        context.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--size-mb", type=float, default=0.3, help="the demo data set's size")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: `make browser` installs it")
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fs-screenshots-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        os.environ.update(
            {
                "FACTORYSYNC_DATABASE_URL": f"sqlite:///{Path(tmp) / 'shots.db'}",
                "FACTORYSYNC_SECRET_KEY": "",
                "FACTORYSYNC_SECRET_KEY_FILE": str(Path(tmp) / "shots.key"),
                "FACTORYSYNC_DATA_ROOTS": str(data),
                "FACTORYSYNC_LOG_LEVEL": "WARNING",
            }
        )
        from playwright.sync_api import sync_playwright

        store = build(data, args.size_mb)
        try:
            with serving(store) as base, sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
                try:
                    written = shoot(browser, base, out)
                finally:
                    browser.close()
        finally:
            store.dispose()
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
