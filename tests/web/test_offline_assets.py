"""Every page the server sends works on a plant network without internet: no ``src``,
``href`` or ``action`` of the console's pages or of the API reference (Swagger UI at
``/docs``, ReDoc at ``/redoc``) names another host, and the files they load are served
from the package itself (200, over the same app). The stylesheets load nothing remote
either. (tests/web/test_csp.py checks, in a real browser, what the pages then request.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from factorysync import services
from factorysync.api import create_app
from factorysync.engine.runner import Runner
from factorysync.store.store import Store
from tests.conftest import write_json
from tests.web.conftest import PASSWORDS, add_users

LINK = re.compile(r"""\b(?:src|href|action)\s*=\s*["']([^"']*)["']""", re.I)
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]*)""", re.I)
PAGES = [
    "/",
    "/sources",
    "/sources?status=error",
    "/sources/oee",
    "/sources/oee/edit",
    "/sources/new",
    "/sources/new?type=csv",
    "/alerts",
    "/data",
    "/data/oee",
    "/docs",
    "/redoc",
]


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def client(store: Store, data_dir: Path) -> Iterator[TestClient]:
    add_users(store)
    path = write_json(data_dir / "oee.json", {"data": [{"machine": "M-1", "oee": 0.81}]})
    services.create_source(
        store,
        {
            "source_id": "oee",
            "name": "OEE Mesin",
            "source_type": "json",
            "connections": [{"connection_config": {"file_path": str(path)}}],
            "mappings": [{"target_table": "oee", "mapping_config": {"records_path": "data"}}],
        },
    )
    assert Runner(store).sync("oee").sync_status == "success"
    with TestClient(create_app(store)) as client:
        yield client


def outside(url: str) -> bool:
    """A URL the browser would fetch from another host (``//host``, ``http:``, …)."""
    url = url.strip().lower()
    if url.startswith(("data:", "blob:", "mailto:")):
        return False
    return url.startswith("//") or re.match(r"^[a-z][a-z0-9+.-]*:", url) is not None


def test_outside_detects_other_hosts() -> None:
    assert outside("https://cdn.jsdelivr.net/npm/swagger-ui-dist/swagger-ui.css")
    assert outside("//fonts.googleapis.com/css")
    assert not outside("/docs/assets/redoc.standalone.js")
    assert not outside("?status=error") and not outside("#probe-result")


def test_no_page_links_to_another_host(client: TestClient) -> None:
    login = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert csrf is not None
    answer = client.post(
        "/login",
        data={"username": "admin1", "password": PASSWORDS["admin"], "csrf": csrf.group(1)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assets: set[str] = set()
    for path in ["/login", *PAGES]:
        page = client.get(path, follow_redirects=False)
        assert page.status_code == 200, (path, page.status_code)
        links = LINK.findall(page.text)
        assert links, path
        assert [u for u in links if outside(u)] == [], path
        assets |= {u for u in links if u.startswith(("/static/", "/docs/assets/"))}
    assert {"/static/console.css", "/static/console.js"} <= assets
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/redoc.standalone.js"} <= assets
    for asset in sorted(assets):
        loaded = client.get(asset)
        assert loaded.status_code == 200, asset
        if asset.endswith(".css"):
            assert [u for u in CSS_URL.findall(loaded.text) if outside(u)] == [], asset
