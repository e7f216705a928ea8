"""``make screenshots`` (scripts/screenshots.py) keeps working: every main page of the
console, at the desktop's size and the phone's, as PNG files of those sizes. The data
browser's pictures are expected exactly when the app has the ``/data`` page (which sends
a visitor without a session to the login page: 303, where a missing page answers 404)."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from factorysync.api import create_app
from factorysync.store.store import Store

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "screenshots.py"
PAGES = ["login", "overview", "sources", "source-detail", "alerts", "source-form"]
DESKTOP, PHONE = (1440, 900), (390, 844)


@pytest.fixture
def backend() -> str:
    return "sqlite"


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_screenshots_of_every_page_at_both_sizes(store: Store, tmp_path: Path) -> None:
    with TestClient(create_app(store)) as client:  # a page the app has sends to the login
        browser = client.get("/data", follow_redirects=False).status_code
    assert browser in (303, 404)
    pages = PAGES + (["data", "data-table"] if browser == 303 else [])
    out = tmp_path / "shots"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "--size-mb", "0.1"],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = {f"{p}.png": DESKTOP for p in pages}
    expected |= {f"{p}-phone.png": PHONE for p in pages}
    expected["sources-id.png"] = DESKTOP
    assert {p.name for p in out.iterdir()} == set(expected)
    assert sorted(proc.stdout.split()) == sorted(str(out / name) for name in expected)
    for name, size in expected.items():
        assert png_size(out / name) == size, name
        assert (out / name).stat().st_size > 10_000, name  # a page, not a blank picture
