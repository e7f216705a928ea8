"""What MQTT checks, discovery and subscriptions share: the ``connection_config`` model,
topic filters and templates, payload decoding and the configured paho client.

Payloads: a JSON object is a record, a JSON array holds records, any other JSON value or
plain text becomes ``{"value": ...}``. A payload that looks like JSON (starts with ``{``
or ``[``) but does not parse, or is not UTF-8, is malformed and goes to quarantine.
``payload_format: sparkplug_b``: Sparkplug B protobuf payloads, one record per metric,
read by the subscription's session (:mod:`factorysync.connectors.sparkplug`).
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factorysync.connectors.base import NaiveZone, naive_zone_field
from factorysync.errors import ConfigError, ConnectorFatal, ConnectorRetriable

if TYPE_CHECKING:
    from factorysync.connectors.sparkplug import SparkplugSession

INSTALL = "pip install 'factorysync[mqtt]'"
TOPICS_KEPT = 10_000  # topics whose template fields are kept
RECEIVE_MAXIMUM = 65535  # MQTT 5: unacknowledged messages the broker may send us
_PLACEHOLDER = re.compile(r"^\{([a-z_][a-z0-9_]*)\}$")


def paho() -> Any:
    """The paho-mqtt client module (imported on first use)."""
    try:
        import paho.mqtt.client as client
    except ImportError:
        raise ConfigError(f"MQTT sources need the paho-mqtt package: {INSTALL}") from None
    return client


def check_filter(topic: str) -> str:
    """A topic filter: ``+`` stands for one whole level, ``#`` for the rest (last level)."""
    if not topic or "\x00" in topic:
        raise ValueError("a topic filter must be non-empty text")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"topic {topic!r}: '#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise ValueError(f"topic {topic!r}: '+' must be a whole level")
    return topic


class TopicTemplate:
    """``plant/{line}/{machine_id}/status``: topic levels lifted into record fields.

    A level ``{name}`` becomes field ``name``; ``+`` matches any level; a final ``#``
    matches the rest; any other level must match literally.
    """

    def __init__(self, template: str) -> None:
        self.template = template
        self._seen: dict[str, dict[str, str] | None] = {}
        self.levels: list[tuple[str, str]] = []  # (kind, text): field | any | rest | literal
        parts = template.split("/")
        for i, level in enumerate(parts):
            m = _PLACEHOLDER.match(level)
            if m:
                self.levels.append(("field", m.group(1)))
            elif level == "+":
                self.levels.append(("any", level))
            elif level == "#" and i == len(parts) - 1:
                self.levels.append(("rest", level))
            elif any(c in level for c in "{}+#"):
                raise ValueError(
                    f"topic_template {template!r}: level {level!r} must be a literal, "
                    "'{name}' (lower-case field name), '+' or a final '#'"
                )
            else:
                self.levels.append(("literal", level))
        names = [t for k, t in self.levels if k == "field"]
        if len(set(names)) != len(names):
            raise ValueError(f"topic_template {template!r} names a field twice")
        if not names:
            raise ValueError(f"topic_template {template!r} has no '{{field}}' level")

    def fields(self, topic: str) -> dict[str, str] | None:
        """The fields of ``topic``, or None when the topic does not fit the template.
        The answers for the last ``TOPICS_KEPT`` topics are kept (do not change them)."""
        try:
            return self._seen[topic]
        except KeyError:
            pass
        if len(self._seen) >= TOPICS_KEPT:
            self._seen.clear()
        found = self._seen[topic] = self._fields(topic)
        return found

    def _fields(self, topic: str) -> dict[str, str] | None:
        parts = topic.split("/")
        out: dict[str, str] = {}
        for i, (kind, text) in enumerate(self.levels):
            if kind == "rest":
                return out
            if i >= len(parts):
                return None
            if kind == "field":
                out[text] = parts[i]
            elif kind == "literal" and parts[i] != text:
                return None
        return out if len(parts) == len(self.levels) else None


class TlsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ca_file: str | None = Field(
        default=None,
        description="PEM file of the CA that signed the broker's certificate, e.g. "
        "/etc/factorysync/plant-ca.pem. Default: the system's CAs.",
    )
    cert_file: str | None = Field(
        default=None,
        description="PEM client certificate, for brokers that require one (mutual TLS).",
    )
    key_file: str | None = Field(default=None, description="PEM private key of cert_file.")
    # Skip the broker host name check (self-signed broker certificates on a plant LAN).
    insecure: bool = Field(
        default=False,
        description="Skip the check that the broker's certificate names its host (e.g. a "
        "broker reached by IP address on a plant LAN); the certificate itself is still "
        "verified.",
    )


class MqttConfig(BaseModel):
    """``connection_config`` of an MQTT source."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(
        title="Broker host",
        examples=["broker.plant.local"],
        json_schema_extra={"group": "connection"},
        min_length=1,
        description="Host name or IP address of the broker, e.g. broker.plant.local.",
    )
    port: int | None = Field(
        title="Broker port",
        examples=[1883],
        json_schema_extra={"group": "connection"},
        default=None,
        ge=1,
        le=65535,
        description="TCP port of the broker. Default: 1883, or 8883 with tls.",
    )
    topics: list[str] = Field(
        title="Topics",
        examples=["plant/line1/+/telemetry"],
        json_schema_extra={"group": "connection"},
        min_length=1,
        description="Topic filters to subscribe, one or more: + stands for one level, a "
        "final # for the rest, e.g. plant/+/+/status or plant/#.",
    )
    qos: Literal[0, 1, 2] = Field(
        title="Quality of service",
        default=1,
        description="Quality of service of the subscription: 0 (at most once), 1 (at "
        "least once) or 2 (exactly once). With 1 and 2 a message is acknowledged only "
        "once its rows are committed, so none is lost.",
    )
    topic_template: str | None = Field(
        default=None,
        description="Lifts topic levels into record fields: plant/{line}/{machine_id}/"
        "status gives line and machine_id; + matches any level, a final # the rest. A "
        "message whose topic does not fit is quarantined; a field in the payload wins "
        "over one from the topic.",
    )
    client_id: str | None = Field(
        title="Client id",
        examples=["factorysync-line1"],
        default=None,
        min_length=1,
        max_length=128,
        description="MQTT client id; the broker keeps the session under it, so it must "
        "stay the same and be unique on the broker. Default: factorysync-<source_id> "
        "(members of a shared_group add their worker name).",
    )
    tls: bool | TlsConfig = Field(
        title="TLS",
        default=False,
        description="TLS to the broker: false, true (the broker's certificate checked "
        "against the system's CAs), or an object with ca_file, cert_file, key_file and "
        "insecure.",
    )
    timezone: NaiveZone = naive_zone_field(
        "timestamps the messages carry without a UTC offset, read so where a mapping field "
        "types them as datetime"
    )
    payload_format: Literal["auto", "json", "text", "sparkplug_b"] = Field(
        title="Payload format",
        default="auto",
        description="How payloads are read: auto (JSON when it parses, else text), json "
        "(anything else is quarantined) or text. A JSON object is one record, an array "
        "holds records, any other payload becomes a record with one field, value. "
        "sparkplug_b: Sparkplug B edge nodes (topics under spBv1.0/), one record per "
        "metric: group_id, edge_node_id, device_id, metric, value, datatype, ts, "
        "is_historical, stale.",
    )
    sparkplug_rebirth: bool = Field(
        default=False,
        description="Sparkplug B: when aliases cannot be resolved or messages were lost "
        "(a sequence gap, a reconnect), ask the edge node to publish its births again "
        "(publishes NCMD Node Control/Rebirth to spBv1.0/<group_id>/NCMD/<edge_node_id>; "
        "the broker must let this client publish there). false: only recorded as an "
        "event.",
    )
    protocol: Literal["5", "3.1.1"] = Field(
        default="5", description="MQTT protocol version: 5, or 3.1.1 for older brokers."
    )
    # Off: the broker keeps the subscription and queues QoS 1/2 messages while we are away.
    clean_session: bool = Field(
        default=False,
        description="Start a fresh session at every connect: the broker forgets the "
        "subscription and drops what it queued meanwhile. false: a persistent session, "
        "so QoS 1 and 2 messages wait at the broker while factorysync is down.",
    )
    # MQTT 5: how long the broker keeps the session after a disconnect.
    session_expiry_s: int = Field(
        default=7 * 86400,
        ge=0,
        description="MQTT 5: seconds the broker keeps the session (subscription and "
        "queued messages) after a disconnect (default 7 days).",
    )
    keepalive_s: int = Field(
        default=30,
        ge=5,
        le=3600,
        description="Keep-alive interval in seconds: the client pings an idle connection "
        "this often, and a broker that stays silent is taken as lost (then reconnected).",
    )
    # Also store the message topic / the time it was received under these field names.
    topic_field: str | None = Field(
        default=None,
        description="Also store each message's topic in this record field, e.g. topic. "
        "Default: not stored.",
    )
    received_at_field: str | None = Field(
        default=None,
        description="Also store the time each message was received (ISO 8601, UTC) in "
        "this record field, e.g. received_at. Default: not stored.",
    )
    # Micro-batches: written when this many messages wait, or the oldest waited this long.
    batch_rows: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Micro-batches: the waiting messages are written once this many "
        "wait (or after batch_ms).",
    )
    batch_ms: int = Field(
        default=200,
        ge=1,
        le=60_000,
        description="Micro-batches: milliseconds the oldest waiting message may wait "
        "before the batch is written.",
    )
    # MQTT 5 shared subscription ($share/<group>/<topic>): every worker subscribes and the
    # broker hands each message to one of them, splitting a high-volume stream.
    shared_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="MQTT 5 shared subscription group (letters, digits, _ . -; up to 64): "
        "every worker subscribes $share/<group>/<topic> and the broker hands each message "
        "to one of them, splitting a high-volume stream. Default: one subscriber.",
    )

    @field_validator("topics", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("topics")
    @classmethod
    def _filters(cls, v: list[str]) -> list[str]:
        return [check_filter(t) for t in v]

    @field_validator("topic_template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None:
            TopicTemplate(v)
        return v

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, v: Any) -> Any:
        return {5: "5", 3.11: "3.1.1", 311: "3.1.1"}.get(v, v)

    @model_validator(mode="after")
    def _port(self) -> MqttConfig:
        if self.port is None:
            self.port = 8883 if self.tls else 1883
        return self

    @model_validator(mode="after")
    def _sparkplug(self) -> MqttConfig:
        if self.payload_format != "sparkplug_b":
            if self.sparkplug_rebirth:
                raise ValueError("sparkplug_rebirth: only for payload_format sparkplug_b")
            return self
        from factorysync.connectors.sparkplug import config_problems

        problems = config_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def client_id_for(self, source_id: str, member: str | None = None) -> str:
        """The client id; members of a shared subscription add their own name to it."""
        base = self.client_id or f"factorysync-{source_id}"
        return (f"{base}-{member}" if self.shared_group and member else base)[:128]

    def subscriptions(self) -> list[str]:
        """The filters to subscribe: ``topics``, as shared subscriptions with a group."""
        if self.shared_group:
            return [f"$share/{self.shared_group}/{t}" for t in self.topics]
        return list(self.topics)


@dataclass
class Decoded:
    """A message as records, or the reason it cannot be one."""

    records: list[Any]
    error: str | None = None
    # What quarantine keeps of the message when the decoder says (Sparkplug B: topic and
    # payload as JSON on an error; None once decoded, the records then standing for it).
    raw: Any = None


def decode_payload(payload: bytes, payload_format: str) -> Decoded:
    """Records of one payload (see the module docstring for the rules)."""
    if payload_format != "text":
        stripped = payload.lstrip()
        looks_json = stripped[:1] in (b"{", b"[")
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            if payload_format == "json" or looks_json:
                return Decoded([], f"payload is not valid JSON: {exc}")
        else:
            if isinstance(value, list):
                bad = [i for i, v in enumerate(value) if not isinstance(v, dict)]
                if bad:
                    return Decoded([], f"payload array item {bad[0]} is not a JSON object")
                return Decoded(value)
            return Decoded([value if isinstance(value, dict) else {"value": value}])
    try:
        return Decoded([{"value": payload.decode("utf-8")}])
    except UnicodeDecodeError as exc:
        return Decoded([], f"payload is not UTF-8 text (byte {exc.start})")


def connect_error(reason: Any) -> ConnectorRetriable | ConnectorFatal:
    """A broker's CONNACK refusal as the error class the engine acts on."""
    text = str(reason)
    fatal = any(
        w in text.lower() for w in ("not authorized", "bad user", "username", "banned", "invalid")
    )
    cls = ConnectorFatal if fatal else ConnectorRetriable
    return cls(f"MQTT broker refused the connection: {text}")


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
    from factorysync.connectors.mqtt_client import lean_client_class

    client = lean_client_class()(**kwargs)
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
        from paho.mqtt import properties
        from paho.mqtt.packettypes import PacketTypes

        unannotated: Any = properties.Properties  # paho's class has no type annotations
        props = unannotated(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0 if clean else cfg.session_expiry_s
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        kwargs |= {"clean_start": clean, "properties": props}
    return kwargs


def message_records(
    cfg: MqttConfig,
    template: TopicTemplate | None,
    topic: str,
    payload: bytes,
    session: SparkplugSession | None = None,
) -> Decoded:
    """The records of one message: payload fields plus the fields the topic carries.
    Sparkplug B payloads are read by the subscription's ``session``."""
    if cfg.payload_format == "sparkplug_b":
        if session is None:
            raise ValueError("payload_format sparkplug_b needs the subscription's session")
        decoded = session.decode(topic, payload)
    else:
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
        extra[cfg.received_at_field] = datetime.now(UTC).isoformat()
    if extra:
        # Fields in the payload win over the ones lifted from the topic.
        decoded.records = [{**extra, **r} for r in decoded.records]
    return decoded


def raw_message(topic: str, payload: bytes) -> dict[str, Any]:
    # NUL is dropped: PostgreSQL JSON cannot hold it.
    text = payload[:65536].decode("utf-8", errors="replace").replace("\x00", "")
    return {"topic": topic, "payload": text}
