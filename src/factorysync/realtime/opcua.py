"""The OPC UA subscriber of one source, feeding its micro-batch writer.

An asyncio loop in a thread of its own connects, creates one subscription (publishing
interval) and monitors every configured node (sampling interval, queue size). Each data
change becomes a record with the value, its source and server timestamps and its status
code. A lost server is noticed by asyncua's watchdog (``check_connection``); the
subscriber then connects again with back-off from 1 s up to 30 s and the source's
``last_error`` in the registry says so meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from factorysync.config import ConnectionDecl
from factorysync.connectors.opcua import OpcUaConfig, change_record, connect
from factorysync.errors import ConnectorError
from factorysync.realtime.writer import Incoming, MicroBatchWriter, report_status
from factorysync.security.secrets import resolve_env_refs

log = logging.getLogger("factorysync.realtime.opcua")
MAX_BACKOFF_S = 30.0


class _Handler:
    """asyncua's subscription callback: one Incoming per data change."""

    def __init__(self, subscriber: OpcUaSubscriber) -> None:
        self.subscriber = subscriber

    def datachange_notification(self, node: Any, _val: Any, data: Any) -> None:
        s = self.subscriber
        node_id = node.nodeid.to_string()
        field = s.fields.get(node_id, node_id)
        record = change_record(s.cfg, node_id, field, data.monitored_item.Value)
        s.received += 1
        s.writer.put(Incoming([record], raw=record))

    def status_change_notification(self, status: Any) -> None:
        log.warning("%s: subscription status %s", self.subscriber.source_id, status)


class OpcUaSubscriber:
    def __init__(self, source_id: str, connection: ConnectionDecl, writer: MicroBatchWriter):
        self.source_id = source_id
        self.cfg = OpcUaConfig.model_validate(connection.connection_config)
        self.auth = resolve_env_refs(
            connection.authentication_config, where=f"{connection.connection_name} auth"
        )
        self.writer = writer
        self.fields = {n.node_id: n.field for n in self.cfg.nodes}
        self.connected = threading.Event()
        self.received = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run()), name=f"opcua-{self.source_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
        self.writer.stop()

    async def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                await self._session()
                delay = 1.0
            except Exception as exc:
                self.connected.clear()
                if self._stop.is_set():
                    break
                message = str(exc) if isinstance(exc, ConnectorError) else repr(exc)
                message = f"OPC UA {self.cfg.endpoint}: {message}; reconnecting in {delay:.0f} s"
                log.warning("%s: %s", self.source_id, message)
                report_status(self.writer.store, self.source_id, message)
                await self._sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    async def _sleep(self, seconds: float) -> None:
        end = asyncio.get_running_loop().time() + seconds
        while not self._stop.is_set() and asyncio.get_running_loop().time() < end:
            await asyncio.sleep(0.1)

    async def _session(self) -> None:
        client = await connect(self.cfg, self.auth)
        try:
            sub = await client.create_subscription(self.cfg.publishing_interval_ms, _Handler(self))
            nodes = [client.get_node(n.node_id) for n in self.cfg.nodes]
            await sub.subscribe_data_change(
                nodes,
                queuesize=self.cfg.queue_size,
                sampling_interval=self.cfg.sampling_interval_ms,
            )
            self.connected.set()
            report_status(self.writer.store, self.source_id, None, subscribed=self.cfg.endpoint)
            while not self._stop.is_set():
                await asyncio.sleep(0.2)
                await client.check_connection()
        finally:
            self.connected.clear()
            try:
                await asyncio.wait_for(client.disconnect(), 5)
            except Exception as exc:  # the server may be gone already
                log.debug("%s: disconnect: %s", self.source_id, exc)
