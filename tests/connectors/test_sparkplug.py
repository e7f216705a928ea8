"""Sparkplug B without a broker: every datatype read from its protobuf encoding, the
session's aliases, sequence numbers, births, deaths and rebirth requests, and the config
checks of ``payload_format: sparkplug_b``."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from factorysync.connectors import sparkplug, sparkplug_payload
from factorysync.connectors.mqtt import MqttConnector
from factorysync.connectors.mqtt_wire import MqttConfig
from factorysync.connectors.sparkplug import SparkplugSession

pb = pytest.importorskip("factorysync.connectors.sparkplug_b_pb2")
Metric = pb.Payload.Metric
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms


def read(datatype: int, **value: Any) -> Any:
    return sparkplug_payload.value_of(Metric(datatype=datatype, **value), datatype)


def packed(fmt: str, *values: Any) -> bytes:
    return struct.pack("<" + fmt * len(values), *values)


DATASET = pb.Payload.DataSet(
    num_of_columns=2,
    columns=["shift", "good"],
    types=[12, 3],
    rows=[
        pb.Payload.DataSet.Row(
            elements=[
                pb.Payload.DataSet.DataSetValue(string_value="A"),
                pb.Payload.DataSet.DataSetValue(int_value=120),
            ]
        ),
        pb.Payload.DataSet.Row(
            elements=[
                pb.Payload.DataSet.DataSetValue(string_value="B"),
                pb.Payload.DataSet.DataSetValue(int_value=2**32 - 1),
            ]
        ),
    ],
)
TEMPLATE = pb.Payload.Template(
    template_ref="Motor",
    version="1.0",
    parameters=[pb.Payload.Template.Parameter(name="rated_kw", type=10, double_value=7.5)],
    metrics=[
        Metric(name="speed", datatype=9, float_value=1450.5),
        Metric(name="fault", datatype=11, is_null=True),
    ],
)

CASES: list[tuple[str, int, dict[str, Any], Any]] = [
    ("Int8 (one byte's two's complement)", 1, {"int_value": 233}, -23),
    ("Int8 (sign-extended to 32 bits)", 1, {"int_value": 2**32 - 23}, -23),
    ("Int16", 2, {"int_value": 2**16 - 1}, -1),
    ("Int32", 3, {"int_value": 2**31 - 1}, 2**31 - 1),
    ("Int32 negative", 3, {"int_value": 2**32 - 5}, -5),
    ("Int64", 4, {"long_value": 2**64 - 2}, -2),
    ("UInt8", 5, {"int_value": 255}, 255),
    ("UInt16", 6, {"int_value": 65535}, 65535),
    ("UInt32", 7, {"long_value": 2**32 - 1}, 2**32 - 1),
    ("UInt32 in int_value", 7, {"int_value": 2**32 - 1}, 2**32 - 1),
    ("UInt64", 8, {"long_value": 2**64 - 1}, 2**64 - 1),
    ("Float (shortest decimal)", 9, {"float_value": 21.3}, 21.3),
    ("Double", 10, {"double_value": 0.1}, 0.1),
    ("Boolean", 11, {"boolean_value": True}, True),
    ("String", 12, {"string_value": "läuft"}, "läuft"),
    ("DateTime", 13, {"long_value": T0 + 123}, "2026-01-01T00:00:00.123+00:00"),
    ("Text", 14, {"string_value": "die change at 06:00"}, "die change at 06:00"),
    (
        "UUID",
        15,
        {"string_value": "9b2b7c1e-6f1a-4a57-9d61-1f0c9c3b2a10"},
        "9b2b7c1e-6f1a-4a57-9d61-1f0c9c3b2a10",
    ),
    (
        "DataSet",
        16,
        {"dataset_value": DATASET},
        {
            "columns": ["shift", "good"],
            "types": ["String", "Int32"],
            "rows": [["A", 120], ["B", -1]],
        },
    ),
    ("Bytes", 17, {"bytes_value": b"\x00\x01\xff"}, "AAH/"),
    ("File", 18, {"bytes_value": b"G1 X10\n"}, "RzEgWDEwCg=="),
    (
        "Template",
        19,
        {"template_value": TEMPLATE},
        {
            "template_ref": "Motor",
            "version": "1.0",
            "is_definition": False,
            "parameters": {"rated_kw": 7.5},
            "metrics": {"speed": 1450.5, "fault": None},
        },
    ),
    ("Int8Array (spec example)", 22, {"bytes_value": b"\xe9\x7b"}, [-23, 123]),
    ("Int16Array", 23, {"bytes_value": packed("h", -30000, 5)}, [-30000, 5]),
    ("Int32Array", 24, {"bytes_value": packed("i", -1, 2**31 - 1)}, [-1, 2**31 - 1]),
    ("Int64Array", 25, {"bytes_value": packed("q", -(2**63), 7)}, [-(2**63), 7]),
    ("UInt8Array", 26, {"bytes_value": bytes([0, 255])}, [0, 255]),
    ("UInt16Array", 27, {"bytes_value": packed("H", 65535)}, [65535]),
    ("UInt32Array", 28, {"bytes_value": packed("I", 2**32 - 1, 0)}, [2**32 - 1, 0]),
    ("UInt64Array", 29, {"bytes_value": packed("Q", 2**64 - 1)}, [2**64 - 1]),
    ("FloatArray", 30, {"bytes_value": packed("f", 1.1, -2.5)}, [1.1, -2.5]),
    ("DoubleArray", 31, {"bytes_value": packed("d", 0.1, 1e300)}, [0.1, 1e300]),
    (
        "BooleanArray (spec example)",
        32,
        {"bytes_value": bytes([0x0C, 0, 0, 0, 0x34, 0xD0])},
        [False, False, True, True, False, True, False, False, True, True, False, True],
    ),
    ("StringArray", 33, {"bytes_value": b"ABC\x00hello\x00"}, ["ABC", "hello"]),
    (
        "DateTimeArray",
        34,
        {"bytes_value": packed("q", T0, T0 + 1500)},
        ["2026-01-01T00:00:00.000+00:00", "2026-01-01T00:00:01.500+00:00"],
    ),
    ("Unknown: as sent", 0, {"double_value": 4.5}, 4.5),
    ("no value", 10, {}, None),
]


@pytest.mark.parametrize(
    ("datatype", "value", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_every_datatype_is_read_as_its_type(
    datatype: int, value: dict[str, Any], expected: Any
) -> None:
    got = read(datatype, **value)
    assert got == expected and type(got) is type(expected)
    orjson.dumps(got)  # fit for a JSON column and a quarantine entry as it is


def test_every_metric_datatype_has_a_case() -> None:
    named = {sparkplug_payload.datatype_name(c[1]) for c in CASES}
    metric_types = set(sparkplug_payload.DATATYPES) - {"PropertySet", "PropertySetList"}
    assert metric_types <= named
    assert list(sparkplug_payload.DATATYPES) == [pb.DataType.Name(n) for n in range(35)]


@pytest.mark.parametrize(
    ("datatype", "value", "reason"),
    [
        (3, {"string_value": "12"}, "cannot be read as Int32"),
        (23, {"bytes_value": b"\x01\x02\x03"}, "no whole number"),
        (32, {"bytes_value": b"\x10\x00\x00\x00\xff"}, "need 2 bytes"),
        (16, {"string_value": "rows"}, "cannot be read as DataSet"),
    ],
)
def test_a_value_that_does_not_fit_its_datatype_says_why(
    datatype: int, value: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        read(datatype, **value)


def test_the_rebirth_command_is_a_boolean_node_control_metric() -> None:
    payload = pb.Payload.FromString(sparkplug_payload.rebirth_command(T0))
    (metric,) = payload.metrics
    assert (metric.name, metric.datatype, metric.boolean_value) == (
        "Node Control/Rebirth",
        11,
        True,
    )
    assert payload.timestamp == T0 and not payload.HasField("seq")


# -- the session ------------------------------------------------------------------------------
class FakeSink:
    def __init__(self) -> None:
        self.refused: list[tuple[Any, str]] = []
        self.events: list[tuple[str, str, str]] = []
        self.gaps: list[tuple[datetime, datetime, str]] = []

    def put(
        self, records: list[Any], *, raw: Any = None, error: str | None = None, ack: Any = None
    ) -> None:
        assert records == [] and error is not None
        orjson.dumps(raw)  # quarantine keeps JSON
        self.refused.append((raw, error))

    def status(self, error: str | None, *, subscribed: str | None = None) -> None:
        pass

    def drain(self) -> None:
        pass

    def event(self, event: str, message: str, *, level: str = "info", details: Any = None) -> None:
        self.events.append((event, level, message))

    def gap(self, start: datetime, end: datetime, reason: str) -> None:
        self.gaps.append((start, end, reason))

    def names(self) -> list[str]:
        return [e for e, _, _ in self.events]


def payload(seq: int | None, *metrics: Any, ts: int | None = T0) -> bytes:
    p = pb.Payload(metrics=metrics)
    if seq is not None:
        p.seq = seq
    if ts is not None:
        p.timestamp = ts
    return bytes(p.SerializeToString())


def node_birth(seq: int = 0, bd_seq: int = 0, temperature: float = 21.5) -> bytes:
    return payload(
        seq,
        Metric(name="bdSeq", datatype=4, long_value=bd_seq),
        Metric(name="Temperature", alias=1, datatype=9, float_value=temperature),
        Metric(name="Running", alias=2, datatype=11, boolean_value=True),
    )


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def asked() -> list[tuple[str, bytes]]:
    return []


@pytest.fixture
def session(
    sink: FakeSink, asked: list[tuple[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> SparkplugSession:
    monkeypatch.setattr(sparkplug, "REBIRTH_EVERY_S", 0.0)

    def publish(topic: str, data: bytes) -> bool:
        asked.append((topic, data))
        return True

    return SparkplugSession("press-line", sink, publish)


def by_metric(rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {(r["device_id"], r["metric"]): r for r in rows}


def test_aliases_are_learned_from_births_and_resolved_in_data(session: SparkplugSession) -> None:
    rows = session.decode("spBv1.0/G1/NBIRTH/E1", node_birth()).records
    assert {r["metric"] for r in rows} == {"Temperature", "Running"}  # bdSeq is bookkeeping
    data = payload(1, Metric(alias=1, float_value=22.25), Metric(alias=2, boolean_value=False))
    got = by_metric(session.decode("spBv1.0/G1/NDATA/E1", data).records)
    assert got[(None, "Temperature")] | {"ts": None} == {
        "group_id": "G1",
        "edge_node_id": "E1",
        "device_id": None,
        "metric": "Temperature",
        "value": 22.25,
        "datatype": "Float",  # from the birth: DATA metrics name no datatype
        "ts": None,
        "is_historical": False,
        "stale": False,
    }
    assert got[(None, "Temperature")]["ts"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert got[(None, "Running")]["value"] is False


def test_an_alias_without_a_birth_is_quarantined_and_a_rebirth_asked_for(
    session: SparkplugSession, sink: FakeSink, asked: list[tuple[str, bytes]]
) -> None:
    data = payload(
        7, Metric(alias=1, float_value=1.0), Metric(name="Named", datatype=3, int_value=4)
    )
    decoded = session.decode("spBv1.0/G1/NDATA/E1", data)
    assert [r["metric"] for r in decoded.records] == ["Named"]  # named metrics still land
    ((raw, reason),) = sink.refused
    assert raw["topic"] == "spBv1.0/G1/NDATA/E1" and raw["metric"]["alias"] == "1"
    assert "alias 1" in reason and "no NBIRTH of G1/E1 seen" in reason
    assert "rebirth was asked for" in reason
    assert [t for t, _ in asked] == ["spBv1.0/G1/NCMD/E1"]
    assert {"sparkplug.unknown_alias", "sparkplug.rebirth"} <= set(sink.names())


def test_without_rebirth_requests_the_reason_is_only_recorded(sink: FakeSink) -> None:
    session = SparkplugSession("press-line", sink, None)
    session.decode("spBv1.0/G1/NDATA/E1", payload(3, Metric(alias=9, double_value=1.0)))
    session.decode("spBv1.0/G1/NBIRTH/E1", node_birth())
    session.decode("spBv1.0/G1/NDATA/E1", payload(5, Metric(alias=1, float_value=1.0)))
    assert "rebirth requests are off" in sink.refused[0][1]
    ((_, _, reason),) = sink.gaps
    assert "seq 5 arrived where 1 was due, 4 message(s) lost" in reason
    assert "rebirth requests are off (sparkplug_rebirth: false)" in reason
    assert "sparkplug.rebirth" not in sink.names()


def test_seq_wraps_after_255_and_a_gap_is_recorded(
    session: SparkplugSession, sink: FakeSink, asked: list[tuple[str, bytes]]
) -> None:
    session.decode("spBv1.0/G1/NBIRTH/E1", node_birth())
    for seq in [*range(1, 256), 0, 1]:
        session.decode("spBv1.0/G1/NDATA/E1", payload(seq, Metric(alias=1, float_value=1.0)))
    session.decode("spBv1.0/G1/NDATA/E1", payload(1, Metric(alias=1, float_value=1.0)))  # repeat
    assert sink.gaps == [] and asked == []
    later = T0 + 5000
    session.decode("spBv1.0/G1/NDATA/E1", payload(4, Metric(alias=1, float_value=1.0), ts=later))
    ((start, end, reason),) = sink.gaps
    assert (start, end) == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC),
    )
    assert "seq 4 arrived where 2 was due, 2 message(s) lost; a rebirth was asked for" in reason
    assert [t for t, _ in asked] == ["spBv1.0/G1/NCMD/E1"]


def test_deaths_mark_known_metrics_stale_with_their_last_values(
    session: SparkplugSession, sink: FakeSink
) -> None:
    session.decode("spBv1.0/G1/NBIRTH/E1", node_birth(bd_seq=4))
    device_birth = payload(1, Metric(name="Force", alias=10, datatype=10, double_value=0.0))
    session.decode("spBv1.0/G1/DBIRTH/E1/P1", device_birth)
    session.decode("spBv1.0/G1/DDATA/E1/P1", payload(2, Metric(alias=10, double_value=118.5)))
    historical = Metric(alias=10, double_value=99.0, is_historical=True, timestamp=T0 - 60_000)
    rows = session.decode("spBv1.0/G1/DDATA/E1/P1", payload(3, historical)).records
    assert rows[0]["is_historical"] and rows[0]["ts"] == datetime(2025, 12, 31, 23, 59, tzinfo=UTC)

    stale = session.decode("spBv1.0/G1/DDEATH/E1/P1", payload(4, ts=T0 + 1000)).records
    assert [(r["metric"], r["value"], r["stale"]) for r in stale] == [("Force", 118.5, True)]
    assert stale[0]["ts"] == datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)

    # The will of an earlier connection (another bdSeq) changes nothing.
    old_will = payload(None, Metric(name="bdSeq", datatype=4, long_value=3), ts=None)
    assert session.decode("spBv1.0/G1/NDEATH/E1", old_will).records == []
    assert "sparkplug.death_ignored" in sink.names()

    will = payload(None, Metric(name="bdSeq", datatype=4, long_value=4), ts=None)
    got = by_metric(session.decode("spBv1.0/G1/NDEATH/E1", will).records)
    assert set(got) == {(None, "Temperature"), (None, "Running"), ("P1", "Force")}
    assert all(r["stale"] for r in got.values())
    assert got[(None, "Temperature")]["value"] == 21.5
    deaths = [m for e, level, m in sink.events if e == "sparkplug.death"]
    assert deaths == [
        "device G1/E1/P1 is offline (DDEATH): 1 metric(s) marked stale",
        "edge node G1/E1 is offline (NDEATH): 3 metric(s) marked stale",
    ]
    # After a death, aliases wait for the next birth.
    session.decode("spBv1.0/G1/NDATA/E1", payload(5, Metric(alias=1, float_value=1.0)))
    assert "no NBIRTH of G1/E1 seen" in sink.refused[-1][1]
    reborn = session.decode("spBv1.0/G1/NBIRTH/E1", node_birth(bd_seq=5)).records
    assert not any(r["stale"] for r in reborn)


def test_a_reconnect_rebuilds_the_state_and_asks_for_rebirths(
    session: SparkplugSession, sink: FakeSink, asked: list[tuple[str, bytes]]
) -> None:
    session.connected()  # the first connect: nothing known, nothing asked
    assert asked == [] and sink.events == []
    session.decode("spBv1.0/G1/NBIRTH/E1", node_birth())
    session.decode("spBv1.0/G2/NBIRTH/E7", node_birth())
    session.connected()
    assert sorted(t for t, _ in asked) == ["spBv1.0/G1/NCMD/E1", "spBv1.0/G2/NCMD/E7"]
    assert "asked 2 for a rebirth" in sink.events[-1][2]
    session.decode("spBv1.0/G1/NDATA/E1", payload(1, Metric(alias=1, float_value=1.0)))
    assert "no NBIRTH of G1/E1 seen" in sink.refused[-1][1]


def test_commands_state_and_bad_messages(session: SparkplugSession) -> None:
    assert session.decode("spBv1.0/STATE/scada-1", b'{"online": true}').records == []
    assert session.decode("spBv1.0/G1/STATE/scada-1", b"ONLINE").error is None
    assert session.decode("spBv1.0/G1/NCMD/E1", b"\x00").error is None
    for topic, payload_bytes, reason in [
        ("plant/G1/NDATA/E1", b"", "not a Sparkplug B topic"),
        ("spBv1.0/G1/NDATA", b"", "a NDATA topic is spBv1.0/<group_id>/NDATA/<edge_node_id>"),
        ("spBv1.0/G1/DDATA/E1", b"", "/<device_id>"),
        ("spBv1.0/G1/XDATA/E1", b"", "no Sparkplug B message type"),
        ("spBv1.0/G1/NDATA/E1", b"\xff\xff\x00", "not a Sparkplug B protobuf payload"),
    ]:
        decoded = session.decode(topic, payload_bytes)
        assert decoded.records == [] and reason in (decoded.error or ""), decoded
        assert decoded.raw["topic"] == topic
        orjson.dumps(decoded.raw)


# -- configuration ---------------------------------------------------------------------------
def test_sparkplug_config_problems_are_reported_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        MqttConfig.model_validate(
            {
                "host": "broker",
                "topics": ["spBv1.0/plant1/#", "plant/+/status"],
                "payload_format": "sparkplug_b",
                "topic_template": "plant/{line}/status",
                "shared_group": "g",
            }
        )
    text = str(info.value)
    assert "must be under spBv1.0/" in text and "plant/+/status" in text
    assert "topic_template" in text and "shared_group" in text
    with pytest.raises(ValidationError, match="only for payload_format sparkplug_b"):
        MqttConfig.model_validate({"host": "b", "topics": ["a/#"], "sparkplug_rebirth": True})
    cfg = MqttConfig.model_validate(
        {
            "host": "b",
            "topics": "spBv1.0/#",
            "payload_format": "sparkplug_b",
            "sparkplug_rebirth": True,
        }
    )
    assert cfg.sparkplug_rebirth
    for name in ("payload_format", "sparkplug_rebirth"):
        assert "sparkplug" in (MqttConfig.model_fields[name].description or "").lower()


def test_the_edge_node_template_is_a_valid_source() -> None:
    from factorysync.config import MappingConfig

    (template,) = [
        t for t in MqttConnector.templates if t["template_name"] == "sparkplug_b_edge_node"
    ]
    MqttConfig.model_validate(template["connection_config"])
    MappingConfig.model_validate(template["mapping_config"])


def test_a_birth_metric_without_a_name_is_refused(
    session: SparkplugSession, sink: FakeSink, asked: list[tuple[str, bytes]]
) -> None:
    birth = payload(
        0,
        Metric(alias=5, datatype=10, double_value=1.0),
        Metric(name="Pressure", alias=6, datatype=10, double_value=2.0),
    )
    rows = session.decode("spBv1.0/G1/NBIRTH/E1", birth).records
    assert [r["metric"] for r in rows] == ["Pressure"]
    assert "a NBIRTH must name every metric" in sink.refused[0][1]
    assert asked == []  # another birth would bring the same


def test_the_session_of_a_source_publishes_rebirths_only_when_allowed() -> None:
    class Client:
        def __init__(self) -> None:
            self.sent: list[tuple[str, int]] = []

        def publish(self, topic: str, payload: bytes, qos: int) -> Any:
            self.sent.append((topic, qos))
            return type("Info", (), {"rc": 0})()

    config = {"host": "b", "topics": ["spBv1.0/G1/#"], "payload_format": "sparkplug_b"}
    client = Client()
    quiet = sparkplug.session_for(MqttConfig.model_validate(config), "s", None, client)
    assert quiet is not None and quiet.publish is None
    allowed = MqttConfig.model_validate({**config, "sparkplug_rebirth": True})
    session = sparkplug.session_for(allowed, "s", None, client)
    assert session is not None
    session.decode("spBv1.0/G1/NDATA/E1", payload(1, Metric(alias=1, double_value=1.0)))
    assert client.sent == [("spBv1.0/G1/NCMD/E1", 0)]
    plain = MqttConfig.model_validate({"host": "b", "topics": ["a/#"]})
    assert sparkplug.session_for(plain, "s", None, client) is None
    described = {f.name: f.kind for f in session.describe([])}
    assert described["ts"] == "datetime" and described["stale"] == "boolean"
