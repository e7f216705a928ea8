"""MQTT sources: topic subscriptions on a broker, one record per message.

The subscription itself is long-running and lives in the realtime service
(:mod:`factorysync.realtime.mqtt`); this module holds what both share: the
``connection_config`` model, topic filters and templates, payload decoding, and the
connector's ``check`` (can the broker be reached, with these credentials?) and
``discover`` (listen for a moment and describe the fields of the messages seen).

``connection_config``::

    host: broker.plant.local        # required
    port: 1883                      # 8883 is the default with tls
    topics: [plant/+/+/status]      # one or more filters; + and # wildcards
    qos: 1                          # 0, 1 or 2
    topic_template: plant/{line}/{machine_id}/status   # topic levels lifted into fields
    client_id: fs-line-status       # default: factorysync-<source_id>
    tls: true                       # or {ca_file, cert_file, key_file, insecure}
    payload_format: auto            # auto | json | text
    shared_group: line-status       # MQTT 5 shared subscription: workers split the stream

``authentication_config``: ``username``, ``password``.

Payloads: a JSON object is a record, a JSON array holds records, any other JSON value or
plain text becomes ``{"value": ...}``. A payload that looks like JSON (starts with ``{``
or ``[``) but does not parse, or is not UTF-8, is malformed and goes to quarantine.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factorysync.connectors.base import (
    Batch,
    Connector,
    FieldInfo,
    ReadRequest,
    describe_records,
)
from factorysync.errors import ConfigError, ConnectorFatal, ConnectorRetriable

INSTALL = "pip install 'paho-mqtt>=2.1'"
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
        """The fields of ``topic``, or None when the topic does not fit the template."""
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

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    # Skip the broker host name check (self-signed broker certificates on a plant LAN).
    insecure: bool = False


class MqttConfig(BaseModel):
    """``connection_config`` of an MQTT source."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    topics: list[str] = Field(min_length=1)
    qos: Literal[0, 1, 2] = 1
    topic_template: str | None = None
    client_id: str | None = Field(default=None, min_length=1, max_length=128)
    tls: bool | TlsConfig = False
    payload_format: Literal["auto", "json", "text"] = "auto"
    protocol: Literal["5", "3.1.1"] = "5"
    # Off: the broker keeps the subscription and queues QoS 1/2 messages while we are away.
    clean_session: bool = False
    # MQTT 5: how long the broker keeps the session after a disconnect.
    session_expiry_s: int = Field(default=7 * 86400, ge=0)
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    # Also store the message topic / the time it was received under these field names.
    topic_field: str | None = None
    received_at_field: str | None = None
    # Micro-batches: written when this many messages wait, or the oldest waited this long.
    batch_rows: int = Field(default=500, ge=1, le=100_000)
    batch_ms: int = Field(default=200, ge=1, le=60_000)
    # MQTT 5 shared subscription ($share/<group>/<topic>): every worker subscribes and the
    # broker hands each message to one of them, splitting a high-volume stream.
    shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")

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


class MqttConnector(Connector):
    """Connection checks and field discovery for MQTT sources."""

    type_name = "mqtt"
    config_model = MqttConfig
    realtime = True

    @property
    def cfg(self) -> MqttConfig:
        assert isinstance(self.config, MqttConfig)
        return self.config

    def client(self, client_id: str, *, clean: bool, manual_ack: bool = False) -> Any:
        """A configured (not yet connected) paho client for this source."""
        from factorysync.realtime.mqtt import build_client

        return build_client(self.cfg, self.auth, client_id, clean=clean, manual_ack=manual_ack)

    def _session(self, seconds: float, topics: list[str] | None) -> list[tuple[str, bytes]]:
        """Connect with a throw-away session; collect messages of ``topics`` for ``seconds``."""
        from factorysync.realtime.mqtt import connect_kwargs

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
        from factorysync.realtime.mqtt import message_records

        records: list[Any] = []
        for topic, payload in self._session(3.0, self.cfg.topics)[:limit]:
            records += message_records(self.cfg, self._template(), topic, payload).records
        return describe_records(records)

    def _template(self) -> TopicTemplate | None:
        return TopicTemplate(self.cfg.topic_template) if self.cfg.topic_template else None

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        raise ConnectorFatal(
            f"source {self.context.source_id!r} is an MQTT subscription: it is written "
            "continuously by the realtime service of 'factorysync run', not by one-off syncs"
        )
