"""OPC UA sources against a real asyncua server started in this process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from factorysync.connectors.base import ConnectorContext
from factorysync.connectors.registry import build_connector
from factorysync.errors import ConnectorError
from factorysync.realtime.service import RealtimeService
from factorysync.settings import Settings
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.conftest import closed_port
from tests.realtime.conftest import free_port, register
from tests.waiting import PATIENCE, wait_until

asyncua = pytest.importorskip("asyncua")
ua = asyncua.ua


class OpcServer:
    """An asyncua server on loopback, run by an event loop in its own thread."""

    def __init__(self) -> None:
        self.port = 0
        self.endpoint = ""
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.nodes: dict[str, Any] = {}

    def call(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(PATIENCE)

    async def _start(self) -> None:
        self.port = free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/factorysync/"
        self.server = asyncua.Server()
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        ns = await self.server.register_namespace("urn:factorysync:test")
        machine = await self.server.nodes.objects.add_object(ns, "M101")
        self.nodes["speed"] = await machine.add_variable(ua.NodeId("M101.Speed", ns), "Speed", 0.0)
        self.nodes["state"] = await machine.add_variable(ua.NodeId(2001, ns), "State", "idle")
        await self.server.start()

    def start(self) -> None:
        self.thread.start()
        for attempt in range(5):
            try:
                self.call(self._start())
                return
            except OSError:  # the port found free was taken meanwhile: another one
                if attempt == 4:
                    raise

    def write(self, name: str, value: Any, source_ts: datetime) -> None:
        dv = ua.DataValue(ua.Variant(value), SourceTimestamp=source_ts)
        self.call(self.nodes[name].write_value(dv))

    def node_id(self, name: str) -> str:
        return str(self.nodes[name].nodeid.to_string())

    def stop(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def opc_server() -> Iterator[OpcServer]:
    server = OpcServer()
    server.start()
    yield server
    server.stop()


def opcua_source(server: OpcServer, **config: Any) -> dict[str, Any]:
    return {
        "source_id": "m101-opcua",
        "name": "M101 controller",
        "source_type": "opcua",
        "connections": [
            {
                "connection_config": {
                    "endpoint": server.endpoint,
                    "nodes": [
                        {"node_id": server.node_id("speed"), "field": "spindle_speed"},
                        {"node_id": server.node_id("state"), "field": "state"},
                    ],
                    "sampling_interval_ms": 20,
                    "publishing_interval_ms": 50,
                    "batch_ms": 50,
                    "fields": {"machine_id": "M-101"},
                    "timeout_s": 60,  # the server shares this process's (busy) CPU
                    **config,
                }
            }
        ],
        "mappings": [
            {
                "target_table": "machine_signals",
                "sync_strategy": "realtime",
                "mapping_config": {
                    "primary_key": ["machine_id", "field", "source_timestamp"],
                    "fields": {
                        "machine_id": "machine_id",
                        "field": "field",
                        "source_timestamp": {"from": "source_timestamp", "type": "datetime"},
                        "value": {"from": "value", "type": "string"},
                        "status": "status",
                        "status_code": "status_code",
                    },
                },
            }
        ],
    }


def signals(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        try:
            return read_rows(conn, "machine_signals")
        except Exception:
            return []


def test_subscribed_values_land_with_source_timestamps(store: Store, opc_server: OpcServer) -> None:
    register(store, opcua_source(opc_server))
    service = RealtimeService(store, file_watch=False)
    try:
        service.reconcile()
        assert "m101-opcua" in service.workers, service.failed
        subscriber = service.workers["m101-opcua"][1].subscriber  # type: ignore[attr-defined]
        assert subscriber.connected.wait(PATIENCE)
        base = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
        for i in range(1, 4):
            opc_server.write("speed", 1000.0 + i, base + timedelta(seconds=i))
            wait_until(
                lambda i=i: any(r["value"] == str(1000.0 + i) for r in signals(store)),
                what=f"speed change {i}",
            )
        opc_server.write("state", "run", base + timedelta(seconds=10))
        wait_until(lambda: any(r["value"] == "run" for r in signals(store)), what="state change")
    finally:
        service.stop()

    rows = signals(store)
    speeds = {r["source_timestamp"]: r for r in rows if r["field"] == "spindle_speed"}
    for i in range(1, 4):
        row = speeds[base + timedelta(seconds=i)]
        assert row["value"] == str(1000.0 + i)
        assert (row["status"], row["status_code"], row["machine_id"]) == ("Good", 0, "M-101")
    state = [r for r in rows if r["field"] == "state" and r["value"] == "run"]
    assert state[0]["source_timestamp"] == base + timedelta(seconds=10)


def test_check_and_discover_read_the_nodes(opc_server: OpcServer, env: dict[str, str]) -> None:
    config = opcua_source(opc_server)["connections"][0]["connection_config"]
    context = ConnectorContext("m101-opcua", Settings())
    connector = build_connector("opcua", config, {}, context)
    assert "2 node(s) readable" in connector.check().message
    fields = {f.name: f for f in connector.discover()}
    assert {"node_id", "field", "value", "source_timestamp", "status"} <= set(fields)

    missing = dict(config, nodes=[{"node_id": "ns=2;i=999999", "field": "nothing"}])
    with pytest.raises(ConnectorError, match="ns=2;i=999999"):
        build_connector("opcua", missing, {}, context).check()
    with closed_port() as port:
        down = dict(config, endpoint=f"opc.tcp://127.0.0.1:{port}/", timeout_s=2)
        with pytest.raises(ConnectorError, match="cannot reach OPC UA server"):
            build_connector("opcua", down, {}, context).check()
