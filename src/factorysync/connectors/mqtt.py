"""MQTT sources: topic subscriptions on a broker, one record per message.

The connector's ``check`` asks whether the broker can be reached with these credentials,
``discover`` listens for a moment and describes the fields of the messages seen, and
``subscribe`` runs the long-lived subscription for the realtime service. The config
model, topics, payload decoding and the paho client are in
:mod:`factorysync.connectors.mqtt_wire`; the client's receive path for high message
rates (whole socket reads handed to the sink at once, acknowledgements sent together) in
:mod:`factorysync.connectors.mqtt_client`.

``connection_config``::

    host: broker.plant.local        # required
    port: 1883                      # 8883 is the default with tls
    topics: [plant/+/+/status]      # one or more filters; + and # wildcards
    qos: 1                          # 0, 1 or 2
    topic_template: plant/{line}/{machine_id}/status   # topic levels lifted into fields
    client_id: fs-line-status       # default: factorysync-<source_id>
    tls: true                       # or {ca_file, cert_file, key_file, insecure}
    payload_format: auto            # auto | json | text | sparkplug_b
    sparkplug_rebirth: false        # sparkplug_b: ask edge nodes for rebirths (NCMD)
    shared_group: line-status       # MQTT 5 shared subscription: workers split the stream

``authentication_config``: ``username``, ``password``.

Delivery: with QoS 1/2 the client acknowledges a message only after the flush that
wrote it committed (paho ``manual_ack``; the QoS 1 acknowledgements of a flush go out in
one write). The session is persistent (fixed client id,
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

Sparkplug B (``payload_format: sparkplug_b``): each subscription keeps the edge nodes'
sessions (aliases, sequence numbers, births and deaths) in a
:class:`~factorysync.connectors.sparkplug.SparkplugSession`, rebuilt at every reconnect.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from factorysync.connectors import sparkplug
from factorysync.connectors.base import (
    Batch,
    Connector,
    FieldInfo,
    ReadRequest,
    Sink,
    SourceKind,
    describe_records,
)
from factorysync.connectors.mqtt_client import Puback
from factorysync.connectors.mqtt_wire import (
    MqttConfig,
    TopicTemplate,
    build_client,
    connect_error,
    connect_kwargs,
    message_records,
    raw_message,
)
from factorysync.errors import ConnectorFatal, ConnectorRetriable

log = logging.getLogger("factorysync.connectors.mqtt")


# A predefined template (``MqttConnector.templates``): the latest value of every metric of
# the edge nodes of a group, stale ones marked. ``device_id`` is '' for the node's own
# metrics (a key column cannot be empty); ``value`` is JSON, as metrics of one node have
# many datatypes; historical samples are left to time-series mappings.
SPARKPLUG_EDGE_NODE_TEMPLATE: dict[str, Any] = {
    "template_name": "sparkplug_b_edge_node",
    "display_name": "Sparkplug B edge node",
    "description": "Metrics of Sparkplug B edge nodes and their devices (live): the latest "
    "value per metric, marked stale while its node or device is offline.",
    "source_type": "mqtt",
    "connection_config": {
        "host": "127.0.0.1",
        "port": 1883,
        "topics": ["spBv1.0/plant1/#"],
        "qos": 1,
        "payload_format": "sparkplug_b",
        "sparkplug_rebirth": False,
    },
    "authentication_config": {"username": "factorysync", "password": "${env:MQTT_PASSWORD}"},
    "mapping_config": {
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
    },
}


class MqttConnector(Connector):
    """Connection checks, field discovery and the subscription of MQTT sources."""

    type_name = "mqtt"
    config_model = MqttConfig
    source_types = (
        SourceKind(
            "mqtt",
            "MQTT",
            "MQ",
            "orange",
            summary="Messages on MQTT topics of a broker, written as they arrive.",
        ),
    )
    auth_keys = ("username", "password")
    extra = "mqtt"
    polls = False

    @classmethod
    def unpolled_reason(cls, source_id: str) -> str:
        return (
            f"source {source_id!r} is an MQTT subscription: it is written continuously by "
            "the realtime service of 'factorysync run', not by one-off syncs"
        )

    streams = True
    templates: ClassVar[list[dict[str, Any]]] = [SPARKPLUG_EDGE_NODE_TEMPLATE]

    @property
    def cfg(self) -> MqttConfig:
        assert isinstance(self.config, MqttConfig)
        return self.config

    def client(self, client_id: str, *, clean: bool, manual_ack: bool = False) -> Any:
        """A configured (not yet connected) paho client for this source."""
        return build_client(self.cfg, self.auth, client_id, clean=clean, manual_ack=manual_ack)

    def _session(self, seconds: float, topics: list[str] | None) -> list[tuple[str, bytes]]:
        """Connect with a throw-away session; collect messages of ``topics`` for ``seconds``."""
        cfg = self.cfg
        connected = threading.Event()
        outcome: dict[str, Any] = {}
        seen: list[tuple[str, bytes]] = []
        client = self.client(f"{cfg.client_id_for(self.context.source_id)}-check", clean=True)

        def on_connect(c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
            outcome["reason"] = reason
            if not reason.is_failure and topics:
                c.subscribe([(t, 0) for t in topics])
            connected.set()

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            seen.append((msg.topic, msg.payload))

        client.on_connect = on_connect
        client.on_message = on_message
        try:
            client.connect(cfg.host, cfg.port, **connect_kwargs(cfg, clean=True))
        except OSError as exc:
            raise ConnectorRetriable(
                f"cannot reach MQTT broker {cfg.host}:{cfg.port}: {exc}"
            ) from None
        client.loop_start()
        try:
            if not connected.wait(10):
                raise ConnectorRetriable(f"MQTT broker {cfg.host}:{cfg.port} did not answer")
            if outcome["reason"].is_failure:
                raise connect_error(outcome["reason"])
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            client.disconnect()
            client.loop_stop()
        return seen

    def _check(self) -> str:
        self._session(0, None)
        cfg = self.cfg
        return f"MQTT broker {cfg.host}:{cfg.port} accepted the connection"

    def discover(self, *, records_path: str | None = None, limit: int = 200) -> list[FieldInfo]:
        """Listen for a few seconds (retained messages arrive at once) and describe fields."""
        records: list[Any] = []
        session = sparkplug.session_for(self.cfg, self.context.source_id, None)
        for topic, payload in self._session(3.0, self.cfg.topics)[:limit]:
            records += message_records(self.cfg, self._template(), topic, payload, session).records
        return describe_records(records) if session is None else session.describe(records)

    def _template(self) -> TopicTemplate | None:
        return TopicTemplate(self.cfg.topic_template) if self.cfg.topic_template else None

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        raise ConnectorFatal(self.unpolled_reason(self.context.source_id))

    def subscribe(self, sink: Sink, stop: threading.Event) -> None:
        """Subscribe the topics and hand every message to ``sink`` until ``stop``."""
        _Subscription(self, sink).run(stop)

    @classmethod
    def stream_shared(cls, config: dict[str, Any]) -> bool:
        return bool(config.get("shared_group"))


class _Subscription:
    """One source's subscription: paho's network thread feeds the sink, the messages of
    each read from the socket together (``put_many``, when the sink has it)."""

    def __init__(self, connector: MqttConnector, sink: Sink) -> None:
        """In a shared subscription, a worker with a stable name (``--name``) keeps its
        session like any other; one without gets a per-process client id and a session
        that ends with the connection, so no message waits for a process that will not
        come back."""
        cfg = self.cfg = connector.cfg
        source_id = self.source_id = connector.context.source_id
        member = connector.context.worker
        self.clean = cfg.clean_session
        client_id = cfg.client_id_for(source_id)
        if cfg.shared_group:
            self.clean = self.clean or member is None
            client_id = cfg.client_id_for(
                source_id, member or f"{socket.gethostname()}-{os.getpid()}"
            )
        self.sink = sink
        self.template = connector._template()
        self.manual_ack = cfg.qos > 0
        self.where = f"MQTT broker {cfg.host}:{cfg.port}"
        self._closing = False
        self._lost = False
        self.client = connector.client(client_id, clean=self.clean, manual_ack=self.manual_ack)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        # Messages of the read in progress, handed over by ``_on_chunk``.
        self._received: list[tuple[list[Any], Any, str | None, Any]] = []
        self._put_many = None
        if hasattr(self.client, "on_chunk"):
            self._put_many = getattr(sink, "put_many", None)
            self.client.on_chunk = self._on_chunk
        self._ack_many = getattr(self.client, "ack_many", None)
        self.session = sparkplug.session_for(cfg, source_id, sink, self.client)

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``; then stop taking messages, write and acknowledge the ones
        taken (acknowledgements need the connection), and disconnect."""
        cfg = self.cfg
        self.client.connect_async(cfg.host, cfg.port, **connect_kwargs(cfg, clean=self.clean))
        self.client.loop_start()
        try:
            stop.wait()
        finally:
            self._closing = True
            self.sink.drain()
            self.client.disconnect()
            self.client.loop_stop()

    # -- paho callbacks (its network thread) -------------------------------------------
    def _on_connect(
        self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("%s: %s refused the connection: %s", self.source_id, self.where, reason)
            self.sink.status(f"{self.where} refused: {reason}")
            return
        # Also when the broker kept the session: subscribing again is harmless.
        client.subscribe([(t, self.cfg.qos) for t in self.cfg.subscriptions()])
        if self._lost:
            log.info("%s: reconnected to %s", self.source_id, self.where)
        self._lost = False
        if self.session is not None:
            self.session.connected()
        self.sink.status(None)

    def _on_subscribe(
        self, _client: Any, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            message = f"{self.where} refused the subscription: {', '.join(refused)}"
            log.warning("%s: %s", self.source_id, message)
            self.sink.status(message)
        else:
            # Connected and subscribed: messages published from now on reach this source.
            self.sink.status(None, subscribed=self.where)

    def _on_disconnect(
        self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if not self._closing:
            self._lost = True
            log.warning("%s: lost %s (%s); reconnecting", self.source_id, self.where, reason)
            self.sink.status(f"lost {self.where} ({reason}); reconnecting")

    def _on_message(self, client: Any, _userdata: Any, msg: Any) -> None:
        if self._closing:
            return  # not acknowledged: the broker delivers it again next session
        decoded = message_records(self.cfg, self.template, msg.topic, msg.payload, self.session)
        ack: Any = None
        if self.manual_ack and msg.qos > 0:
            mid, qos = msg.mid, msg.qos
            if qos == 1 and self._ack_many is not None:
                ack = Puback(mid, self._ack_many)  # a flush's acks go out in one write
            else:
                ack = lambda: client.ack(mid, qos)  # noqa: E731
        # A Sparkplug session says itself what stands for the message in quarantine.
        raw = decoded.raw if self.session is not None else raw_message(msg.topic, msg.payload)
        if self.session is not None or self._put_many is None:
            # A Sparkplug session also puts records of its own: every message at once.
            self.sink.put(decoded.records, raw=raw, error=decoded.error, ack=ack)
        else:
            self._received.append((decoded.records, raw, decoded.error, ack))

    def _on_chunk(self) -> None:
        """The messages of one read from the socket, handed to the sink together."""
        if self._received:
            received, self._received = self._received, []
            assert self._put_many is not None
            self._put_many(received)
