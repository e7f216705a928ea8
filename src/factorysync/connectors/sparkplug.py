"""Sparkplug B on MQTT sources (``payload_format: sparkplug_b``): the host application's
side of the edge nodes' sessions, and the rows their metrics become.

Topics are ``spBv1.0/<group_id>/<type>/<edge_node_id>[/<device_id>]``, the type one of
NBIRTH, NDATA, NDEATH (the edge node) or DBIRTH, DDATA, DDEATH (one of its devices).
Commands (NCMD, DCMD) and host states (``spBv1.0/STATE/<host_id>`` in Sparkplug 3.0,
``spBv1.0/<group_id>/STATE/<host_id>`` before it) carry no plant data and make no rows.
Payloads are protobuf: :mod:`factorysync.connectors.sparkplug_payload` reads them.

Rows: one per metric sample, with ``group_id``, ``edge_node_id``, ``device_id`` (None
for the edge node's own metrics), ``metric`` (its name), ``value`` (typed from the
datatype), ``datatype`` (its name: Int32, Double …), ``ts`` (the metric's timestamp,
else the payload's, else the time of receipt; UTC), ``is_historical`` and ``stale``.

The session (one per subscription) does what the Sparkplug specification asks of a host
application:

* Aliases: a birth (NBIRTH, DBIRTH) declares each metric's name, datatype and usually an
  alias; DATA messages then send metrics by alias alone. An alias the session cannot
  resolve (no birth seen since the subscription started, or one the birth did not
  declare) is never guessed: that metric goes to quarantine with the reason, an event
  says so, and a rebirth is asked for when allowed; the message's other metrics are
  written.
* Sequence numbers: every message of an edge node but NDEATH carries ``seq``, 0 to 255
  and round again, restarted by NBIRTH. Any other number than the next one means
  messages were lost: the gap goes to the event log and to the history window's
  ``details.gaps``, and a rebirth is asked for when allowed.
* bdSeq: an NBIRTH and the NDEATH the broker publishes when that connection of the node
  ends (its will) carry the same ``bdSeq``; an NDEATH with another one belongs to an
  earlier connection and is ignored. ``bdSeq`` itself makes no row.
* Deaths: NDEATH makes every known metric of the node and of its devices stale, DDEATH
  those of the device: one row per metric with ``stale`` true, the value of its last
  sample kept (what was last known, now marked as no longer current) and ``ts`` the time
  of death; plus a warning event. A mapping keyed by (group_id, edge_node_id,
  device_id, metric) then shows every metric of the node with its last value, stale.
  The next birth's rows (``stale`` false) replace them; a metric the new birth no longer
  declares stays stale.
* Historical metrics (``is_historical``) are written with their own timestamps; they
  never become the value a death keeps.
* Rebirth: with ``sparkplug_rebirth: true`` the session publishes the command
  ``Node Control/Rebirth`` = true to ``spBv1.0/<group_id>/NCMD/<edge_node_id>``, at most
  once per edge node per ``REBIRTH_EVERY_S``. Off (the default: the broker's ACL may not
  let factorysync publish, and a plant's primary host application may already do it),
  the reason for wanting one is recorded in the event log only.
* Reconnects: births may have been missed while the connection was down, and an alias
  of a birth that is no longer current would put a value under the wrong name, so the
  state is rebuilt from the next births and every edge node known is asked for one.

Only paho's network thread calls a session, one message after the other: no lock.
"""

from __future__ import annotations

import base64
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from factorysync.connectors import sparkplug_payload as spb
from factorysync.connectors.base import FieldInfo, Sink, describe_records
from factorysync.connectors.mqtt_wire import Decoded, MqttConfig
from factorysync.connectors.sparkplug_payload import NAMESPACE, Topic, parse_topic

log = logging.getLogger("factorysync.connectors.sparkplug")
REBIRTH_EVERY_S = 10.0  # rebirth requests: at most one per edge node in this time
TELL_EVERY_S = 60.0  # unresolved aliases: at most one event per node or device
BD_SEQ = "bdSeq"
TEMPLATE_TYPE = 19
FIELDS: list[tuple[str, str | None, bool]] = [  # the rows' fields: name, kind, nullable
    ("group_id", "string", False),
    ("edge_node_id", "string", False),
    ("device_id", "string", True),
    ("metric", "string", False),
    ("value", None, True),
    ("datatype", "string", False),
    ("ts", "datetime", False),
    ("is_historical", "boolean", False),
    ("stale", "boolean", False),
]


def config_problems(cfg: MqttConfig) -> list[str]:
    """What keeps a ``payload_format: sparkplug_b`` connection from working."""
    problems = []
    outside = [t for t in cfg.topics if t.split("/", 1)[0] != NAMESPACE]
    if outside:
        problems.append(
            f"topics: with payload_format sparkplug_b every topic filter must be under "
            f"{NAMESPACE}/ (e.g. {NAMESPACE}/plant1/#); not: {', '.join(outside)}"
        )
    if cfg.topic_template:
        problems.append(
            "topic_template: not used with payload_format sparkplug_b (group_id, "
            "edge_node_id and device_id come from the Sparkplug topic); remove it"
        )
    if cfg.shared_group:
        problems.append(
            "shared_group: not possible with payload_format sparkplug_b (an edge node's "
            "session, its aliases and sequence numbers, needs all of its messages in one "
            "subscriber); remove it"
        )
    return problems


def session_for(
    cfg: MqttConfig, source_id: str, sink: Sink | None, client: Any = None
) -> SparkplugSession | None:
    """The Sparkplug session of a subscription (None unless the source speaks Sparkplug
    B); it publishes rebirth requests with ``client`` when the config allows."""
    if cfg.payload_format != "sparkplug_b":
        return None
    publish = None
    if client is not None and cfg.sparkplug_rebirth:

        def publish(topic: str, payload: bytes) -> bool:
            return bool(client.publish(topic, payload, qos=0).rc == 0)

    return SparkplugSession(source_id, sink, publish)


@dataclass(slots=True)
class _Metric:
    datatype: int
    type_name: str  # the datatype's, as rows show it
    value: Any = None  # of the last sample that is not historical


@dataclass(slots=True)
class _Scope:
    """The metrics of an edge node, or of one of its devices."""

    born: bool = False
    stale: bool = False
    aliases: dict[int, str] = field(default_factory=dict)
    metrics: dict[str, _Metric] = field(default_factory=dict)
    told: float = -math.inf  # when unresolved aliases were last reported


@dataclass(slots=True)
class _Node(_Scope):
    bd_seq: int | None = None
    seq: int | None = None
    last: datetime | None = None  # when its last message was sent (where a gap starts)
    devices: dict[str, _Scope] = field(default_factory=dict)


class SparkplugSession:
    """The state of the edge nodes one subscription hears (see the module docstring).

    ``sink`` takes the events and the metrics refused on their own (None: both dropped,
    as discovery wants); ``publish(topic, payload)`` sends a rebirth request and says
    whether it went out (None: rebirth requests are off)."""

    def __init__(
        self,
        source_id: str,
        sink: Sink | None,
        publish: Callable[[str, bytes], bool] | None = None,
    ) -> None:
        spb.schema()  # without protobuf the source stops here, with the install command
        self.source_id = source_id
        self.sink = sink
        self.publish = publish
        self.nodes: dict[tuple[str, str], _Node] = {}
        self._asked: dict[tuple[str, str], float] = {}  # rebirth requests; kept on reset

    # -- the subscription's hooks ---------------------------------------------------------
    def connected(self) -> None:
        """A connect or reconnect: births may have been missed meanwhile, so the state is
        rebuilt from the next births, and the edge nodes known are asked for them."""
        if not self.nodes:
            return
        known = list(self.nodes)
        self.nodes.clear()
        asked = sum(self._rebirth(node, "factorysync reconnected", tell=False) for node in known)
        names = [f"{group}/{edge}" for group, edge in known]
        self._event(
            "sparkplug.reset",
            f"reconnected: the state of {len(known)} edge node(s) is rebuilt from their "
            "next births; " + (f"asked {asked} for a rebirth" if asked else self._no_rebirth()),
            details={"edge_nodes": names[:100]},
        )

    def decode(self, topic: str, payload: bytes) -> Decoded:
        """The rows of one message; refused metrics go to the sink on their own."""
        try:
            where = parse_topic(topic)
            if where is None:
                return Decoded([])
            message = spb.parse(payload)
        except ValueError as exc:
            return Decoded([], str(exc), raw=_raw_bytes(topic, payload))
        try:
            received = datetime.now(UTC)
            sent = spb.timestamp(message.timestamp) if message.HasField("timestamp") else received
            if where.kind.endswith("BIRTH"):
                return Decoded(self._birth(where, message, sent))
            if where.kind.endswith("DATA"):
                return Decoded(self._data(where, message, sent))
            return Decoded(self._death(where, message, sent))
        except Exception as exc:  # a bad payload must not stop paho's network thread
            log.exception("%s: Sparkplug message on %s not read", self.source_id, topic)
            raw = {"topic": topic, "payload": spb.as_json(message)}
            return Decoded([], f"Sparkplug message cannot be read: {exc!r}", raw=raw)

    # -- message types -----------------------------------------------------------------------
    def _birth(self, t: Topic, message: Any, sent: datetime) -> list[dict[str, Any]]:
        if t.device is None:
            bd_seq = _bd_seq(message)
            # A new session of the node: its devices are known again from their DBIRTHs.
            node = self.nodes[t.node] = _Node(bd_seq=bd_seq, last=sent)
            node.seq = message.seq if message.HasField("seq") else None
            scope: _Scope = node
        else:
            node = self._node(t)
            self._sequence(node, t, message, sent)
            was = node.devices.get(t.device)
            scope = node.devices[t.device] = _Scope()
            if was is not None and was.stale:
                self._event("sparkplug.birth", f"device {t.label} is online again (DBIRTH)")
        scope.born = True
        rows = self._metrics(t, scope, message, sent, birth=True)
        if t.device is None:
            self._event(
                "sparkplug.birth",
                f"edge node {t.label} is online (NBIRTH, bdSeq {node.bd_seq}): "
                f"{len(scope.metrics)} metric(s)",
                details={"bd_seq": node.bd_seq, "metrics": len(scope.metrics)},
            )
        return rows

    def _data(self, t: Topic, message: Any, sent: datetime) -> list[dict[str, Any]]:
        node = self._node(t)
        self._sequence(node, t, message, sent)
        scope = node if t.device is None else node.devices.setdefault(t.device, _Scope())
        return self._metrics(t, scope, message, sent, birth=False)

    def _death(self, t: Topic, message: Any, sent: datetime) -> list[dict[str, Any]]:
        node = self.nodes.get(t.node)
        if t.device is None:
            bd_seq = _bd_seq(message)
            if node is not None and None not in (bd_seq, node.bd_seq) and bd_seq != node.bd_seq:
                self._event(
                    "sparkplug.death_ignored",
                    f"NDEATH of edge node {t.label} with bdSeq {bd_seq} ignored: it ends an "
                    f"earlier connection (the current birth has bdSeq {node.bd_seq})",
                )
                return []
            scopes: list[tuple[str | None, _Scope]] = []
            if node is not None:
                scopes = [(None, node), *node.devices.items()]
                node.seq = None
            what = f"edge node {t.label} is offline (NDEATH)"
        else:
            device = node.devices.get(t.device) if node is not None else None
            if node is not None:
                self._sequence(node, t, message, sent)
            scopes = [(t.device, device)] if device is not None else []
            what = f"device {t.label} is offline (DDEATH)"
        rows = []
        for device_id, scope in scopes:
            rows += self._stale(t, device_id, scope, sent)
            scope.born, scope.stale = False, True
            scope.aliases.clear()
        known = (
            f"{len(rows)} metric(s) marked stale" if scopes else "no birth seen, no metrics known"
        )
        self._event("sparkplug.death", f"{what}: {known}", level="warning")
        return rows

    # -- metrics ----------------------------------------------------------------------------
    def _metrics(
        self, t: Topic, scope: _Scope, message: Any, sent: datetime, *, birth: bool
    ) -> list[dict[str, Any]]:
        """The rows of a birth's or a DATA message's metrics. This loop runs for every
        metric sample: it reads each field of the message once."""
        rows: list[dict[str, Any]] = []
        unresolved = []
        group, edge, device = t.group, t.edge, t.device
        aliases, metrics = scope.aliases, scope.metrics
        last_ms, last_ts = 0, sent
        for m in message.metrics:
            name = m.name  # "" when the metric is sent by alias alone
            if name:
                if birth and m.HasField("alias"):
                    aliases[m.alias] = name
            else:
                name = aliases.get(m.alias) if m.HasField("alias") else None
                if name is None:
                    unresolved.append(m)
                    continue
            known = metrics.get(name)
            datatype = m.datatype or (known.datatype if known is not None else 0)
            if birth or known is None:
                if (name == BD_SEQ and device is None) or (
                    datatype == TEMPLATE_TYPE and m.template_value.is_definition
                ):
                    continue  # session bookkeeping and type definitions, not plant data
                known = metrics[name] = _Metric(datatype, spb.datatype_name(datatype))
            try:
                value = None if m.is_null else spb.value_of(m, datatype)
                ms = m.timestamp  # 0: none given
                if ms and ms != last_ms:
                    last_ms, last_ts = ms, spb.timestamp(ms)
            except (ValueError, OverflowError) as exc:
                self._refuse(t, message, m, f"metric {name!r} of {t.label}: {exc}")
                continue
            historical = m.is_historical
            if not historical:
                known.value = value
            rows.append(
                {
                    "group_id": group,
                    "edge_node_id": edge,
                    "device_id": device,
                    "metric": name,
                    "value": value,
                    "datatype": known.type_name
                    if datatype == known.datatype
                    else spb.datatype_name(datatype),
                    "ts": last_ts if ms else sent,
                    "is_historical": historical,
                    "stale": False,
                }
            )
        if unresolved:
            self._unresolved(t, scope, message, unresolved, birth=birth)
        return rows

    def _stale(
        self, t: Topic, device: str | None, scope: _Scope, when: datetime
    ) -> list[dict[str, Any]]:
        """Rows marking every known metric of a scope stale, with its last value."""
        return [
            {
                "group_id": t.group,
                "edge_node_id": t.edge,
                "device_id": device,
                "metric": name,
                "value": m.value,
                "datatype": m.type_name,
                "ts": when,
                "is_historical": False,
                "stale": True,
            }
            for name, m in scope.metrics.items()
        ]

    def _unresolved(
        self, t: Topic, scope: _Scope, message: Any, metrics: list[Any], *, birth: bool
    ) -> None:
        kind = "DBIRTH" if t.device is not None else "NBIRTH"
        if birth:
            why = f"a {kind} must name every metric"
        elif scope.born:
            why = f"the {kind} of {t.label} did not declare it"
        else:
            why = f"no {kind} of {t.label} seen since the subscription started"
        if birth:  # asking again would bring the same birth
            then = "the edge node must send its births with metric names"
        elif self._rebirth(t.node, f"unknown metric aliases of {t.label}"):
            then = "a rebirth was asked for"
        else:
            then = self._no_rebirth()
        for m in metrics:
            alias = f"alias {m.alias}" if m.HasField("alias") else "no name and no alias"
            self._refuse(t, message, m, f"metric with {alias} of {t.label}: {why}; {then}")
        now = time.monotonic()
        if now - scope.told >= TELL_EVERY_S:
            scope.told = now
            self._event(
                "sparkplug.unknown_alias",
                f"{t.label}: {len(metrics)} metric(s) sent by alias could not be named "
                f"({why}) and went to quarantine; {then}",
                level="warning",
                details={"aliases": [m.alias for m in metrics][:50]},
            )

    def _refuse(self, t: Topic, message: Any, metric: Any, reason: str) -> None:
        if self.sink is not None:
            raw = {"topic": t.topic, "seq": message.seq, "metric": spb.as_json(metric)}
            self.sink.put([], raw=raw, error=reason)

    # -- sequence numbers and rebirths ---------------------------------------------------
    def _node(self, t: Topic) -> _Node:
        node = self.nodes.get(t.node)
        if node is None:
            node = self.nodes[t.node] = _Node()
        return node

    def _sequence(self, node: _Node, t: Topic, message: Any, sent: datetime) -> None:
        if not message.HasField("seq"):
            return
        seq, last, start = message.seq, node.seq, node.last
        node.seq, node.last = seq, sent
        if last is None or seq in (last, (last + 1) % 256):  # a repeat is no gap
            return
        due = (last + 1) % 256
        asked = self._rebirth(t.node, f"sequence gap on {t.label}")
        reason = (
            f"edge node {t.group}/{t.edge}: seq {seq} arrived where {due} was due, "
            f"{(seq - due) % 256} message(s) lost; "
            + ("a rebirth was asked for" if asked else self._no_rebirth())
        )
        if self.sink is not None:
            start = min(start or sent, sent)
            self.sink.gap(start, sent, reason)

    def _rebirth(self, node: tuple[str, str], why: str, *, tell: bool = True) -> bool:
        """Ask an edge node to publish its births again; whether the request went out
        (now or in the last ``REBIRTH_EVERY_S``)."""
        if self.publish is None:
            return False
        now = time.monotonic()
        if now - self._asked.get(node, -math.inf) < REBIRTH_EVERY_S:
            return True
        group, edge = node
        topic = f"{NAMESPACE}/{group}/NCMD/{edge}"
        if not self.publish(topic, spb.rebirth_command(int(time.time() * 1000))):
            log.warning("%s: rebirth request to %s not sent", self.source_id, topic)
            return False
        self._asked[node] = now
        if tell:
            self._event(
                "sparkplug.rebirth",
                f"asked edge node {group}/{edge} for a rebirth ({why})",
                details={"topic": topic},
            )
        return True

    @staticmethod
    def _no_rebirth() -> str:
        return "rebirth requests are off (sparkplug_rebirth: false)"

    def _event(self, event: str, message: str, *, level: str = "info", details: Any = None) -> None:
        """An event for the source's event log (which also logs it)."""
        if self.sink is not None:
            self.sink.event(event, message, level=level, details=details)
        else:
            log.debug("%s: %s", self.source_id, message)

    # -- discovery ---------------------------------------------------------------------------
    @staticmethod
    def describe(records: list[Any]) -> list[FieldInfo]:
        """The rows' fields: as seen in ``records``, else as every Sparkplug row has them."""
        if records:
            return describe_records(records)
        return [FieldInfo(name, kind, [], nullable) for name, kind, nullable in FIELDS]


def _bd_seq(message: Any) -> int | None:
    """The ``bdSeq`` metric of an NBIRTH or NDEATH (None: absent or unreadable)."""
    for m in message.metrics:
        if m.name == BD_SEQ:
            try:
                value = spb.value_of(m, m.datatype or 4)
            except ValueError:
                return None
            return value if isinstance(value, int) else None
    return None


def _raw_bytes(topic: str, payload: bytes) -> dict[str, Any]:
    """What quarantine keeps of a message that is no Sparkplug payload: JSON-safe."""
    return {"topic": topic, "payload_base64": base64.b64encode(payload[:65536]).decode()}
