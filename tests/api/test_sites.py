"""``/api/sites`` and the ``site`` filters of the API, on SQLite and PostgreSQL: the
sites with their shifts, the shift at an instant, ``?site=`` on the sources, the status
and the runs, ``site`` in the source JSON, and ``?site=`` on a target table (its
``_site`` column: central tables) with a clear 400 or 404 where it cannot apply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text

from factorysync import services
from factorysync.engine.runner import Runner
from tests.api.conftest import Api, machine_source, machines
from tests.conftest import write_json

SITES = [
    {
        "name": "cikarang",
        "time_zone": "Asia/Jakarta",
        "description": "Plant 1",
        "shifts": [
            {"name": "A", "start": "06:00", "end": "14:00"},
            {"name": "B", "start": "14:00", "end": "22:00"},
            {"name": "C", "start": "22:00", "end": "06:00"},
        ],
    },
    {"name": "surabaya", "time_zone": "Asia/Jakarta"},
]


def _plants(api: Api, data_dir: Path, tmp_path: Path) -> None:
    sources: list[dict[str, Any]] = []
    for sid, site in (("press", "cikarang"), ("oven", "surabaya"), ("lab", None)):
        write_json(data_dir / f"{sid}.json", {"data": machines(5)})
        declared = machine_source(data_dir / f"{sid}.json", sid)
        if site is not None:
            declared["site"] = site
        sources.append(declared)
    path = tmp_path / "plants.yaml"
    path.write_text(yaml.safe_dump({"sites": SITES, "sources": sources}, sort_keys=False))
    services.apply_file(api.store, path)
    for sid in ("press", "oven"):
        assert Runner(api.store).sync(sid).sync_status == "success"


def test_sites_and_shifts(api: Api, data_dir: Path, tmp_path: Path) -> None:
    _plants(api, data_dir, tmp_path)
    listed = api.get("/api/sites", "viewer")
    assert listed.status_code == 200, listed.text
    assert [(s["name"], s["time_zone"], s["sources"]) for s in listed.json()] == [
        ("cikarang", "Asia/Jakarta", 1),
        ("main", None, 1),
        ("surabaya", "Asia/Jakarta", 1),
    ]
    one = api.get("/api/sites/cikarang", "viewer").json()
    assert one["description"] == "Plant 1" and [s["name"] for s in one["shifts"]] == ["A", "B", "C"]
    missing = api.get("/api/sites/nowhere", "viewer")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no site 'nowhere' (known sites: cikarang, main, surabaya)"
    assert api.get("/api/sites", None).status_code == 401

    at = api.get("/api/sites/cikarang/shift", "viewer", params={"at": "2026-12-06T17:30:00Z"})
    assert at.status_code == 200, at.text
    body = at.json()
    assert body["shift"]["name"] == "C"  # 00:30 on the 7th in Jakarta
    assert body["local_time"] == "2026-12-07T00:30:00+07:00"
    assert body["started_at"] == "2026-12-06T22:00:00+07:00"
    between = api.get("/api/sites/surabaya/shift", "viewer", params={"at": "2026-12-06T10:00"})
    assert between.status_code == 200 and between.json()["shift"] is None
    bad = api.get("/api/sites/cikarang/shift", "viewer", params={"at": "soon"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "at"]
    assert "'soon' is not an ISO 8601 instant" in bad.json()["detail"][0]["msg"]
    assert api.get("/api/sites/nowhere/shift", "viewer").status_code == 404


def test_site_filters_on_sources_status_and_runs(api: Api, data_dir: Path, tmp_path: Path) -> None:
    _plants(api, data_dir, tmp_path)
    sources = api.get("/api/sources", "operator", params={"site": "cikarang"})
    assert sources.status_code == 200, sources.text
    assert [(s["source_id"], s["site"]) for s in sources.json()] == [("press", "cikarang")]
    assert {s["site"] for s in api.get("/api/sources", "operator").json()} == {
        "cikarang",
        "main",
        "surabaya",
    }
    assert api.get("/api/sources/oven", "operator").json()["site"] == "surabaya"

    status = api.get("/api/status", "viewer", params={"site": "surabaya"}).json()
    assert status["site"] == "surabaya" and status["sources"] == 1
    assert status["runs_last_24h"] == {"success": 1}
    assert status["by_site"] == {"cikarang": 1, "main": 1, "surabaya": 1}
    idle = api.get("/api/status", "viewer", params={"site": "main"}).json()
    assert idle["sources"] == 1 and idle["runs_last_24h"] == {}

    runs = api.get("/api/runs", "operator", params={"site": "cikarang"}).json()
    assert [r["source_id"] for r in runs] == ["press"]

    for url in ("/api/sources", "/api/status", "/api/runs"):
        answer = api.get(url, "admin", params={"site": "nowhere"})
        assert answer.status_code == 404, (url, answer.text)
        assert "no site 'nowhere'" in answer.json()["detail"]


def test_data_filter_on_the_site_column(api: Api, data_dir: Path, tmp_path: Path) -> None:
    _plants(api, data_dir, tmp_path)
    plain = api.get("/api/data/press", "viewer", params={"site": "cikarang"})
    assert plain.status_code == 400
    assert plain.json()["detail"].startswith("site: press has no _site column")

    # A central table: rows forwarded from several sites, told apart by _site.
    with api.store.begin() as conn:
        conn.execute(text("ALTER TABLE press ADD COLUMN _site VARCHAR(32)"))
        conn.execute(text("UPDATE press SET _site = 'cikarang' WHERE machine_id <= 'M-002'"))
        conn.execute(text("UPDATE press SET _site = 'remote-9' WHERE machine_id > 'M-002'"))
    mine = api.get("/api/data/press", "viewer", params={"site": "cikarang", "order": "machine_id"})
    assert mine.status_code == 200, mine.text
    assert [r["machine_id"] for r in mine.json()["items"]] == ["M-000", "M-001", "M-002"]
    # A site this store does not register, whose rows are in the table.
    remote = api.get("/api/data/press", "viewer", params={"site": "remote-9"})
    assert remote.status_code == 200 and len(remote.json()["items"]) == 2
    # Registered, with no row: an empty page.
    empty = api.get("/api/data/press", "viewer", params={"site": "surabaya"})
    assert empty.status_code == 200 and empty.json()["items"] == []
    unknown = api.get("/api/data/press", "viewer", params={"site": "nowhere"})
    assert unknown.status_code == 404
    assert "no site 'nowhere'" in unknown.json()["detail"]
    twice = api.get("/api/data/press?site=cikarang&site=surabaya", "viewer")
    assert twice.status_code == 422
