"""Sparkplug B sources against the real local Mosquitto broker: a whole edge node session
(births with aliases, data by alias only, a sequence gap, deaths, a rebirth) written by
the realtime service, and the rebirth command published, or only recorded, as the
source's config says."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from factorysync.connectors import sparkplug
from factorysync.realtime.service import GAP_EVENT, RealtimeService
from factorysync.store.schema import data_source_sync_history, infolog
from factorysync.store.store import Store
from tests.realtime.conftest import Publisher, mqtt_source, register
from tests.realtime.test_mqtt import quarantined, rows, started
from tests.waiting import PATIENCE, wait_until

pb = pytest.importorskip("factorysync.connectors.sparkplug_b_pb2")
Metric = pb.Payload.Metric
EDGE, DEVICE = "press-line-1", "press-1"

# The latest value of every metric (historical samples left out), keyed as the template is.
TAGS = {
    "primary_key": ["group_id", "edge_node_id", "device_id", "metric"],
    "where": "not row['is_historical']",
    "fields": {
        "group_id": "group_id",
        "edge_node_id": "edge_node_id",
        "device_id": {"from": "device_id", "default": ""},
        "metric": "metric",
        "value": {"from": "value", "type": "json"},
        "datatype": "datatype",
        "ts": {"from": "ts", "type": "datetime"},
        "stale": {"from": "stale", "type": "boolean"},
    },
}
# Every sample, historical ones included, as a time series.
SAMPLES = {
    "primary_key": ["edge_node_id", "device_id", "metric", "ts"],
    "fields": {
        "edge_node_id": "edge_node_id",
        "device_id": {"from": "device_id", "default": ""},
        "metric": "metric",
        "value": {"from": "value", "type": "json"},
        "ts": {"from": "ts", "type": "datetime"},
        "is_historical": {"from": "is_historical", "type": "boolean"},
        "stale": {"from": "stale", "type": "boolean"},
    },
}


def now_ms() -> int:
    return int(time.time() * 1000)


def payload(seq: int | None, *metrics: Any, ts: int | None = None) -> bytes:
    p = pb.Payload(metrics=metrics, timestamp=now_ms() if ts is None else ts)
    if seq is not None:
        p.seq = seq
    return bytes(p.SerializeToString())


def will(bd_seq: int) -> bytes:
    """An NDEATH as an edge node registers it as its will: bdSeq only, no timestamp."""
    death = pb.Payload(metrics=[Metric(name="bdSeq", datatype=4, long_value=bd_seq)])
    return bytes(death.SerializeToString())


class CommandListener:
    """Subscribes the group's NCMD topics and keeps what arrives."""

    def __init__(self, host: str, port: int, group: str) -> None:
        import paho.mqtt.client as mqtt

        self.received: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"fs-ncmd-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe(f"spBv1.0/{group}/NCMD/#", qos=0)
        assert subscribed.wait(PATIENCE), "NCMD subscription not acknowledged"

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self._lock:
            self.received.append((msg.topic, msg.payload))

    def commands(self) -> list[tuple[str, list[tuple[str, bool]]]]:
        """(topic, [(metric name, boolean value)]) of every command received."""
        with self._lock:
            got = list(self.received)
        out = []
        for topic, data in got:
            try:
                message = pb.Payload.FromString(data)
            except Exception:  # the marker below is no Sparkplug payload
                out.append((topic, []))
                continue
            out.append((topic, [(m.name, m.boolean_value) for m in message.metrics]))
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def group() -> str:
    return f"fs-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def listener(broker: tuple[str, int], group: str) -> Iterator[CommandListener]:
    listen = CommandListener(*broker, group)
    yield listen
    listen.close()


@pytest.fixture
def service(store: Store) -> Iterator[RealtimeService]:
    svc = RealtimeService(store, file_watch=False)
    yield svc
    svc.stop()


def sparkplug_source(
    source_id: str, broker: tuple[str, int], group: str, *, rebirth: bool
) -> dict[str, Any]:
    source = mqtt_source(
        source_id,
        *broker,
        [f"spBv1.0/{group}/#"],
        table=f"{source_id.replace('-', '_')}_tags",
        mapping=TAGS,
        payload_format="sparkplug_b",
        sparkplug_rebirth=rebirth,
    )
    source["mappings"].append(
        {
            "target_table": f"{source_id.replace('-', '_')}_samples",
            "sync_strategy": "realtime",
            "sync_frequency": "realtime",
            "mapping_config": SAMPLES,
        }
    )
    return source


def events(store: Store, source_id: str) -> list[Any]:
    with store.connect() as conn:
        return list(
            conn.execute(
                select(infolog).where(infolog.c.source_id == source_id).order_by(infolog.c.id)
            )
        )


def named(store: Store, source_id: str, event: str) -> list[Any]:
    return [e for e in events(store, source_id) if e.event == event]


def tags(store: Store, table: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["device_id"], r["metric"]): r for r in rows(store, table)}


def test_an_edge_node_session_lands_with_aliases_stale_marks_and_rebirths(
    store: Store,
    service: RealtimeService,
    broker: tuple[str, int],
    publisher: Publisher,
    listener: CommandListener,
    group: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sparkplug, "REBIRTH_EVERY_S", 0.0)  # every reason asks again
    sid = "spb-press"
    register(store, sparkplug_source(sid, broker, group, rebirth=True))
    started(service, sid)
    node, device = f"spBv1.0/{group}/{{}}/{EDGE}", f"spBv1.0/{group}/{{}}/{EDGE}/{DEVICE}"

    # Data by alias before any birth: refused, and a rebirth is asked for.
    publisher.publish(node.format("NDATA"), payload(9, Metric(alias=1, float_value=20.0)))
    entries = wait_until(
        lambda: (q := quarantined(store, sid)) and len(q) == 2 and q,
        what="the unresolved metric quarantined (once per target table)",
    )
    for entry in entries:
        assert entry["record"]["metric"]["alias"] == "1"
        assert "no NBIRTH of " in entry["reasons"][0]
        assert "a rebirth was asked for" in entry["reasons"][0]
    wait_until(
        lambda: [c for c in listener.commands() if c[1] == [("Node Control/Rebirth", True)]],
        what="the rebirth command",
    )
    assert listener.commands()[0][0] == f"spBv1.0/{group}/NCMD/{EDGE}"

    t0 = now_ms()  # one millisecond apart: the samples table is keyed by ts
    historical_ms = t0 - 3_600_000
    publisher.publish_many(
        [
            (
                node.format("NBIRTH"),
                payload(
                    0,
                    Metric(name="bdSeq", datatype=4, long_value=0),
                    Metric(name="Temperature", alias=1, datatype=9, float_value=21.5),
                    Metric(name="Running", alias=2, datatype=11, boolean_value=True),
                    Metric(name="Count", alias=3, datatype=3, int_value=2**32 - 5),
                    ts=t0,
                ),
            ),
            (
                device.format("DBIRTH"),
                payload(
                    1,
                    Metric(name="Force", alias=10, datatype=10, double_value=0.0),
                    Metric(name="Strokes", alias=11, datatype=7, long_value=1000),
                    Metric(name="Mode", alias=12, datatype=12, string_value="auto"),
                    ts=t0 + 1,
                ),
            ),
            (node.format("NDATA"), payload(2, Metric(alias=1, float_value=22.5), ts=t0 + 2)),
            (
                device.format("DDATA"),
                payload(
                    3,
                    Metric(alias=10, double_value=120.5),
                    Metric(alias=11, long_value=1001),
                    Metric(
                        alias=10, double_value=99.0, is_historical=True, timestamp=historical_ms
                    ),
                    ts=t0 + 3,
                ),
            ),
            # seq 4 and 5 never arrive.
            (device.format("DDATA"), payload(6, Metric(alias=10, double_value=121.0), ts=t0 + 6)),
            (device.format("DDEATH"), payload(7, ts=t0 + 7)),
            (node.format("NDEATH"), will(0)),
        ]
    )

    def all_stale() -> dict[tuple[str, str], dict[str, Any]] | None:
        got = tags(store, f"{sid.replace('-', '_')}_tags")
        return got if len(got) == 6 and all(r["stale"] for r in got.values()) else None

    stale = wait_until(all_stale, what="every metric stale after the deaths")
    assert {k: (r["value"], r["datatype"]) for k, r in stale.items()} == {
        ("", "Temperature"): (22.5, "Float"),
        ("", "Running"): (True, "Boolean"),
        ("", "Count"): (-5, "Int32"),
        (DEVICE, "Force"): (121.0, "Double"),  # the last live sample, not the historical one
        (DEVICE, "Strokes"): (1001, "UInt32"),
        (DEVICE, "Mode"): ("auto", "String"),
    }
    samples = rows(store, f"{sid.replace('-', '_')}_samples")
    (old,) = [r for r in samples if r["is_historical"]]
    assert (old["metric"], old["value"]) == ("Force", 99.0)
    assert old["ts"] == datetime.fromtimestamp(historical_ms / 1000, UTC)
    at = datetime.fromtimestamp((t0 + 3) / 1000, UTC)
    by_alias = {
        r["metric"]: r["value"] for r in samples if r["ts"] == at and not r["is_historical"]
    }
    assert by_alias == {"Force": 120.5, "Strokes": 1001}  # DDATA sent aliases only
    ddeath = datetime.fromtimestamp((t0 + 7) / 1000, UTC)
    assert {r["metric"] for r in samples if r["ts"] == ddeath and r["stale"]} == {
        "Force",
        "Strokes",
        "Mode",
    }

    gaps = named(store, sid, GAP_EVENT)
    assert len(gaps) == 1 and "seq 6 arrived where 4 was due, 2 message(s) lost" in gaps[0].message
    deaths = [e.message for e in named(store, sid, "sparkplug.death")]
    assert f"device {group}/{EDGE}/{DEVICE} is offline (DDEATH): 3 metric(s) marked stale" in deaths
    assert f"edge node {group}/{EDGE} is offline (NDEATH): 6 metric(s) marked stale" in deaths
    assert all(e.level == "warning" for e in named(store, sid, "sparkplug.death"))
    wait_until(
        lambda: len([c for c in listener.commands() if c[1]]) >= 2,
        what="a second rebirth command, for the sequence gap",
    )
    assert len(named(store, sid, "sparkplug.rebirth")) >= 2

    # The node is back: a new birth clears stale; Count, no longer declared, stays stale.
    publisher.publish_many(
        [
            (
                node.format("NBIRTH"),
                payload(
                    0,
                    Metric(name="bdSeq", datatype=4, long_value=1),
                    Metric(name="Temperature", alias=1, datatype=9, float_value=23.0),
                    Metric(name="Running", alias=2, datatype=11, boolean_value=False),
                ),
            ),
            (
                device.format("DBIRTH"),
                payload(
                    1,
                    Metric(name="Force", alias=10, datatype=10, double_value=0.5),
                    Metric(name="Strokes", alias=11, datatype=7, long_value=1001),
                    Metric(name="Mode", alias=12, datatype=12, string_value="setup"),
                ),
            ),
            # The will of the earlier connection, delivered late: ignored.
            (node.format("NDEATH"), will(0)),
        ]
    )
    wait_until(lambda: named(store, sid, "sparkplug.death_ignored"), what="the old will ignored")

    def reborn() -> dict[tuple[str, str], dict[str, Any]] | None:
        got = tags(store, f"{sid.replace('-', '_')}_tags")
        return got if got[(DEVICE, "Mode")]["value"] == "setup" else None

    back = wait_until(reborn, what="the rebirth written")
    assert {k: (r["value"], r["stale"]) for k, r in back.items()} == {
        ("", "Temperature"): (23.0, False),
        ("", "Running"): (False, False),
        ("", "Count"): (-5, True),
        (DEVICE, "Force"): (0.5, False),
        (DEVICE, "Strokes"): (1001, False),
        (DEVICE, "Mode"): ("setup", False),
    }

    service.stop()  # closes the history window: the gap is listed in it
    with store.connect() as conn:
        details = conn.execute(
            select(data_source_sync_history.c.details).where(
                data_source_sync_history.c.source_id == sid
            )
        ).scalars()
        listed = [g for d in details for g in (d or {}).get("gaps", [])]
    assert len(listed) == 1 and "2 message(s) lost" in listed[0]["reason"]


def test_without_sparkplug_rebirth_nothing_is_published(
    store: Store,
    service: RealtimeService,
    broker: tuple[str, int],
    publisher: Publisher,
    listener: CommandListener,
    group: str,
) -> None:
    sid = "spb-quiet"
    register(store, sparkplug_source(sid, broker, group, rebirth=False))
    started(service, sid)
    node = f"spBv1.0/{group}/{{}}/{EDGE}"
    publisher.publish_many(
        [
            (node.format("NDATA"), payload(4, Metric(alias=1, float_value=20.0))),
            (
                node.format("NBIRTH"),
                payload(
                    0,
                    Metric(name="bdSeq", datatype=4, long_value=0),
                    Metric(name="Temperature", alias=1, datatype=9, float_value=21.5),
                ),
            ),
            (node.format("NDATA"), payload(3, Metric(alias=1, float_value=22.0))),  # 1, 2 lost
        ]
    )
    wait_until(lambda: named(store, sid, GAP_EVENT), what="the sequence gap recorded")
    wait_until(lambda: quarantined(store, sid), what="the unresolved metric quarantined")
    reasons = quarantined(store, sid)[0]["reasons"][0]
    assert "rebirth requests are off (sparkplug_rebirth: false)" in reasons
    (gap,) = named(store, sid, GAP_EVENT)
    assert "rebirth requests are off" in gap.message
    (unknown,) = named(store, sid, "sparkplug.unknown_alias")
    assert unknown.level == "warning" and "rebirth requests are off" in unknown.message
    assert named(store, sid, "sparkplug.rebirth") == []

    # A marker published after those messages were handled reaches the listener after
    # any command factorysync would have sent: none came before it.
    publisher.publish(f"spBv1.0/{group}/NCMD/marker", b"marker", qos=0)
    wait_until(lambda: listener.commands(), what="the marker")
    assert listener.commands() == [(f"spBv1.0/{group}/NCMD/marker", [])]
    got = tags(store, f"{sid.replace('-', '_')}_tags")
    assert got[("", "Temperature")]["value"] == 22.0
