"""Console fixtures: a real uvicorn server (in a thread, on a free loopback port) serving
the app over a store holding the plant demo, users with passwords, and the system
Chromium driven by Playwright."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from factorysync.api import create_app
from factorysync.store import accounts as auth
from factorysync.store.store import Store
from tests.alerts.conftest import free_port

CHROMIUM = Path("/usr/bin/chromium")
PASSWORDS = {
    "admin": "Admin-Pass-2026",
    "operator": "Operator-Pass-2026",
    "viewer": "Viewer-Pass-2026",
}


def add_users(store: Store) -> None:
    with store.begin() as conn:
        for role, password in PASSWORDS.items():
            auth.create_user(conn, f"{role}1", role, password=password)


def add_failing_source(store: Store, data_dir: Path) -> None:
    """``scrap_report``: a JSON source whose file is missing, failed three runs in a row
    (shown failing, with a ``consecutive_failures`` alert)."""
    from factorysync import services
    from factorysync.engine.runner import Runner

    services.create_source(
        store,
        {
            "source_id": "scrap_report",
            "name": "Laporan Scrap",
            "source_type": "json",
            "category": "quality",
            "connections": [{"connection_config": {"file_path": str(data_dir / "gone.json")}}],
            "mappings": [{"target_table": "scrap_report"}],
        },
    )
    for _ in range(3):
        assert Runner(store).sync("scrap_report").sync_status == "failed"


@dataclass
class LiveServer:
    url: str
    store: Store


def serve(store: Store) -> Iterator[LiveServer]:
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        create_app(store), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    end = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > end or not thread.is_alive():
            raise AssertionError("uvicorn did not start within 30 s")
        time.sleep(0.05)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", store)
    finally:
        server.should_exit = True
        thread.join(timeout=60)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless system Chromium. Missing Chromium is a failure, never a skip."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make browser` installs Debian's chromium package",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()
