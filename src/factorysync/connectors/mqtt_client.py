"""The paho client of MQTT sources, with a receive path for high message rates.

paho reads one packet per ``select`` with three socket reads, decodes the MQTT 5
properties of every PUBLISH, builds a message object with a lock of its own and matches
its topic against per-topic callbacks. :class:`LeanClient` (built on first use, as paho
is imported then) reads the socket in large chunks and handles every whole packet in a
chunk before the next ``select``; a QoS 0/1 PUBLISH without properties goes straight to
``on_message`` as a light :class:`Message`, and ``on_chunk`` is called once the chunk's
packets are handled. ``ack_many`` sends the acknowledgements of many QoS 1 messages in
one write. Everything else (connect, subscribe, keep-alive, reconnects, TLS, QoS 2, a
PUBLISH with properties) is paho's own.
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Callable
from typing import Any

READ_BYTES = 256 * 1024  # read from the socket at once
_PUBACK = struct.Struct("!BBH")
_PUBLISH = 0x30
_PUBACK_CMD = 0x40


class Message:
    """A received PUBLISH, with the attributes of paho's ``MQTTMessage`` that are read."""

    __slots__ = ("dup", "mid", "payload", "properties", "qos", "retain", "timestamp", "topic")

    def __init__(
        self, topic: str, payload: bytes, qos: int, mid: int, retain: bool, dup: bool
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.mid = mid
        self.retain = retain
        self.dup = dup
        self.properties = None
        self.timestamp = time.monotonic()


class Puback:
    """The acknowledgement of one QoS 1 message. ``together`` sends those of many
    messages of the same client at once (one write instead of one per message)."""

    __slots__ = ("mid", "together")

    def __init__(self, mid: int, together: Callable[[list[Puback]], None]) -> None:
        self.mid = mid
        self.together = together

    def __call__(self) -> None:
        self.together([self])


def _fresh_packet() -> dict[str, Any]:
    return {
        "command": 0,
        "have_remaining": 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": 0,
        "packet": bytearray(b""),
        "to_process": 0,
        "pos": 0,
    }


# The parts of paho's client the receive path builds on (paho-mqtt 2.x).
_PAHO_PARTS = ("_packet_handle", "_sock_recv", "_loop_rc_handle", "_packet_queue", "_easy_log")


@functools.cache
def lean_client_class() -> type:
    """paho's ``Client`` with the receive path described in the module docstring; paho's
    own ``Client`` with a paho release that lacks the parts it builds on."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import MQTTErrorCode
    from paho.mqtt.exception import MalformedPacket
    from paho.mqtt.matcher import MQTTMatcher

    matcher: Any = MQTTMatcher  # untyped
    if not all(hasattr(mqtt.Client, part) for part in _PAHO_PARTS) or not hasattr(
        matcher(), "_root"
    ):
        return mqtt.Client

    success = MQTTErrorCode.MQTT_ERR_SUCCESS
    protocol_error = MQTTErrorCode.MQTT_ERR_PROTOCOL
    conn_lost = MQTTErrorCode.MQTT_ERR_CONN_LOST

    base: Any = mqtt.Client  # its private parts are used here, untyped

    class LeanClient(base):  # type: ignore[misc]
        on_chunk: Callable[[], None] | None = None
        _rbuf: bytes = b""
        _rsock: Any = None

        def loop_read(self, max_packets: int = 1) -> Any:
            sock = self._sock
            if sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            if sock is not self._rsock:  # a new connection: nothing left of the old one
                self._rsock, self._rbuf = sock, b""
            try:
                data = self._sock_recv(READ_BYTES)
            except BlockingIOError:
                return success
            except OSError as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
                return self._loop_rc_handle(conn_lost)
            if not data:
                return self._loop_rc_handle(conn_lost)
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
            buf = self._rbuf + data if self._rbuf else data
            try:
                rc, used = self._handle_packets(buf, sock)
            finally:
                if self.on_chunk is not None:
                    self.on_chunk()
            if self._sock is sock:
                self._rbuf = buf[used:]
            return self._loop_rc_handle(rc) if rc else success

        def _handle_packets(self, buf: bytes, sock: Any) -> tuple[Any, int]:
            """Handle the whole packets in ``buf``; the error, and the bytes used."""
            pos, end = 0, len(buf)
            v5 = self._protocol == mqtt.MQTTv5
            while end - pos >= 2:
                command = buf[pos]
                length, mult, i = 0, 1, pos + 1
                while True:
                    if i >= end:
                        return success, pos  # the length is not all here yet
                    byte = buf[i]
                    i += 1
                    length += (byte & 127) * mult
                    mult *= 128
                    if not byte & 128:
                        break
                    if i - pos > 4:
                        return protocol_error, pos
                if i + length > end:
                    break
                packet = buf[i : i + length]
                pos = i + length
                rc = None
                if command & 0xF0 == _PUBLISH:
                    rc = self._publish(command, packet, v5)
                if rc is None:
                    rc = self._paho_handle(command, packet)
                if rc:
                    return rc, pos
                if self._sock is not sock:
                    break  # disconnected meanwhile
            return success, pos

        def _paho_handle(self, command: int, packet: bytes) -> Any:
            self._in_packet = _fresh_packet()
            self._in_packet.update(command=command, have_remaining=1, remaining_length=len(packet))
            self._in_packet["packet"] = bytearray(packet)
            try:
                return self._packet_handle()
            except MalformedPacket as exc:
                self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
                return protocol_error
            finally:
                self._in_packet = _fresh_packet()

        def _publish(self, command: int, packet: bytes, v5: bool) -> Any:
            """A QoS 0/1 PUBLISH without properties, handed to ``on_message``; None
            for paho to handle (QoS 2, properties, per-topic callbacks, odd topics)."""
            qos = (command & 0x06) >> 1
            if qos == 2 or self._on_message_filtered._root._children:
                return None
            try:
                start = 2 + ((packet[0] << 8) | packet[1])
                topic = packet[2:start].decode("utf-8")
                mid = 0
                if qos:
                    mid = (packet[start] << 8) | packet[start + 1]
                    start += 2
                if v5:
                    if packet[start]:
                        return None  # properties: paho reads them
                    start += 1
            except (IndexError, UnicodeDecodeError):
                return None
            if not topic or start > len(packet):
                return None
            message = Message(topic, packet[start:], qos, mid, bool(command & 1), bool(command & 8))
            on_message = self.on_message
            if on_message is not None:
                with self._in_callback_mutex:
                    try:
                        on_message(self, self._userdata, message)
                    except Exception as err:
                        self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                        if not self.suppress_exceptions:
                            raise
            if qos == 1 and not self._manual_ack:
                return self._send_puback(mid)
            return success

        def ack_many(self, acks: list[Puback]) -> None:
            """Acknowledge QoS 1 messages (received with ``manual_ack``), in one write."""
            if acks:
                pack = _PUBACK.pack
                packet = b"".join([pack(_PUBACK_CMD, 2, a.mid) for a in acks])
                self._packet_queue(_PUBACK_CMD, packet, 0, 1)

    return LeanClient
