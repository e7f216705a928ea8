"""A press line's OPC UA signals pivoted into one row per press, end to end: an asyncua
server on loopback, the realtime service's subscription and writer, the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from factorysync.realtime.service import RealtimeService
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.realtime.conftest import free_port, register
from tests.realtime.test_opcua import OpcServer
from tests.waiting import PATIENCE, wait_for_value

asyncua = pytest.importorskip("asyncua")
ua = asyncua.ua

PRESSES = ("P1", "P2", "P3")
SIGNALS = ("force", "stroke_rate", "oil_temp", "state", "door_closed")
BASE = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def at(t: int) -> datetime:
    return BASE + timedelta(seconds=t)


def reading(press: str, signal: str, t: int) -> Any:
    """What ``signal`` of ``press`` reads at second ``t`` (exact in every store)."""
    m = PRESSES.index(press) + 1
    return {
        "force": 800.5 + 10 * m + t,
        "stroke_rate": 20 * m + t,
        "oil_temp": 40.25 + m + t,
        "state": ("idle", "run", "setup")[(m + t) % 3],
        "door_closed": (m + t) % 2 == 0,
    }[signal]


class PressLine(OpcServer):
    """Three presses of five signals each, at ``ns=2;s=P1.force`` … (values of second 0)."""

    async def _start(self) -> None:
        self.port = free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/factorysync/"
        self.server = asyncua.Server()
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        ns = await self.server.register_namespace("urn:factorysync:press-line")
        for press in PRESSES:
            folder = await self.server.nodes.objects.add_object(ns, press)
            for signal in SIGNALS:
                name = f"{press}.{signal}"
                node = await folder.add_variable(
                    ua.NodeId(name, ns), signal, reading(press, signal, 0)
                )
                first = ua.DataValue(ua.Variant(reading(press, signal, 0)), SourceTimestamp=at(0))
                await node.write_value(first)
                self.nodes[name] = node
        await self.server.start()


@pytest.fixture
def press_line() -> Any:
    server = PressLine()
    server.start()
    yield server
    server.stop()


# A node id names the press and the signal: ns=2;s=P2.force -> P2, force.
PIVOT = {
    "key": ["press"],
    "key_from": {"press": {"from": "node_id", "expr": "value.split(';s=')[1].split('.')[0]"}},
    "name_from": {"from": "node_id", "expr": "value.rsplit('.', 1)[1]"},
    "value_from": "value",
    "ts_from": "source_timestamp",
}


def press_source(server: PressLine) -> dict[str, Any]:
    # Bare node ids: each record's field is named after its node (p2_force).
    nodes = [server.node_id(f"{p}.{s}") for p in PRESSES for s in SIGNALS]
    typed = {
        "press": "press",
        "ts": {"from": "ts", "type": "datetime"},
        "force": {"from": "force", "type": "float"},
        "stroke_rate": {"from": "stroke_rate", "type": "integer"},
        "oil_temp": {"from": "oil_temp", "type": "float"},
        "state": "state",
        "door_closed": {"from": "door_closed", "type": "boolean"},
    }
    return {
        "source_id": "press-line-opcua",
        "name": "Press line controller",
        "source_type": "opcua",
        "connections": [
            {
                "connection_config": {
                    "endpoint": server.endpoint,
                    "nodes": nodes,
                    "sampling_interval_ms": 20,
                    "publishing_interval_ms": 50,
                    "batch_ms": 50,
                    "timeout_s": 60,  # the server shares this process's (busy) CPU
                }
            }
        ],
        "mappings": [
            {
                "target_table": "press_status",
                "sync_strategy": "realtime",
                "mapping_config": {"pivot": PIVOT},  # auto mode: types inferred
            },
            {
                "target_table": "press_series",
                "sync_strategy": "realtime",
                "mapping_config": {
                    "pivot": {**PIVOT, "mode": "wide_time_series"},
                    "fields": typed,
                },
            },
        ],
    }


def press_row(press: str, t: int) -> dict[str, Any]:
    return {"press": press, "ts": at(t), **{s: reading(press, s, t) for s in SIGNALS}}


def table(store: Store, name: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        try:
            rows = read_rows(conn, name)
        except Exception:  # not made yet
            return []
    found = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    return sorted(found, key=lambda r: (r["press"], r["ts"]))


def test_press_signals_become_one_row_per_press(store: Store, press_line: PressLine) -> None:
    register(store, press_source(press_line))
    service = RealtimeService(store, file_watch=False)
    try:
        service.reconcile()
        assert "press-line-opcua" in service.workers, service.failed
        subscriber = service.workers["press-line-opcua"][1].subscriber  # type: ignore[attr-defined]
        assert subscriber.connected.wait(PATIENCE)
        # The subscription's first values: second 0 of every signal.
        wait_for_value(
            lambda: table(store, "press_status"),
            [press_row(p, 0) for p in PRESSES],
            what="the presses at second 0",
        )
        for t in (1, 2):
            for press in PRESSES:
                for signal in SIGNALS:
                    press_line.write(f"{press}.{signal}", reading(press, signal, t), at(t))
            wait_for_value(
                lambda: table(store, "press_status"),
                [press_row(p, t) for p in PRESSES],
                what=f"the presses at second {t}",
            )
        series = [press_row(p, t) for p in PRESSES for t in (0, 1, 2)]
        wait_for_value(lambda: table(store, "press_series"), series, what="the time rows")
    finally:
        service.stop()

    assert table(store, "press_status") == [press_row(p, 2) for p in PRESSES]
    assert table(store, "press_status")[1] == {
        "press": "P2",
        "ts": datetime(2026, 1, 5, 8, 0, 2, tzinfo=UTC),
        "force": 822.5,
        "stroke_rate": 42,
        "oil_temp": 44.25,
        "state": "run",
        "door_closed": True,
    }
    assert table(store, "press_series") == series
