"""Sites in the console, server-rendered, on SQLite and PostgreSQL: the sources list's
site filter (a plain form select: no JavaScript), paged in SQL with the filter kept in the
page links; the site (and its zone) on the source page; and the guided form's select of
the registered sites, whose choice is saved."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from factorysync import services
from factorysync.api import create_app
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.store import Store
from factorysync.web.views import PAGE_SIZE
from tests.conftest import write_json
from tests.web.conftest import add_users
from tests.web.test_pages import log_in

EAST = PAGE_SIZE + 5  # sources of site "east": two pages


@pytest.fixture
def console(store: Store, data_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    add_users(store)
    sources = []
    for i in range(EAST + 3):
        sid = f"s{i:03d}"
        path = write_json(data_dir / f"{sid}.json", {"data": [{"id": 1}]})
        sources.append(
            {
                "source_id": sid,
                "name": f"Counter {i}",
                "source_type": "json",
                "site": "east" if i < EAST else "west",
                "connections": [{"connection_config": {"file_path": str(path)}}],
                "mappings": [{"target_table": sid, "mapping_config": {"records_path": "data"}}],
            }
        )
    document = {
        "sites": [{"name": "east", "time_zone": "Asia/Makassar"}, {"name": "west"}],
        "sources": sources,
    }
    config = tmp_path / "sites.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    services.apply_file(store, config)
    with TestClient(create_app(store)) as client:
        yield client


def _listed(page: str) -> list[str]:
    return re.findall(r'<tr class="source[^"]*" data-source="([^"]+)"', page)


def test_the_sources_list_filters_by_site(console: TestClient) -> None:
    log_in(console, "viewer")
    everything = console.get("/sources")
    assert everything.status_code == 200
    assert '<select name="site"' in everything.text
    options = re.findall(r'<option value="([^"]*)"[^>]*>[^<]*</option>', everything.text)
    assert {"east", "west", "main"} <= set(options)

    west = console.get("/sources", params={"site": "west"})
    assert west.status_code == 200
    assert _listed(west.text) == [f"s{i:03d}" for i in range(EAST, EAST + 3)]
    assert '<option value="west" selected>' in west.text
    assert all(cell == "west" for cell in re.findall(r'class="site data">([^<]*)<', west.text))

    east = console.get("/sources", params={"site": "east"})
    assert len(_listed(east.text)) == PAGE_SIZE
    assert "/sources?site=east&amp;page=2" in east.text  # the page links keep the filter
    second = console.get("/sources", params={"site": "east", "page": 2})
    assert _listed(second.text) == [f"s{i:03d}" for i in range(PAGE_SIZE, EAST)]
    rows = console.get("/sources/rows", params={"site": "west"})  # the live refresh
    assert _listed(rows.text) == _listed(west.text)

    unknown = console.get("/sources", params={"site": "nowhere"})
    assert unknown.status_code == 404
    assert 'id="unknown-site"' in unknown.text and _listed(unknown.text) == []


def test_the_source_page_shows_its_site_in_its_zone(console: TestClient) -> None:
    log_in(console, "viewer")
    page = console.get("/sources/s000")
    assert page.status_code == 200
    assert 'data-site="east"' in page.text
    assert '<a class="data" href="/sources?site=east">east</a>' in page.text
    assert "(Asia/Makassar)" in page.text
    west = console.get(f"/sources/s{EAST:03d}")
    assert 'data-site="west"' in west.text
    assert "(Asia/Jakarta)" in west.text  # no zone of its own: the plant's


def test_the_guided_form_offers_the_registered_sites(
    console: TestClient, store: Store, data_dir: Path
) -> None:
    token = log_in(console, "admin")
    form = console.get("/sources/new", params={"type": "json"})
    assert form.status_code == 200
    select_html = re.search(r'<select name="site" id="field-site">(.*?)</select>', form.text, re.S)
    assert select_html is not None
    names = re.findall(r'<option value="([^"]+)"', select_html.group(1))
    assert names == ["east", "main", "west"]
    assert '<option value="main" selected>' in select_html.group(1)  # FACTORYSYNC_SITE

    path = write_json(data_dir / "new.json", {"data": [{"id": 1}]})
    saved = console.post(
        "/sources/new",
        data={
            "csrf": token,
            "intent": "save",
            "source_type": "json",
            "connection_type": "file",
            "source_id": "fresh",
            "name": "Fresh",
            "site": "west",
            "priority": "2",
            "cfg.file_path": str(path),
            "target_table": "fresh",
            "sync_strategy": "full",
            "records_path": "data",
            "on_invalid": "quarantine",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text[:2000]
    with store.connect() as conn:
        site = conn.execute(select(reg_t.c.site).where(reg_t.c.source_id == "fresh")).scalar()
    assert site == "west"
    edit = console.get("/sources/fresh/edit")
    assert '<option value="west" selected>' in edit.text
