"""OPC UA in the add-source form: Discover browses a real asyncua server (in this process)
from the Objects folder, lists its variables with node id, path, type, access and value,
and the ticked ones become the source's ``nodes`` (field names from their browse paths):
instantly with JavaScript in Chromium, and through a ``use_nodes`` post without it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from factorysync.api import create_app
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.store import Store
from tests.realtime.test_opcua_browse import PlantServer
from tests.web.conftest import LiveServer, add_users, serve
from tests.web.test_form_guide import LAPTOP, new_page, pick_type, probe
from tests.web.test_pages import log_in

pytest.importorskip("asyncua")
TICKED = ("LineA.M1.Speed", "LineA.M2.Count", "LineB.M5.Temperature")


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def plant() -> Iterator[PlantServer]:
    server = PlantServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def console(store: Store, data_dir: Path) -> Iterator[LiveServer]:
    add_users(store)
    yield from serve(store)


def test_browse_and_tick_nodes(console: LiveServer, browser: Any, plant: PlantServer) -> None:
    base, store = console.url, console.store
    page = new_page(browser, base, LAPTOP)
    pick_type(page, base, "opcua")
    assert page.locator("select[name=sync_strategy]").input_value() == "realtime"
    page.fill("input[name='cfg.endpoint']", plant.endpoint)
    page.click("details.more summary")
    page.fill("input[name='cfg.timeout_s']", "60")  # the server shares this busy CPU

    probe(page, "discover", "table.browse")
    rows = page.locator("#probe-result table.browse tr[data-node]")
    assert rows.count() == 50  # 2 lines × 5 machines × 5 variables, three levels down
    speed = page.locator("#probe-result tr[data-node$='LineA.M1.Speed']")
    assert "LineA/M1/Speed" in speed.inner_text() and "Double" in speed.inner_text()
    assert "1200.5" in speed.inner_text() and "write" in speed.inner_text()
    for node in TICKED:
        page.check(f"#probe-result tr[data-node$='{node}'] input[name=pick]")
    page.click("#use-nodes")
    nodes = orjson.loads(page.input_value("textarea[name='cfg.nodes']"))
    assert [n["node_id"].rsplit("=", 1)[1] for n in nodes] == list(TICKED)
    assert all(re.fullmatch(r"[a-z_][a-z0-9_]*", n["field"]) for n in nodes)
    assert page.input_value("input[name=target_table]") == "factorysync"
    assert page.input_value("input[name=primary_key]") == "field, source_timestamp"

    page.click("#save")
    page.wait_for_url(re.compile(r"/sources/factorysync\?notice="))
    with store.connect() as conn:
        decl = declaration_of(get_source(conn, "factorysync"), store.box)
    stored = decl.primary().connection_config["nodes"]
    assert [n["node_id"] for n in stored] == [n["node_id"] for n in nodes]
    assert decl.mappings[0].sync_strategy == "realtime"
    assert page.violations == []


def test_use_ticked_nodes_without_javascript(store: Store, data_dir: Path) -> None:
    add_users(store)
    picks = [
        orjson.dumps({"node_id": f"ns=2;s={n}", "field": n.lower().replace(".", "_")}).decode()
        for n in TICKED
    ]
    with TestClient(create_app(store)) as client:
        token = log_in(client, "admin")
        page = client.post(
            "/sources/new",
            data={
                "csrf": token,
                "intent": "use_nodes",
                "source_type": "opcua",
                "connection_type": "opcua",
                "cfg.endpoint": "opc.tcp://127.0.0.1:4840",
                "pick": picks,
            },
        )
    assert page.status_code == 200
    shown = re.search(r'<textarea name="cfg.nodes"[^>]*>([^<]*)</textarea>', page.text)
    assert shown
    nodes = orjson.loads(shown.group(1).replace("&#34;", '"').replace("&quot;", '"'))
    assert nodes == [orjson.loads(p) for p in picks]
