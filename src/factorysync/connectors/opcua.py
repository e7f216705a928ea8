"""OPC UA sources: data-change subscriptions on a list of nodes.

This module holds the ``connection_config`` model, the record shape of one value change,
and the connector's ``check`` (connect, find every node), ``discover`` (read each node
once and describe the record fields) and ``subscribe`` (for the realtime service).

The subscription: an asyncio loop in the realtime service's thread connects, creates one
subscription (publishing interval) and monitors every configured node (sampling
interval, queue size); each data change becomes one record. A lost server is noticed by
asyncua's watchdog (``check_connection``); the subscription then connects again with
back-off from 1 s up to 30 s, and the source's ``last_error`` in the registry says so
meanwhile.

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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factorysync.config.mapping import snake_case
from factorysync.connectors.base import (
    Batch,
    Connector,
    FieldInfo,
    ReadRequest,
    Sink,
    SourceKind,
)
from factorysync.errors import ConfigError, ConnectorError, ConnectorFatal, ConnectorRetriable

INSTALL = "pip install 'asyncua>=1.1'"
MAX_BACKOFF_S = 30.0
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

    node_id: str = Field(min_length=1)
    field: str = Field(min_length=1, max_length=63)

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

    endpoint: str = Field(min_length=1)
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    security_policy: Literal[
        "None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"
    ] = "None"
    certificate_file: str | None = None
    private_key_file: str | None = None
    server_certificate_file: str | None = None
    nodes: list[NodeSpec] = Field(min_length=1)
    sampling_interval_ms: float = Field(default=100, ge=0)
    publishing_interval_ms: float = Field(default=200, gt=0)
    queue_size: int = Field(default=100, ge=1, le=100_000)
    fields: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float = Field(default=10, gt=0)
    batch_rows: int = Field(default=500, ge=1, le=100_000)
    batch_ms: int = Field(default=200, ge=1, le=60_000)

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
    except (OSError, TimeoutError) as exc:
        raise ConnectorRetriable(f"cannot reach OPC UA server {cfg.endpoint}: {exc}") from None
    except ua.ua.UaStatusCodeError as exc:
        raise ConnectorFatal(f"OPC UA server {cfg.endpoint} refused: {exc}") from None
    return client


class OpcUaConnector(Connector):
    """Connection checks, field discovery and the subscription of OPC UA sources."""

    type_name = "opcua"
    config_model = OpcUaConfig
    source_types = (SourceKind("opcua", "OPC UA", "UA", "amber"),)
    extra = "opcua"
    polls = False
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
        raise ConnectorFatal(
            f"source {self.context.source_id!r} is an OPC UA subscription: it is written "
            "continuously by the realtime service of 'factorysync run', not by one-off syncs"
        )

    def subscribe(self, sink: Sink, stop: threading.Event) -> None:
        """Monitor the nodes and hand every data change to ``sink`` until ``stop``."""
        asyncio.run(_Subscription(self.cfg, self.auth, self.context.source_id, sink).run(stop))


class _Subscription:
    def __init__(self, cfg: OpcUaConfig, auth: dict[str, Any], source_id: str, sink: Sink):
        self.cfg = cfg
        self.auth = auth
        self.source_id = source_id
        self.sink = sink
        self.fields = {n.node_id: n.field for n in cfg.nodes}

    async def run(self, stop: threading.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = 1.0
            except Exception as exc:
                if stop.is_set():
                    break
                message = str(exc) if isinstance(exc, ConnectorError) else repr(exc)
                message = f"OPC UA {self.cfg.endpoint}: {message}; reconnecting in {delay:.0f} s"
                log.warning("%s: %s", self.source_id, message)
                self.sink.status(message)
                await _sleep(delay, stop)
                delay = min(delay * 2, MAX_BACKOFF_S)

    async def _session(self, stop: threading.Event) -> None:
        client = await connect(self.cfg, self.auth)
        try:
            sub = await client.create_subscription(self.cfg.publishing_interval_ms, self)
            nodes = [client.get_node(n.node_id) for n in self.cfg.nodes]
            await sub.subscribe_data_change(
                nodes,
                queuesize=self.cfg.queue_size,
                sampling_interval=self.cfg.sampling_interval_ms,
            )
            self.sink.status(None, subscribed=self.cfg.endpoint)
            while not stop.is_set():
                await asyncio.sleep(0.2)
                await client.check_connection()
        finally:
            try:
                await asyncio.wait_for(client.disconnect(), 5)
            except Exception as exc:  # the server may be gone already
                log.debug("%s: disconnect: %s", self.source_id, exc)

    # -- asyncua's subscription callbacks -------------------------------------------
    def datachange_notification(self, node: Any, _val: Any, data: Any) -> None:
        node_id = node.nodeid.to_string()
        field = self.fields.get(node_id, node_id)
        record = change_record(self.cfg, node_id, field, data.monitored_item.Value)
        self.sink.put([record], raw=record)

    def status_change_notification(self, status: Any) -> None:
        log.warning("%s: subscription status %s", self.source_id, status)


async def _sleep(seconds: float, stop: threading.Event) -> None:
    end = asyncio.get_running_loop().time() + seconds
    while not stop.is_set() and asyncio.get_running_loop().time() < end:
        await asyncio.sleep(0.1)
