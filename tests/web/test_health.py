"""Health at a glance (SQLite and PostgreSQL): failing sources first and marked on the
overview and the sources list, the source page's quarantine with its total, pages and a
CSV export of every entry, and run charts on a time axis with distinct tick labels and a
title per run."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, update

from factorysync import services
from factorysync.api import create_app
from factorysync.engine.quarantine import reject, store_rejects
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.web.charts import Mark, time_bars, time_ticks
from factorysync.web.quarantine_pages import page_links
from tests.conftest import write_json
from tests.web.conftest import add_users
from tests.web.test_pages import log_in

JAKARTA = ZoneInfo("Asia/Jakarta")
T0 = datetime(2026, 3, 2, 6, 4, 1, tzinfo=UTC)  # 13:04:01 in Jakarta


def _source(store: Store, data_dir: Path, source_id: str) -> None:
    path = write_json(data_dir / f"{source_id}.json", {"data": [{"id": 1}]})
    services.create_source(
        store,
        {
            "source_id": source_id,
            "name": source_id.replace("_", " ").title(),
            "source_type": "json",
            "connections": [{"connection_config": {"file_path": str(path)}}],
            "mappings": [{"target_table": source_id, "mapping_config": {"records_path": "data"}}],
        },
    )


@pytest.fixture
def app(store: Store, data_dir: Path) -> Iterator[TestClient]:
    """Five sources: two healthy (named to sort first), one whose circuit is open
    (status error), one active whose last runs failed, one healthy at priority 1."""
    add_users(store)
    for source_id in ("aa_fine", "ab_fine", "zz_circuit", "zy_failing", "ac_fine"):
        _source(store, data_dir, source_id)
    with store.begin() as conn:
        conn.execute(
            update(reg_t)
            .where(reg_t.c.source_id == "zz_circuit")
            .values(status="error", error_count=5, last_error="connection refused")
        )
        conn.execute(
            update(reg_t)
            .where(reg_t.c.source_id == "zy_failing")
            .values(error_count=2, last_error="file gone")
        )
    with TestClient(create_app(store)) as client:
        yield client


def _rows(html: str, table: str) -> list[tuple[str, str]]:
    """(source id, class attribute) of each source row in the element with id ``table``."""
    start = html.index(f'id="{table}"')
    end = html.index("</table>", start)
    return re.findall(r'<tr class="([^"]*)" data-source="([^"]+)"', html[start:end])


def test_failing_sources_come_first_and_are_marked(app: TestClient) -> None:
    log_in(app, "viewer")
    listed = [(source, cls) for cls, source in _rows(app.get("/sources").text, "sources")]
    assert [s for s, _ in listed] == ["zz_circuit", "zy_failing", "aa_fine", "ab_fine", "ac_fine"]
    assert [("failing" in c.split()) for _, c in listed] == [True, True, False, False, False]
    # The live refresh of the list keeps the order.
    fragment = app.get("/sources/rows", headers={"X-Fragment": "rows"}).text
    assert fragment.index("zz_circuit") < fragment.index("zy_failing") < fragment.index("aa_fine")
    # A filter keeps the failing ones first among what it shows.
    status = app.get("/sources?status=failing").text
    assert [s for _, s in _rows(status, "sources")] == ["zy_failing"]

    overview = app.get("/").text
    failing = [(source, cls) for cls, source in _rows(overview, "failing")]
    assert [s for s, _ in failing] == ["zz_circuit", "zy_failing"]
    assert all("failing" in c.split() for _, c in failing)
    assert 'class="card alarm" id="failing"' in overview
    # The failing card comes before the throughput chart and the stalest sources.
    assert overview.index('id="failing"') < overview.index("<svg") < overview.index('id="stalest"')
    assert 'id="realtime"' in overview


def _quarantine(store: Store, n: int) -> None:
    """``n`` distinct refused records of aa_fine, record i refused at T0 + i minutes."""
    with store.begin() as conn:
        for i in range(n):
            entry = reject("aa_fine", "aa_fine", {"id": i, "bad": f"row-{i}"}, ["bad value"], None)
            store_rejects(conn, [entry], now=T0 + timedelta(minutes=i))


def test_quarantine_count_pages_and_export(app: TestClient, store: Store) -> None:
    _quarantine(store, 120)
    log_in(app, "operator")
    first = app.get("/sources/aa_fine").text
    assert 'data-total="120" data-page="1" data-pages="3"' in first
    assert '<span class="badge st-error" id="quarantine-count">120</span>' in first
    assert "1–50 of 120 entries" in first

    def records(html: str) -> list[int]:
        return [int(i) for i in re.findall(r"row-(\d+)", html)]

    assert records(first) == list(range(119, 69, -1))  # newest first
    assert 'href="/sources/aa_fine?qpage=2#quarantine-card"' in first
    second = app.get("/sources/aa_fine?qpage=2").text
    assert records(second) == list(range(69, 19, -1))
    assert "51–100 of 120 entries" in second
    assert 'aria-current="page" data-page="2"' in second
    assert 'rel="prev" data-page="1"' in second and 'rel="next" data-page="3"' in second
    third = app.get("/sources/aa_fine?qpage=3").text
    assert records(third) == list(range(19, -1, -1))
    assert 'rel="next"' not in third
    # Past the end: the last page; nonsense: the first.
    assert records(app.get("/sources/aa_fine?qpage=99").text) == records(third)
    assert records(app.get("/sources/aa_fine?qpage=-4").text) == records(first)
    # Replay is offered to an operator; the export holds every entry, not a page.
    assert 'id="quarantine-replay"' in first and "Export all 120 as CSV" in first
    export = app.get("/sources/aa_fine/quarantine.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(export.text)))
    assert len(lines) == 120
    assert sorted(int(line["record"].split(":")[1].split(",")[0]) for line in lines) == list(
        range(120)
    )


def test_page_links_leave_out_the_middle() -> None:
    assert page_links(1, 1) == [1]
    assert page_links(1, 3) == [1, 2, 3]
    assert page_links(6, 20) == [1, None, 4, 5, 6, 7, 8, None, 20]
    assert page_links(20, 20) == [1, None, 18, 19, 20]


def _ticks(svg: str) -> list[str]:
    return re.findall(r'<text class="axis x-tick"[^>]*>([^<]+)</text>', svg)


@pytest.mark.parametrize(
    ("gap", "shape"),
    [
        (timedelta(seconds=5), r"^\d\d:\d\d:\d\d$"),  # runs seconds apart
        (timedelta(minutes=7), r"^\d\d:\d\d$"),  # within a day: HH:MM
        (timedelta(hours=4), r"^\d\d [A-Z][a-z]{2} \d\d:\d\d$"),  # over days
        (timedelta(days=4), r"^\d\d [A-Z][a-z]{2}$"),  # over weeks: dates
    ],
)
def test_time_axis_ticks_are_distinct(gap: timedelta, shape: str) -> None:
    marks = [Mark(T0 + gap * i, 10 + i, f"run {i}", str(i)) for i in range(8)]
    svg = str(time_bars("rows", marks, JAKARTA))
    labels = _ticks(svg)
    assert len(labels) >= 2 and len(labels) == len(set(labels)), labels
    assert all(re.match(shape, label) for label in labels), labels
    # Bars sit where their moment falls: equal gaps in time, equal gaps on the axis.
    xs = [float(x) for x in re.findall(r'<rect class="bar" x="([\d.]+)"', svg)]
    steps = [b - a for a, b in pairwise(xs)]
    assert max(steps) - min(steps) < 0.3, xs
    assert re.findall(r"<title>(run \d)</title>", svg) == [f"run {i}" for i in range(8)]


def test_ticks_follow_the_plant_clock_and_its_language() -> None:
    start = datetime(2026, 4, 30, 10, 0, tzinfo=UTC)
    months = ["Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des"]
    ticks = time_ticks(start, start + timedelta(days=3), JAKARTA, months)
    assert [label for _, label in ticks][:3] == ["01 Mei", "02 Mei", "03 Mei"]
    assert all(when.astimezone(JAKARTA).hour == 0 for when, _ in ticks)
    one = time_ticks(start, start, JAKARTA)
    assert [label for _, label in one] == ["30 Apr 17:00"]


def test_source_charts_have_a_time_axis_and_a_title_per_run(app: TestClient, store: Store) -> None:
    with store.begin() as conn:
        for i in range(3):  # three runs within the same minute: 13:04:01, :21, :41
            conn.execute(
                insert(hist_t).values(
                    source_id="ab_fine",
                    sync_type="full",
                    sync_status="failed" if i == 1 else "success",
                    trigger="manual",
                    records_processed=100 * (i + 1),
                    sync_duration_ms=1500 + i,
                    sync_started_at=T0 + timedelta(seconds=20 * i),
                )
            )
    log_in(app, "viewer")
    page = app.get("/sources/ab_fine").text
    charts = re.findall(r'<svg class="chart".*?</svg>', page, flags=re.S)
    assert len(charts) == 3
    for svg in charts:
        assert 'data-axis="time" ' in svg and 'data-points="3"' in svg
        labels = _ticks(svg)
        assert labels and len(labels) == len(set(labels)), labels
        titles = re.findall(r'data-key="(\d+)"><title>([^<]+)</title>', svg)
        assert len(titles) == 3
        for run_id, title in titles:
            assert title.startswith(f"Run {run_id} · started 2026-03-02 13:04:"), title
            assert " ms · " in title and " rows · " in title
        assert re.search(r"· 200 rows · failed", svg)
    assert "13:04:01" in charts[0] and "13:04:41" in charts[0]
