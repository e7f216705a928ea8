"""The MQTT subscriber of one source, feeding its micro-batch writer.

Delivery: with QoS 1/2 the client acknowledges a message only after the flush that
wrote it committed (paho ``manual_ack``). The session is persistent (fixed client id,
clean session off; MQTT 5 with a session expiry), so the broker keeps the subscription
and queues messages while the service is down, and redelivers any message that was
received but not acknowledged. A redelivered message is upserted by key again: no loss,
no duplicate rows.

Shared subscriptions (``shared_group``): every worker subscribes ``$share/<group>/<topic>``
and the broker hands each message to one of them. Members need distinct client ids:
``<client_id>-<member>``, where the member is the worker's stable ``--name`` (its session
persists) or, without a name, host and process id (a session that ends with the
connection: a broker queues a shared subscription's messages for an absent member too, and
would keep them from the others until it returned).

Reconnects after a lost broker are paho's, with back-off from 1 s up to 30 s; the
source's ``last_error`` in the registry says the broker is gone until it is back.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from typing import Any

from factorysync.config import ConnectionDecl
from factorysync.connectors.mqtt import Decoded, MqttConfig, TopicTemplate, decode_payload, paho
from factorysync.realtime.writer import Incoming, MicroBatchWriter, report_status
from factorysync.security.secrets import resolve_env_refs
from factorysync.store.types import utcnow

log = logging.getLogger("factorysync.realtime.mqtt")
RECEIVE_MAXIMUM = 65535  # MQTT 5: unacknowledged messages the broker may send us


def build_client(
    cfg: MqttConfig, auth: dict[str, Any], client_id: str, *, clean: bool, manual_ack: bool
) -> Any:
    mqtt = paho()
    v5 = cfg.protocol == "5"
    kwargs: dict[str, Any] = {
        "callback_api_version": mqtt.CallbackAPIVersion.VERSION2,
        "client_id": client_id,
        "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        "manual_ack": manual_ack,
    }
    if not v5:
        kwargs["clean_session"] = clean
    client = mqtt.Client(**kwargs)
    if auth.get("username"):
        client.username_pw_set(str(auth["username"]), auth.get("password"))
    if cfg.tls:
        tls = cfg.tls if not isinstance(cfg.tls, bool) else None
        client.tls_set(
            ca_certs=tls.ca_file if tls else None,
            certfile=tls.cert_file if tls else None,
            keyfile=tls.key_file if tls else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        if tls and tls.insecure:
            client.tls_insecure_set(True)
    client.reconnect_delay_set(1, 30)
    return client


def connect_kwargs(cfg: MqttConfig, *, clean: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"keepalive": cfg.keepalive_s}
    if cfg.protocol == "5":
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0 if clean else cfg.session_expiry_s
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        kwargs |= {"clean_start": clean, "properties": props}
    return kwargs


def message_records(
    cfg: MqttConfig, template: TopicTemplate | None, topic: str, payload: bytes
) -> Decoded:
    """The records of one message: payload fields plus the fields the topic carries."""
    decoded = decode_payload(payload, cfg.payload_format)
    if decoded.error is not None:
        return decoded
    extra: dict[str, Any] = {}
    if template is not None:
        fields = template.fields(topic)
        if fields is None:
            return Decoded(
                [], f"topic {topic!r} does not match topic_template {template.template!r}"
            )
        extra |= fields
    if cfg.topic_field:
        extra[cfg.topic_field] = topic
    if cfg.received_at_field:
        extra[cfg.received_at_field] = utcnow().isoformat()
    if extra:
        # Fields in the payload win over the ones lifted from the topic.
        decoded.records = [{**extra, **r} for r in decoded.records]
    return decoded


def _raw(topic: str, payload: bytes) -> dict[str, Any]:
    # NUL is dropped: PostgreSQL JSON cannot hold it.
    text = payload[:65536].decode("utf-8", errors="replace").replace("\x00", "")
    return {"topic": topic, "payload": text}


class MqttSubscriber:
    """Subscribes one source's topics and feeds its writer until stopped."""

    def __init__(
        self,
        source_id: str,
        connection: ConnectionDecl,
        writer: MicroBatchWriter,
        *,
        member: str | None = None,
    ):
        """``member``: this process's stable name in a shared subscription (a worker's
        ``--name``). With one, its session persists like any other; without one, it gets
        a per-process client id and a session that ends with the connection, so no
        message waits for a process that will not come back."""
        self.source_id = source_id
        self.cfg = MqttConfig.model_validate(connection.connection_config)
        self.clean = self.cfg.clean_session
        client_id = self.cfg.client_id_for(source_id)
        if self.cfg.shared_group:
            self.clean = self.clean or member is None
            client_id = self.cfg.client_id_for(
                source_id, member or f"{socket.gethostname()}-{os.getpid()}"
            )
        self.auth = resolve_env_refs(
            connection.authentication_config, where=f"{connection.connection_name} auth"
        )
        self.writer = writer
        self.template = TopicTemplate(self.cfg.topic_template) if self.cfg.topic_template else None
        self.manual_ack = self.cfg.qos > 0
        self.connected = threading.Event()
        self.received = 0
        self._closing = False
        self._lost = False
        self.client = build_client(
            self.cfg, self.auth, client_id, clean=self.clean, manual_ack=self.manual_ack
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    @property
    def where(self) -> str:
        return f"MQTT broker {self.cfg.host}:{self.cfg.port}"

    def start(self) -> None:
        self.client.connect_async(
            self.cfg.host, self.cfg.port, **connect_kwargs(self.cfg, clean=self.clean)
        )
        self.client.loop_start()

    def stop(self) -> None:
        """Stop taking messages, write and acknowledge the ones taken, then disconnect."""
        self._closing = True
        self.writer.stop()
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks (its network thread) -------------------------------------------
    def _on_connect(
        self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("%s: %s refused the connection: %s", self.source_id, self.where, reason)
            report_status(self.writer.store, self.source_id, f"{self.where} refused: {reason}")
            return
        # Also when the broker kept the session: subscribing again is harmless.
        client.subscribe([(t, self.cfg.qos) for t in self.cfg.subscriptions()])
        if self._lost:
            log.info("%s: reconnected to %s", self.source_id, self.where)
        self._lost = False
        report_status(self.writer.store, self.source_id, None)

    def _on_subscribe(
        self, _client: Any, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            message = f"{self.where} refused the subscription: {', '.join(refused)}"
            log.warning("%s: %s", self.source_id, message)
            report_status(self.writer.store, self.source_id, message)
        else:
            report_status(self.writer.store, self.source_id, None, subscribed=self.where)
        # Connected and subscribed: messages published from now on reach this source.
        self.connected.set()

    def _on_disconnect(
        self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if not self._closing:
            self._lost = True
            log.warning("%s: lost %s (%s); reconnecting", self.source_id, self.where, reason)
            report_status(
                self.writer.store, self.source_id, f"lost {self.where} ({reason}); reconnecting"
            )
        self.connected.clear()

    def _on_message(self, client: Any, _userdata: Any, msg: Any) -> None:
        if self._closing:
            return  # not acknowledged: the broker delivers it again next session
        self.received += 1
        decoded = message_records(self.cfg, self.template, msg.topic, msg.payload)
        ack = None
        if self.manual_ack and msg.qos > 0:
            mid, qos = msg.mid, msg.qos
            ack = lambda: client.ack(mid, qos)  # noqa: E731
        self.writer.put(
            Incoming(
                decoded.records,
                raw=_raw(msg.topic, msg.payload),
                error=decoded.error,
                ack=ack,
                received=time.monotonic(),
            )
        )
