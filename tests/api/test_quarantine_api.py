"""The quarantine over HTTP: a page with its total (JSON or CSV) for viewers; replay and
clear for operators, through the same services as the command line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from factorysync.engine.runner import Runner, run_slot
from tests.api.conftest import Api, machine_source
from tests.conftest import write_json

ROWS, BAD = 1000, 369


def counters(bad_qty: int = -1) -> list[dict[str, Any]]:
    return [{"machineId": f"P-{i:04d}", "qtyGood": bad_qty if i < BAD else i} for i in range(ROWS)]


def ruled(api: Api, data_dir: Path, minimum: int) -> None:
    body = machine_source(data_dir / "counters.json")
    body["mappings"][0]["mapping_config"]["validate"] = [
        {"field": "qty_good", "rule": "min", "value": minimum}
    ]
    if api.get("/api/sources/machines").status_code == 404:
        assert api.post("/api/sources", json=body).status_code == 201
    else:
        patch = {"mappings": body["mappings"]}
        assert api.patch("/api/sources/machines", json=patch).status_code == 200


def test_viewers_page_through_the_quarantine(api: Api, data_dir: Path) -> None:
    write_json(data_dir / "counters.json", {"data": counters()})
    ruled(api, data_dir, 0)
    for _ in range(2):
        assert Runner(api.store).sync("machines").records_rejected == BAD

    page = api.get("/api/sources/machines/quarantine?limit=50&offset=350", "viewer")
    assert page.status_code == 200, page.text
    body = page.json()
    assert (body["total"], body["limit"], body["offset"], len(body["entries"])) == (
        BAD,
        50,
        350,
        BAD - 350,
    )
    entry = body["entries"][0]
    assert entry["times_seen"] == 2 and entry["stage"] == "record"
    assert entry["reasons"] == ["qty_good = -1 is below the minimum 0"]
    assert entry["record"]["qtyGood"] == -1 and not entry["kept_previous"]

    exported = api.get("/api/sources/machines/quarantine?limit=1000&format=csv", "viewer")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "machines-quarantine.csv" in exported.headers["content-disposition"]
    lines = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(lines) == BAD
    assert {json.loads(line["record"])["machineId"] for line in lines} == {
        f"P-{i:04d}" for i in range(BAD)
    }

    assert api.get("/api/sources/nowhere/quarantine", "viewer").status_code == 404
    assert api.get("/api/sources/machines/quarantine?limit=0").status_code == 422
    assert api.get("/api/sources/machines/quarantine", None).status_code == 401


def test_operators_replay_and_clear(api: Api, data_dir: Path) -> None:
    write_json(data_dir / "counters.json", {"data": counters()})
    ruled(api, data_dir, 0)
    Runner(api.store).sync("machines")
    url = "/api/sources/machines/quarantine"

    assert api.post(f"{url}/replay", "viewer").status_code == 403
    assert api.post(f"{url}/clear", "viewer").status_code == 403
    with run_slot("machines"):
        busy = api.post(f"{url}/replay", "operator")
    assert busy.status_code == 409 and "already syncing" in busy.json()["detail"]

    # Nothing changed yet: every entry is refused again.
    same = api.post(f"{url}/replay", "operator").json()
    assert (same["loaded"], same["still_rejected"], same["remaining"]) == (0, BAD, BAD)

    ruled(api, data_dir, -1)
    done = api.post(f"{url}/replay", "operator")
    assert done.status_code == 200, done.text
    result = done.json()
    assert (result["loaded"], result["records_inserted"], result["remaining"]) == (BAD, BAD, 0)
    assert api.get(url, "viewer").json()["total"] == 0
    data = api.get("/api/sources/machines/data?limit=1", "viewer")
    assert data.status_code == 200
    run = api.get(f"/api/runs/{result['run_id']}", "operator").json()
    assert (run["sync_type"], run["sync_status"], run["records_inserted"]) == (
        "replay",
        "success",
        BAD,
    )
    assert run["trigger"] == "api:operator-user"

    # New bad records arrive; the operator clears them.
    write_json(data_dir / "counters.json", {"data": counters(bad_qty=-9)})
    assert Runner(api.store).sync("machines").records_rejected == BAD
    cleared = api.post(f"{url}/clear", "operator")
    assert cleared.status_code == 200 and cleared.json() == {
        "source_id": "machines",
        "removed": BAD,
    }
    assert api.get(url, "viewer").json()["total"] == 0
    assert api.post("/api/sources/nowhere/quarantine/clear", "operator").status_code == 404


def test_the_console_shows_exports_replays_and_clears(api: Api, data_dir: Path) -> None:
    from urllib.parse import unquote

    from tests.web.conftest import add_users
    from tests.web.test_pages import csrf_of, log_in

    write_json(data_dir / "counters.json", {"data": counters()})
    ruled(api, data_dir, 0)
    Runner(api.store).sync("machines")
    add_users(api.store)
    client = api.client

    log_in(client, "viewer")
    page = client.get("/sources/machines").text
    assert f'data-total="{BAD}"' in page and page.count("<tr data-entry=") == 50
    assert 'id="quarantine-replay"' not in page  # operators only
    exported = client.get("/sources/machines/quarantine.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert len(exported.text.strip().splitlines()) == BAD + 1
    refused = client.post(
        "/sources/machines/quarantine/clear", data={"csrf": csrf_of(page)}, follow_redirects=False
    )
    assert refused.status_code == 403
    client.cookies.clear()

    log_in(client, "operator")
    token = csrf_of(client.get("/sources/machines").text)
    ruled(api, data_dir, -1)
    replayed = client.post(
        "/sources/machines/quarantine/replay", data={"csrf": token}, follow_redirects=False
    )
    assert replayed.status_code == 303
    assert f"{BAD} loaded, 0 still rejected, 0 left" in unquote(replayed.headers["location"])
    assert 'id="quarantine-total"' not in client.get("/sources/machines").text

    write_json(data_dir / "counters.json", {"data": counters(bad_qty=-9)})
    Runner(api.store).sync("machines")
    cleared = client.post(
        "/sources/machines/quarantine/clear", data={"csrf": token}, follow_redirects=False
    )
    assert f"{BAD} quarantine entries removed" in unquote(cleared.headers["location"])
    assert api.get("/api/sources/machines/quarantine", "viewer").json()["total"] == 0
