"""The receive path of MQTT subscriptions (``LeanClient``) against raw MQTT bytes: the
same messages as paho's own path, packets split across reads, the cases left to paho
(QoS 2, MQTT 5 properties), and acknowledgements of many messages in one write."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("paho.mqtt.client")

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from factorysync.connectors.mqtt_client import Puback, lean_client_class


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(
    topic: str, payload: bytes, *, qos: int = 1, mid: int = 1, v5: bool = True, props: bytes = b""
) -> bytes:
    raw = topic.encode()
    body = len(raw).to_bytes(2, "big") + raw
    if qos:
        body += mid.to_bytes(2, "big")
    if v5:
        body += varint(len(props)) + props
    body += payload
    return bytes([0x30 | (qos << 1)]) + varint(len(body)) + body


class Wire:
    """A client whose socket is one end of a socket pair; the test writes the other."""

    def __init__(self, client_class: type, *, v5: bool = True, manual_ack: bool = True) -> None:
        self.client = client_class(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id="wire-test",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            manual_ack=manual_ack,
        )
        self.ours, self.broker = socket.socketpair()
        self.ours.setblocking(False)
        self.broker.settimeout(5)
        self.client._sock = self.ours
        self.messages: list[Any] = []
        self.chunks = 0
        self.client.on_message = lambda _c, _u, m: self.messages.append(m)
        if hasattr(self.client, "on_chunk"):
            self.client.on_chunk = self._chunk

    def _chunk(self) -> None:
        self.chunks += 1

    def feed(self, data: bytes) -> Any:
        """Send ``data`` as the broker and let the client read all of it."""
        self.broker.sendall(data)
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        for _ in range(100):  # paho reads one packet per call
            rc = self.client.loop_read()
            if rc or not self._readable():
                break
        return rc

    def _readable(self) -> bool:
        import select

        return bool(select.select([self.ours], [], [], 0)[0])

    def seen(self) -> list[tuple[str, bytes, int, int]]:
        return [(m.topic, bytes(m.payload), m.qos, m.mid) for m in self.messages]

    def close(self) -> None:
        self.ours.close()
        self.broker.close()


@pytest.fixture
def wire() -> Iterator[Wire]:
    w = Wire(lean_client_class())
    yield w
    w.close()


STREAM = [
    ("plant/l1/M-1/status", b'{"speed": 7}', 1, 1),
    ("plant/l1/M-2/status", b"", 1, 2),
    ("plant/l2/M-3/status", b"\xff\xfe\x00not utf-8", 0, 0),
    ("plant/l2/M-4/status", b"x" * 20_000, 1, 65535),  # a 3-byte remaining length
    ("plant/l2/M-5/status", "é ünïcode".encode(), 1, 7),
]


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_the_same_messages_as_paho_reading_alone(v5: bool) -> None:
    data = b"".join(publish(t, p, qos=q, mid=m, v5=v5) for t, p, q, m in STREAM)
    got = {}
    for name, cls in [("paho", mqtt.Client), ("lean", lean_client_class())]:
        w = Wire(cls, v5=v5)
        try:
            assert w.feed(data) == MQTTErrorCode.MQTT_ERR_SUCCESS
            got[name] = w.seen()
        finally:
            w.close()
    assert got["lean"] == got["paho"] == STREAM


def test_packets_split_across_reads_are_delivered_whole_and_in_order(wire: Wire) -> None:
    data = b"".join(publish(t, p, qos=q, mid=m) for t, p, q, m in STREAM)
    cut = len(publish(*STREAM[0][:2])) + 3  # inside the second packet's header
    wire.feed(data[:cut])
    assert wire.seen() == STREAM[:1]
    assert wire.chunks == 1
    wire.feed(data[cut:-10])
    wire.feed(data[-10:])
    assert wire.seen() == STREAM
    assert wire.chunks >= 3


def test_qos2_and_mqtt5_properties_are_left_to_paho(wire: Wire) -> None:
    expiry = b"\x02" + (60).to_bytes(4, "big")  # Message Expiry Interval
    wire.feed(publish("a/b", b"with properties", mid=3, props=expiry))
    assert wire.messages[0].properties.MessageExpiryInterval == 60
    # QoS 2: paho answers the PUBLISH with a PUBREC, and delivers it at the PUBREL.
    wire.feed(publish("a/c", b"exactly once", qos=2, mid=4))
    assert wire.broker.recv(64) == b"\x50\x02\x00\x04"
    assert len(wire.messages) == 1
    wire.feed(b"\x62\x02\x00\x04")  # PUBREL
    assert wire.seen() == [("a/b", b"with properties", 1, 3), ("a/c", b"exactly once", 2, 4)]


def test_acknowledgements_of_many_messages_go_out_in_one_write(wire: Wire) -> None:
    sent: list[bytes] = []
    original = wire.client._sock_send

    def send(buf: bytes) -> int:
        sent.append(bytes(buf))
        return int(original(buf))

    wire.client._sock_send = send
    acks = [Puback(mid, wire.client.ack_many) for mid in (1, 2, 65535)]
    wire.client.ack_many(acks)
    assert sent == [b"\x40\x02\x00\x01\x40\x02\x00\x02\x40\x02\xff\xff"]
    acks[0]()  # one alone
    assert sent[-1] == b"\x40\x02\x00\x01"
    assert wire.broker.recv(64) == sent[0] + sent[1]


def test_without_manual_ack_each_qos1_message_is_acknowledged_on_receipt() -> None:
    w = Wire(lean_client_class(), manual_ack=False)
    try:
        w.feed(publish("a/b", b"1", mid=9) + publish("a/b", b"2", qos=0))
        assert w.broker.recv(64) == b"\x40\x02\x00\x09"
        assert [m.payload for m in w.messages] == [b"1", b"2"]
    finally:
        w.close()


def test_a_closed_connection_is_reported_lost(wire: Wire) -> None:
    wire.feed(publish("a/b", b"1")[:5])
    wire.broker.close()
    assert wire.client.loop_read() == MQTTErrorCode.MQTT_ERR_CONN_LOST
    assert wire.messages == []


def test_a_length_over_four_bytes_is_a_protocol_error(wire: Wire) -> None:
    assert wire.feed(b"\x32\xff\xff\xff\xff\x01") == MQTTErrorCode.MQTT_ERR_PROTOCOL
