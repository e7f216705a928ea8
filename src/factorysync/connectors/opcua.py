"""OPC UA sources: data-change subscriptions on a list of nodes.

This module holds the ``connection_config`` model, the record shape of one value change,
and the connector's ``check`` (connect, find every node), ``discover`` (read each node
once and describe the record fields), ``browse`` (the variables of the server's address
space, for choosing nodes: :mod:`factorysync.connectors.opcua_browse`) and ``subscribe``
(for the realtime service: :mod:`factorysync.connectors.opcua_subscription`).

The subscription: an asyncio loop in the realtime service's thread connects, creates one
subscription (publishing interval) and monitors every configured node (sampling
interval, queue size); each data change becomes one record. A lost server is noticed by
asyncua's watchdog (``check_connection``); the subscription then connects again with
back-off from 1 s up to 30 s, and the source's ``last_error`` in the registry says so
meanwhile. After a reconnect, a restart or a handover to another worker, the changes
missed meanwhile are read from the server's history before live values (where the
server keeps none, the time range is recorded as a gap).

A time series of value changes is keyed by node and source timestamp: the mapping's
``primary_key`` must hold both (e.g. ``[field, source_timestamp]``), so that a change
read from history and received live lands once.

``connection_config``::

    endpoint: opc.tcp://plc-line-a:4840          # required
    security_mode: SignAndEncrypt                # None | Sign | SignAndEncrypt
    security_policy: Basic256Sha256              # with certificate_file, private_key_file
    nodes:                                       # node id -> target field name
      - {node_id: "ns=2;s=Line1.Spindle.Speed", field: spindle_speed}
      - {node_id: "ns=2;i=1002", field: temperature}
    sampling_interval_ms: 100
    publishing_interval_ms: 200
    fields: {machine_id: M-101}                  # constants added to every record
    history_backfill: true                       # read what a reconnect missed

``authentication_config``: ``username``, ``password``.

One record per value change::

    {"node_id": "ns=2;i=1002", "field": "temperature", "value": 71.5,
     "source_timestamp": "2026-01-05T08:00:00.120000+00:00", "server_timestamp": ...,
     "status": "Good", "status_code": 0, "machine_id": "M-101"}
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factorysync.config.names import snake_case
from factorysync.connectors.base import (
    Batch,
    Connector,
    FieldInfo,
    ReadRequest,
    Sink,
    SourceKind,
)
from factorysync.errors import ConfigError, ConnectorFatal, ConnectorRetriable

INSTALL = "pip install 'factorysync[opcua]'"
log = logging.getLogger("factorysync.connectors.opcua")


def asyncua() -> Any:
    """The asyncua package (imported on first use)."""
    try:
        import asyncua as module
    except ImportError:
        raise ConfigError(f"OPC UA sources need the asyncua package: {INSTALL}") from None
    return module


class NodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_id: str = Field(
        min_length=1,
        description="OPC UA node id of the value to monitor, e.g. ns=2;i=1002 or "
        "ns=2;s=Line1.Spindle.Speed.",
    )
    field: str = Field(
        min_length=1,
        max_length=63,
        description="Name for this node, written in the field of each of its change "
        "records (e.g. spindle_speed), so that mappings can tell nodes apart; unique "
        "within nodes.",
    )

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, v: str) -> str:
        try:
            return str(asyncua().ua.NodeId.from_string(v).to_string())
        except ConfigError:
            raise
        except Exception:
            raise ValueError(
                f"node_id {v!r} is not an OPC UA node id "
                "(e.g. 'ns=2;i=1002' or 'ns=2;s=Line1.Speed')"
            ) from None


class OpcUaConfig(BaseModel):
    """``connection_config`` of an OPC UA source."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(
        title="Server endpoint",
        examples=["opc.tcp://plc-line-a:4840"],
        json_schema_extra={"group": "connection"},
        min_length=1,
        description="Endpoint URL of the server: opc.tcp://host:port/path, e.g. "
        "opc.tcp://plc-line-a:4840.",
    )
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = Field(
        title="Security mode",
        default="None",
        description="Message security: None, Sign or SignAndEncrypt. Sign and "
        "SignAndEncrypt need security_policy, certificate_file and private_key_file.",
    )
    security_policy: Literal[
        "None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"
    ] = Field(
        default="None",
        description="Security policy, with a security_mode other than None: "
        "Basic256Sha256, Aes128Sha256RsaOaep or Aes256Sha256RsaPss; None without one.",
    )
    certificate_file: str | None = Field(
        default=None,
        description="Path of factorysync's client certificate (DER or PEM), which the "
        "server must trust; needed with security.",
    )
    private_key_file: str | None = Field(
        default=None,
        description="Path of the private key of certificate_file; needed with security.",
    )
    server_certificate_file: str | None = Field(
        default=None,
        description="Path of the server's certificate. Default: the certificate the "
        "server presents.",
    )
    nodes: list[NodeSpec] = Field(
        title="Nodes",
        json_schema_extra={"group": "connection"},
        min_length=1,
        description="Nodes to monitor, one or more: {node_id, field} objects, or bare node "
        "ids (ns=2;i=1002), whose field is then named after the identifier.",
    )
    sampling_interval_ms: float = Field(
        title="Sampling interval (ms)",
        examples=[100],
        default=100,
        ge=0,
        description="How often the server samples each node, in milliseconds; 0: as fast "
        "as the server can.",
    )
    publishing_interval_ms: float = Field(
        default=200,
        gt=0,
        description="How often the server sends the changes it collected, in milliseconds.",
    )
    queue_size: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Changes the server keeps per node between two publishes, so that "
        "fast changes are not lost.",
    )
    fields: dict[str, Any] = Field(
        default_factory=dict,
        description="Constant fields added to every record, e.g. {machine_id: M-101, line: A}.",
    )
    timeout_s: float = Field(
        title="Timeout (s)",
        examples=[10],
        default=10,
        gt=0,
        description="Seconds to wait for the server: to connect, and for each request.",
    )
    batch_rows: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Micro-batches: the waiting changes are written once this many wait "
        "(or after batch_ms).",
    )
    batch_ms: int = Field(
        default=200,
        ge=1,
        le=60_000,
        description="Micro-batches: milliseconds the oldest waiting change may wait "
        "before the batch is written.",
    )
    history_backfill: bool = Field(
        default=True,
        description="After a reconnect, a restart or a handover to another worker, read "
        "the changes missed meanwhile from the server's history (HistoryRead, nodes whose "
        "access level allows it) before live values. Where the server keeps no history, "
        "or with false, the missed time range is recorded as a gap.",
    )
    history_backfill_max_h: float = Field(
        default=168,
        gt=0,
        description="How far back, in hours, a history backfill reads at most; changes "
        "missed before that are recorded as a gap.",
    )

    @field_validator("nodes", mode="before")
    @classmethod
    def _bare_node_ids(cls, v: Any) -> Any:
        """A bare node id stands for itself, its field named after its identifier."""
        if not isinstance(v, list):
            return v
        return [
            {"node_id": n, "field": snake_case(n.rsplit("=", 1)[-1])} if isinstance(n, str) else n
            for n in v
        ]

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not v.startswith("opc.tcp://"):
            raise ValueError(f"endpoint {v!r} must start with opc.tcp://")
        return v

    @model_validator(mode="after")
    def _security(self) -> OpcUaConfig:
        if (self.security_mode == "None") != (self.security_policy == "None"):
            raise ValueError("security_mode and security_policy are both 'None' or neither is")
        if self.security_mode != "None" and not (self.certificate_file and self.private_key_file):
            raise ValueError(
                f"security_mode {self.security_mode!r} needs certificate_file and private_key_file"
            )
        names = [n.field for n in self.nodes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"field repeated in nodes: {', '.join(dup)}")
        return self

    def security_string(self) -> str | None:
        if self.security_mode == "None":
            return None
        parts = [self.security_policy, self.security_mode, self.certificate_file or ""]
        parts.append(self.private_key_file or "")
        if self.server_certificate_file:
            parts.append(self.server_certificate_file)
        return ",".join(parts)


def plain_value(value: Any) -> Any:
    """An OPC UA value as JSON-friendly data (timestamps as ISO text in UTC)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    text = getattr(value, "Text", None)  # LocalizedText
    if text is not None:
        return text
    return str(value)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def change_record(cfg: OpcUaConfig, node_id: str, field: str, data_value: Any) -> dict[str, Any]:
    """The record of one value change (see the module docstring)."""
    status = data_value.StatusCode
    return {
        **cfg.fields,
        "node_id": node_id,
        "field": field,
        "value": plain_value(data_value.Value.Value if data_value.Value is not None else None),
        "source_timestamp": iso(data_value.SourceTimestamp),
        "server_timestamp": iso(data_value.ServerTimestamp),
        "status": status.name if status is not None else "Good",
        "status_code": int(status.value) if status is not None else 0,
    }


async def connect(cfg: OpcUaConfig, auth: dict[str, Any]) -> Any:
    """A connected asyncua client, or a ConnectorError saying why not."""
    ua = asyncua()
    client = ua.Client(url=cfg.endpoint, timeout=cfg.timeout_s)
    if auth.get("username"):
        client.set_user(str(auth["username"]))
        client.set_password(str(auth.get("password") or ""))
    security = cfg.security_string()
    try:
        if security:
            await client.set_security_string(security)
        await client.connect()
    except TimeoutError:
        raise ConnectorRetriable(
            f"cannot reach OPC UA server {cfg.endpoint}: no answer within {cfg.timeout_s:g} s"
        ) from None
    except OSError as exc:
        raise ConnectorRetriable(f"cannot reach OPC UA server {cfg.endpoint}: {exc}") from None
    except ua.ua.UaStatusCodeError as exc:
        raise ConnectorFatal(f"OPC UA server {cfg.endpoint} refused: {exc}") from None
    return client


class OpcUaConnector(Connector):
    """Connection checks, field discovery and the subscription of OPC UA sources."""

    type_name = "opcua"
    config_model = OpcUaConfig
    source_types = (
        SourceKind(
            "opcua",
            "OPC UA",
            "UA",
            "amber",
            summary="Value changes of the variables of an OPC UA server (PLC, SCADA).",
        ),
    )
    auth_keys = ("username", "password")
    # Browsing needs no node chosen yet: a placeholder (Server/ServerStatus/CurrentTime).
    probe_defaults: ClassVar[dict[str, Any]] = {"nodes": ["i=2258"]}
    extra = "opcua"
    polls = False

    @classmethod
    def unpolled_reason(cls, source_id: str) -> str:
        return (
            f"source {source_id!r} is an OPC UA subscription: it is written continuously by "
            "the realtime service of 'factorysync run', not by one-off syncs"
        )

    streams = True

    @property
    def cfg(self) -> OpcUaConfig:
        assert isinstance(self.config, OpcUaConfig)
        return self.config

    async def _read_nodes(self) -> list[dict[str, Any]]:
        client = await connect(self.cfg, self.auth)
        try:
            records = []
            for spec in self.cfg.nodes:
                try:
                    value = await client.get_node(spec.node_id).read_data_value()
                except Exception as exc:
                    raise ConnectorFatal(
                        f"node {spec.node_id!r} ({spec.field}) cannot be read: {exc}"
                    ) from None
                records.append(change_record(self.cfg, spec.node_id, spec.field, value))
            return records
        finally:
            await client.disconnect()

    def _check(self) -> str:
        asyncio.run(self._read_nodes())
        return f"OPC UA server {self.cfg.endpoint}: {len(self.cfg.nodes)} node(s) readable"

    def discover(self, *, records_path: str | None = None, limit: int = 200) -> list[FieldInfo]:
        from factorysync.connectors.base import describe_records

        return describe_records(asyncio.run(self._read_nodes())[:limit])

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        raise ConnectorFatal(self.unpolled_reason(self.context.source_id))

    def subscribe(self, sink: Sink, stop: threading.Event) -> None:
        """Monitor the nodes and hand every data change to ``sink`` until ``stop``; after
        a reconnect, a restart or a handover, fill what was missed from history first."""
        from factorysync.connectors.opcua_subscription import Subscription

        asyncio.run(Subscription(self.cfg, self.auth, self.context.source_id, sink).run(stop))

    def key_hint(self) -> list[str] | None:
        """A value change is one node's value at one source time."""
        return ["field", "source_timestamp"]

    def browse(
        self,
        *,
        start: str = "Objects",
        depth: int = 3,
        max_nodes: int = 1000,
        max_seconds: float = 60,
    ) -> dict[str, Any]:
        """The variables under ``start`` down to ``depth`` levels (see
        :func:`factorysync.connectors.opcua_browse.browse`)."""
        from factorysync.connectors.opcua_browse import browse

        return asyncio.run(
            browse(
                self.cfg,
                self.auth,
                start=start,
                depth=depth,
                max_nodes=max_nodes,
                max_seconds=max_seconds,
            )
        )
