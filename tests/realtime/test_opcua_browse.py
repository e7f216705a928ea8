"""Browsing an OPC UA server (``source discover --browse``) against a real asyncua server
in this process: a nested address space listed with paths, types, access and values; a
source made from the listing through the HTTP API subscribes to what was listed; and a
server that is cyclic, huge, slow or silent gives a bounded answer."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from factorysync.connectors.base import ConnectorContext
from factorysync.connectors.registry import build_connector
from factorysync.errors import ConfigError, ConnectorError
from factorysync.realtime.service import RealtimeService
from factorysync.settings import Settings
from factorysync.store.store import Store
from tests.api.conftest import Api
from tests.api.conftest import api as api  # the fixture
from tests.conftest import run_cli
from tests.realtime.conftest import free_port, register
from tests.realtime.test_opcua import OpcServer, signals
from tests.waiting import PATIENCE, wait_until

asyncua = pytest.importorskip("asyncua")
ua = asyncua.ua

LINES = ("LineA", "LineB")
MACHINES = 5
# Per machine: (browse name, initial value, variant type, writable).
VARIABLES = (
    ("Speed", 1200.5, ua.VariantType.Double, True),
    ("Count", 7, ua.VariantType.Int32, False),
    ("State", "run", ua.VariantType.String, True),
    ("Running", True, ua.VariantType.Boolean, False),
    ("Temperature", 71.25, ua.VariantType.Float, False),
)
TYPE_NAMES = {
    "Speed": "Double",
    "Count": "Int32",
    "State": "String",
    "Running": "Boolean",
    "Temperature": "Float",
}
CROWD = 3000  # variables in the folder of the huge address space


class PlantServer(OpcServer):
    """Objects/LineX/MachineN/<5 variables>: 2 lines × 5 machines × 5 = 50 variables, three
    levels below Objects; each machine also refers back to its line and to Objects
    (reference cycles). ``crowd``: a further folder with thousands of variables."""

    def __init__(self, *, crowd: int = 0) -> None:
        super().__init__()
        self.crowd = crowd
        self.paths: dict[str, str] = {}  # node id -> browse path below Objects

    async def _start(self) -> None:
        self.port = free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/factorysync/"
        self.server = asyncua.Server()
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        ns = await self.server.register_namespace("urn:factorysync:plant")
        objects = self.server.nodes.objects
        for line_name in LINES:
            line = await objects.add_folder(ua.NodeId(f"{line_name}", ns), line_name)
            for m in range(1, MACHINES + 1):
                machine_name = f"M{m}"
                machine = await line.add_object(
                    ua.NodeId(f"{line_name}.{machine_name}", ns), machine_name
                )
                for name, value, vtype, writable in VARIABLES:
                    node = await machine.add_variable(
                        ua.NodeId(f"{line_name}.{machine_name}.{name}", ns),
                        name,
                        ua.Variant(value, vtype),
                    )
                    if writable:
                        await node.set_writable()
                    self.paths[node.nodeid.to_string()] = f"{line_name}/{machine_name}/{name}"
                # Hierarchical references back up: cycles a walk must not follow twice.
                await machine.add_reference(line.nodeid, ua.ObjectIds.HasNotifier)
                await machine.add_reference(objects.nodeid, ua.ObjectIds.HasNotifier)
        if self.crowd:
            folder = await objects.add_folder(ua.NodeId("Crowd", ns), "Crowd")
            for i in range(self.crowd):
                await folder.add_variable(ua.NodeId(f"Crowd.V{i}", ns), f"V{i}", float(i))
        await self.server.start()


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def plant() -> Iterator[PlantServer]:
    server = PlantServer()
    server.start()
    yield server
    server.stop()


def browsing_source(
    endpoint: str, source_id: str = "plant-browser", **config: Any
) -> dict[str, Any]:
    """A source to browse from: its endpoint (the node is only a placeholder)."""
    return {
        "source_id": source_id,
        "name": "Plant OPC UA server",
        "source_type": "opcua",
        "connections": [
            {
                "connection_config": {
                    "endpoint": endpoint,
                    "nodes": ["i=2258"],  # Server/ServerStatus/CurrentTime
                    "timeout_s": 60,  # the server shares this process's (busy) CPU
                    **config,
                }
            }
        ],
        "mappings": [
            {
                "target_table": "plant_signals",
                "sync_strategy": "realtime",
                "mapping_config": {"primary_key": ["field", "source_timestamp"]},
            }
        ],
    }


def connector(endpoint: str, **config: Any) -> Any:
    cfg = browsing_source(endpoint, **config)["connections"][0]["connection_config"]
    return build_connector("opcua", cfg, {}, ConnectorContext("plant-browser", Settings()))


def test_browse_lists_every_variable_with_path_type_access_and_value(
    store: Store, plant: PlantServer, api: Api
) -> None:
    register(store, browsing_source(plant.endpoint))
    proc = run_cli("source", "discover", "plant-browser", "--browse", "--json", check=True)
    found = orjson.loads(proc.stdout)
    assert found["truncated"] is None
    assert (found["start"], found["depth"]) == ("i=85", 3)
    listed = {v["node_id"]: v for v in found["variables"]}
    # The 50 variables, nothing of the standard namespace (the Server object), each once.
    assert len(found["variables"]) == 50
    assert set(listed) == set(plant.paths)
    for node_id, v in listed.items():
        name = plant.paths[node_id].rsplit("/", 1)[1]
        assert v["path"] == f"Objects/{plant.paths[node_id]}"
        assert v["data_type"] == TYPE_NAMES[name]
        writable = next(w for n, _, _, w in VARIABLES if n == name)
        assert v["access"] == (["read", "write"] if writable else ["read"])
        assert v["value"] == next(value for n, value, _, _ in VARIABLES if n == name)
        assert v["status"] == "Good"
    fields = [v["field"] for v in found["variables"]]
    assert len(set(fields)) == 50 and "line_a_m1_speed" in fields

    table = run_cli("source", "discover", "plant-browser", "--browse", check=True).stdout
    assert "ns=2;s=LineA.M1.Speed" in table and "Objects/LineA/M1/Speed" in table
    assert "Double" in table and "read,write" in table
    assert "50 variable(s)" in table and "truncated" not in table

    # One level less: the machines are found, their variables are not.
    shallow = run_cli(
        "source", "discover", "plant-browser", "--browse", "--depth", "2", "--json", check=True
    )
    assert orjson.loads(shallow.stdout)["variables"] == []
    # A start node of its own: one machine's variables, paths below it (one level: its
    # references back up lead to its line and to Objects).
    machine = run_cli(
        "source", "discover", "plant-browser", "--browse", "--start", "ns=2;s=LineB.M3",
        "--depth", "1", "--json", check=True,
    )  # fmt: skip
    paths = sorted(v["path"] for v in orjson.loads(machine.stdout)["variables"])
    assert paths == sorted(f"M3/{n}" for n, *_ in VARIABLES)

    # A source made of the listed nodes, through the HTTP API, subscribes to each of them.
    chosen = found["variables"]
    declaration = browsing_source(plant.endpoint, "plant-signals", publishing_interval_ms=50)
    connection = declaration["connections"][0]["connection_config"]
    connection["nodes"] = [{"node_id": v["node_id"], "field": v["field"]} for v in chosen]
    declaration["mappings"][0]["target_table"] = "machine_signals"
    declaration["mappings"][0]["mapping_config"] = {
        "primary_key": ["field", "source_timestamp"],
        "fields": {
            "node_id": "node_id",
            "field": "field",
            "source_timestamp": {"from": "source_timestamp", "type": "datetime"},
            "value": {"from": "value", "type": "string"},
        },
    }
    created = api.post("/api/sources", json=declaration)
    assert created.status_code == 201, created.text
    service = RealtimeService(store, file_watch=False)
    try:
        service.reconcile()
        assert "plant-signals" in service.workers, service.failed
        expected = {v["field"] for v in chosen}
        # Every monitored node sends its current value first.
        wait_until(
            lambda: {r["field"] for r in signals(store)} == expected,
            what="the current value of each chosen node",
            state=lambda: sorted({r["field"] for r in signals(store)}),
        )
        speed = next(v for v in chosen if v["path"].endswith("/Speed"))
        node = plant.server.get_node(speed["node_id"])
        change = ua.DataValue(
            ua.Variant(1500.0, ua.VariantType.Double), SourceTimestamp=datetime.now(UTC)
        )
        plant.call(node.write_value(change))
        wait_until(
            lambda: any(
                r["field"] == speed["field"] and r["value"] == "1500.0" for r in signals(store)
            ),
            what="a change of a chosen node",
        )
    finally:
        service.stop()
    assert {r["node_id"] for r in signals(store)} == {v["node_id"] for v in chosen}


def test_reference_cycles_are_visited_once(plant: PlantServer) -> None:
    found = connector(plant.endpoint).browse(depth=12)
    assert found["truncated"] is None
    assert sorted(v["node_id"] for v in found["variables"]) == sorted(plant.paths)
    # 2 lines + 10 machines + 50 variables, each visited once despite the cycles.
    assert found["visited"] == 62


def test_a_huge_address_space_is_truncated_and_says_so(env: dict[str, str]) -> None:
    server = PlantServer(crowd=CROWD)
    server.start()
    try:
        found = connector(server.endpoint).browse(max_nodes=500)
        assert found["truncated"] == "stopped at 500 nodes (--max-nodes)"
        assert found["visited"] == 500
        assert 0 < len(found["variables"]) <= 500
        # Enough room: all of it, in pages of references.
        everything = connector(server.endpoint).browse(max_nodes=5000, depth=3)
        assert everything["truncated"] is None
        assert len(everything["variables"]) == 50 + CROWD
        # A walk that may not take the time it needs stops with what it has, or says why.
        with pytest.raises(ConnectorError, match="--max-seconds"):
            connector(server.endpoint).browse(max_seconds=0.001)
    finally:
        server.stop()


def test_a_silent_server_is_a_clear_error_not_a_hang(env: dict[str, str]) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ConnectorError, match=r"cannot reach .*no answer within 2 s"):
            connector(f"opc.tcp://127.0.0.1:{port}/", timeout_s=2).browse()
        assert time.monotonic() - started < PATIENCE


def test_bad_start_nodes_and_other_types_are_refused(
    store: Store, plant: PlantServer, tmp_path: Any
) -> None:
    with pytest.raises(ConnectorError, match="no node ns=2;s=Nowhere to start at"):
        connector(plant.endpoint).browse(start="ns=2;s=Nowhere")
    with pytest.raises(ConfigError, match="not an OPC UA node id"):
        connector(plant.endpoint).browse(start="the line")

    register(store, browsing_source(plant.endpoint))
    proc = run_cli("source", "discover", "plant-browser", "--depth", "2")
    assert proc.returncode != 0 and "--start and --depth go with --browse" in proc.stderr
    (tmp_path / "data" / "m.json").write_text('[{"id": 1}]')
    register(
        store,
        {
            "source_id": "machines-file",
            "name": "Machines",
            "source_type": "json",
            "connections": [{"connection_config": {"file_path": str(tmp_path / "data/m.json")}}],
            "mappings": [{"target_table": "machines_file", "mapping_config": {}}],
        },
    )
    proc = run_cli("source", "discover", "machines-file", "--browse")
    assert proc.returncode != 0
    assert "--browse lists the nodes of an OPC UA server" in proc.stderr
