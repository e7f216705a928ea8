"""The sources list and the alerts in pages (issue #23), on SQLite and PostgreSQL: 50 a
page, failing sources (open alerts) first across the pages, page links and the live
refresh keeping the filters, an out-of-range page clamped; and the number of SQL
statements behind the list, the overview and the alerts not growing with the number of
sources."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, insert, update

from factorysync import services
from factorysync.alerts import records
from factorysync.api import create_app
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.store.types import utcnow
from factorysync.web.views import PAGE_SIZE
from tests.conftest import write_json
from tests.web.conftest import add_users
from tests.web.test_pages import log_in

SOURCES = 120


def _register(store: Store, data_dir: Path, numbers: range) -> None:
    """Sources ``s000``… (even numbers in category ``even``, odd in ``odd``); every tenth
    from s005 is failing: circuit open (status error) when the number is 5 mod 20, else
    active with failed runs."""
    for i in numbers:
        sid = f"s{i:03d}"
        path = write_json(data_dir / f"{sid}.json", {"data": [{"id": 1}]})
        services.create_source(
            store,
            {
                "source_id": sid,
                "name": f"Counter {i}",
                "source_type": "json",
                "category": "even" if i % 2 == 0 else "odd",
                "connections": [{"connection_config": {"file_path": str(path)}}],
                "mappings": [{"target_table": sid, "mapping_config": {"records_path": "data"}}],
            },
        )
    with store.begin() as conn:
        for i in numbers:
            if i % 10 == 5:
                circuit = i % 20 == 5
                conn.execute(
                    update(reg_t)
                    .where(reg_t.c.source_id == f"s{i:03d}")
                    .values(
                        status="error" if circuit else "active",
                        error_count=4 if circuit else 2,
                        last_error="file gone",
                    )
                )


def expected_order(numbers: range) -> list[str]:
    """Circuit open first, then failing, then the rest; by source id within each."""

    def rank(i: int) -> int:
        return 0 if i % 20 == 5 else 1 if i % 10 == 5 else 2

    return [f"s{i:03d}" for i in sorted(numbers, key=lambda i: (rank(i), i))]


@pytest.fixture
def app(store: Store, data_dir: Path) -> Iterator[TestClient]:
    add_users(store)
    _register(store, data_dir, range(SOURCES))
    with TestClient(create_app(store)) as client:
        log_in(client, "viewer")
        yield client


def listed(page: str) -> list[tuple[str, bool]]:
    """(source id, marked failing) of each row of the list, in order."""
    return [
        (sid, "failing" in cls.split())
        for cls, sid in re.findall(r'<tr class="([^"]*)" data-source="([^"]+)"', page)
    ]


def ids(page: str) -> list[str]:
    return [sid for sid, _ in listed(page)]


def live_url(page: str) -> str:
    found = re.search(r'<tbody id="source-rows" data-live="([^"]+)"', page)
    assert found, "no live refresh on the list"
    return html.unescape(found.group(1))


def page_hrefs(page: str) -> dict[int, str]:
    """Page number → link of the list's pager."""
    nav = re.search(r'<nav class="pager" id="source-pages".*?</nav>', page, re.S)
    assert nav, "no pager on the list"
    return {
        int(n): html.unescape(href)
        for href, n in re.findall(r'<a href="([^"]+)"[^>]* data-page="(\d+)"', nav.group(0))
    }


def test_pages_of_fifty_failing_first(app: TestClient) -> None:
    order = expected_order(range(SOURCES))
    first = app.get("/sources").text
    rows = listed(first)
    assert len(rows) == PAGE_SIZE == 50
    assert [sid for sid, _ in rows] == order[:50]
    # The twelve failing sources (six circuits open, then six failing) lead, marked.
    assert [marked for _, marked in rows] == [True] * 12 + [False] * 38
    assert [sid for sid, _ in rows[:6]] == ["s005", "s025", "s045", "s065", "s085", "s105"]
    assert 'data-count="50" data-total="120" data-page="1"' in first
    assert "1–50 of 120 sources" in first
    assert 'data-page="1" data-pages="3"' in first
    assert 'aria-current="page" data-page="1"' in first
    assert page_hrefs(first) == {2: "/sources?page=2", 3: "/sources?page=3"}

    second = app.get("/sources?page=2").text
    assert ids(second) == order[50:100]
    third = app.get("/sources?page=3").text
    assert ids(third) == order[100:] and len(order[100:]) == 20
    assert "101–120 of 120 sources" in third
    assert 'rel="next"' not in third and 'rel="prev" data-page="2"' in third
    # Every source is on exactly one page.
    assert sorted(ids(first) + ids(second) + ids(third)) == sorted(order)


def test_out_of_range_pages_clamp(app: TestClient) -> None:
    order = expected_order(range(SOURCES))
    past = app.get("/sources?page=99").text
    assert ids(past) == order[100:]
    assert 'aria-current="page" data-page="3"' in past
    for nonsense in ("0", "-4"):
        assert ids(app.get(f"/sources?page={nonsense}").text) == order[:50]
    # The live refresh of a page past the end shows the last page too.
    assert ids(app.get("/sources/rows?page=7").text) == order[100:]


def test_filters_survive_paging_and_the_live_refresh(app: TestClient, store: Store) -> None:
    evens = expected_order(range(0, SOURCES, 2))  # 60 sources: two pages
    first = app.get("/sources?category=even&q=s").text
    assert ids(first) == evens[:50]
    assert "1–50 of 60 sources" in first
    links = page_hrefs(first)
    assert links == {2: "/sources?category=even&q=s&page=2"}
    assert live_url(first) == "/sources/rows?category=even&q=s&page=1"

    second = app.get(links[2]).text
    assert ids(second) == evens[50:]
    assert "51–60 of 60 sources" in second
    assert page_hrefs(second) == {1: "/sources?category=even&q=s&page=1"}
    # The live refresh of page 2 brings page 2's rows, with the same filters.
    live = live_url(second)
    assert live == "/sources/rows?category=even&q=s&page=2"
    fragment = app.get(live, headers={"X-Fragment": "rows"})
    assert fragment.status_code == 200
    assert ids(fragment.text) == evens[50:]
    assert 'data-count="10" data-total="60" data-page="2"' in fragment.text

    # Status filters are applied before paging: failing, and a run in progress.
    failing = app.get("/sources?status=failing").text
    assert ids(failing) == ["s015", "s035", "s055", "s075", "s095", "s115"]
    with store.begin() as conn:
        conn.execute(
            insert(hist_t).values(
                source_id="s042",
                sync_type="full",
                sync_status="running",
                trigger="manual",
                sync_started_at=utcnow(),
            )
        )
    running = app.get("/sources?status=running").text
    assert listed(running) == [("s042", False)]
    assert 'data-status="running"' in running
    assert "pager" not in running.split('id="sources"')[1]  # one page: no pager


def _statements(store: Store, client: TestClient, url: str) -> int:
    client.get(url)  # warm: the session, caches
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        answer = client.get(url)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert answer.status_code == 200, url
    return len(seen)


def test_queries_do_not_grow_with_the_sources(store: Store, data_dir: Path) -> None:
    add_users(store)
    _register(store, data_dir, range(10))
    pages = ("/sources", "/sources/rows", "/sources?status=failing&q=s", "/", "/alerts")
    with TestClient(create_app(store)) as client:
        log_in(client, "viewer")
        few = {url: _statements(store, client, url) for url in pages}
        _register(store, data_dir, range(10, 200))
        many = {url: _statements(store, client, url) for url in pages}
        assert ids(client.get("/sources?page=4").text) == expected_order(range(200))[150:]
    assert many == few
    assert all(0 < n <= 20 for n in few.values()), few


def test_overview_counts_every_open_alert(app: TestClient, store: Store) -> None:
    """The tile counts all open alerts, not only the ten the overview lists; the list
    shows each of them with its count of active alerts."""
    failing = [f"s{i:03d}" for i in range(5, SOURCES, 10)]
    with store.begin() as conn:
        records.raise_alerts(
            conn,
            [
                {"source_id": sid, "rule": "consecutive_failures", "message": f"{sid} failing"}
                for sid in failing
            ],
            utcnow(),
        )
    overview = app.get("/").text
    tile = re.search(r'<a class="tile" href="/alerts\?state=open"><b>(\d+)</b>', overview)
    assert tile and int(tile.group(1)) == len(failing) == 12
    assert overview.count('<ul class="alerts">') == 1 and overview.count("<li>") == 10
    rows = app.get("/sources").text
    alerts = re.findall(r'class="badge sev-warning" href="/alerts\?state=open">(\d+)<', rows)
    assert alerts == ["1"] * 12


def test_alerts_in_pages_keep_their_state_filter(app: TestClient, store: Store) -> None:
    """120 alerts, one a source: the twelve of the failing sources acknowledged."""
    now = utcnow()
    with store.begin() as conn:
        records.raise_alerts(
            conn,
            [
                {"source_id": f"s{i:03d}", "rule": "stale", "message": f"s{i:03d} quiet"}
                for i in range(SOURCES)
            ],
            now,
        )
    acked = [f"s{i:03d}" for i in range(5, SOURCES, 10)]
    with store.begin() as conn:
        for sid in acked:
            alert_id = next(
                a["id"] for a in records.list_alerts(conn, source_id=sid) if a["state"] == "open"
            )
            records.acknowledge(conn, alert_id, "operator1")

    def shown(page: str) -> list[tuple[str, str]]:
        return re.findall(
            r'<tr class="alert" data-alert="\d+" data-source="([^"]+)" '
            r'data-rule="[^"]+" data-state="([^"]+)"',
            page,
        )

    first = app.get("/alerts").text
    assert len(shown(first)) == 50 and {s for _, s in shown(first)} == {"open"}
    assert "1–50 of 120 alerts." in first
    third = app.get("/alerts?page=3").text
    assert [s for _, s in shown(third)][-12:] == ["acknowledged"] * 12
    assert sorted(sid for sid, s in shown(third) if s == "acknowledged") == acked
    assert len(shown(third)) == 20 and "101–120 of 120 alerts." in third
    assert shown(app.get("/alerts?page=99").text) == shown(third)
    every = shown(first) + shown(app.get("/alerts?page=2").text) + shown(third)
    assert sorted(sid for sid, _ in every) == [f"s{i:03d}" for i in range(SOURCES)]

    # The state filter is kept by the page links and by an acknowledgement's way back.
    token = log_in(app, "operator")
    opened = app.get("/alerts?state=open&page=2").text
    assert len(shown(opened)) == 50 and {s for _, s in shown(opened)} == {"open"}
    assert "51–100 of 108 alerts." in opened
    assert 'href="/alerts?state=open&amp;page=1" rel="prev"' in opened
    back = re.search(r'action="/alerts/(\d+)/acknowledge\?next=([^"]+)"', opened)
    assert back and back.group(2) == "/alerts%3Fstate%3Dopen%26page%3D2"
    answer = app.post(
        f"/alerts/{back.group(1)}/acknowledge?next={back.group(2)}",
        data={"csrf": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/alerts?state=open&page=2"
