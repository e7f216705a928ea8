"""The subscription of an OPC UA source, and the history read that fills what it missed.

A session connects, creates one subscription (publishing interval), monitors every
configured node (sampling interval, queue size), fills the time since the last stored
change of each node from the server's history, and then stays live until ``stop``. A
lost server is noticed by ``check_connection``; a new session starts after a back-off
from 1 s up to 30 s (from 1 s again after a session that stayed up for half a minute),
and the source's ``last_error`` says so meanwhile.

**Resuming.** The stream's state (``Sink.put(state=...)``) is the newest source timestamp
handed over per node, ``{"last_source_timestamp": {node_id: ISO text}}``. The realtime
writer commits it with the rows it covers; the subscription reads it back
(``Sink.state()``) when it starts — after a restart of factorysync or a handover to
another worker — and keeps it in memory across reconnects.

**History backfill.** After monitoring the nodes, a session reads, for every node with a
last timestamp, the raw history (HistoryRead, ``ReadRawModifiedDetails``) from that
timestamp on, in pages of ``HISTORY_PAGE`` values, and hands the values over in time
order. Live changes that arrive meanwhile are handed over at once, but the node's state
moves past them only once its history is read: a crash in between reads the history
again rather than skipping it. Monitoring before reading leaves no hole between the two:
a change is in the history read, or live, or both. A change handed over twice (the first
value of a page, a value both read and received) has the same node and source timestamp
both times, which the mapping's key merges: the key of a time series must hold both.

**Gaps.** A node whose access level lacks HistoryRead, or whose history the server
refuses to read, cannot be filled: the range from its last timestamp to the start of the
session is recorded as a gap (``Sink.gap``), one per session for all such nodes. So are
changes older than ``history_backfill_max_h``, and every missed range when
``history_backfill`` is off.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from factorysync.connectors.base import Sink
from factorysync.connectors.opcua import OpcUaConfig, asyncua, change_record, connect
from factorysync.errors import ConnectorError
from factorysync.retry import Reconnects

log = logging.getLogger("factorysync.connectors.opcua")
MAX_BACKOFF_S = 30.0
STATE_KEY = "last_source_timestamp"
# Values per node and HistoryRead request; servers may send fewer per page.
HISTORY_PAGE = 1000
# Attributes per Read request (access levels of the nodes to fill).
READS_PER_REQUEST = 1000
# AccessLevel / UserAccessLevel bit: the value's history can be read.
HISTORY_READ_BIT = 1 << 2
# A HistoryRead failing with one of these means the node has no history to read; any
# other failure (a lost connection, a timeout) ends the session, which then tries again.
NO_HISTORY = (
    "BadHistoryOperationUnsupported",
    "BadHistoryOperationInvalid",
    "BadServiceUnsupported",
    "BadNotImplemented",
    "BadNotSupported",
    "BadNotReadable",
    "BadUserAccessDenied",
    "BadNodeIdUnknown",
)
# Nodes named in a gap's reason at most.
NAMED_NODES = 10


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Subscription:
    """One source's subscription across sessions (see the module docstring)."""

    def __init__(self, cfg: OpcUaConfig, auth: dict[str, Any], source_id: str, sink: Sink):
        self.cfg = cfg
        self.auth = auth
        self.source_id = source_id
        self.sink = sink
        self.fields = {n.node_id: n.field for n in cfg.nodes}
        # Per node: the newest source timestamp handed over, as a time and as stored.
        self.last: dict[str, datetime] = {}
        self._last_text: dict[str, str] = {}
        # Nodes whose history is being read -> the newest live timestamp seen meanwhile.
        self.filling: dict[str, datetime | None] = {}

    # -- state -----------------------------------------------------------------------
    def resume(self, state: dict[str, Any]) -> None:
        """Start from a stored state (nodes no longer configured are left out)."""
        found = state.get(STATE_KEY)
        if not isinstance(found, dict):
            return
        for node_id, text in found.items():
            if node_id not in self.fields or not isinstance(text, str):
                continue
            try:
                self._advance(node_id, datetime.fromisoformat(text))
            except ValueError:
                log.warning("%s: stored timestamp %r of %s ignored", self.source_id, text, node_id)

    def _advance(self, node_id: str, when: datetime | None) -> None:
        when = utc(when)
        if when is not None and (node_id not in self.last or when > self.last[node_id]):
            self.last[node_id] = when
            self._last_text[node_id] = when.isoformat()

    def _state(self) -> dict[str, Any]:
        return {STATE_KEY: dict(self._last_text)}

    # -- sessions --------------------------------------------------------------------
    async def run(self, stop: threading.Event) -> None:
        self.resume(self.sink.state())
        waits = Reconnects(max_s=MAX_BACKOFF_S)
        while not stop.is_set():
            began = time.monotonic()
            try:
                await self._session(stop)
            except Exception as exc:
                if stop.is_set():
                    break
                delay = waits.after(time.monotonic() - began)
                message = str(exc) if isinstance(exc, ConnectorError) else repr(exc)
                message = f"OPC UA {self.cfg.endpoint}: {message}; reconnecting in {delay:.0f} s"
                log.warning("%s: %s", self.source_id, message)
                self.sink.status(message)
                await _sleep(delay, stop)
            else:
                waits.after(float("inf"))  # the session ended by itself: start over

    async def _session(self, stop: threading.Event) -> None:
        client = await connect(self.cfg, self.auth)
        started = datetime.now(UTC)
        # Set before monitoring: the first live values must not move these nodes' state.
        self.filling = dict.fromkeys(self.last)
        try:
            sub = await client.create_subscription(self.cfg.publishing_interval_ms, self)
            nodes = [client.get_node(n.node_id) for n in self.cfg.nodes]
            await sub.subscribe_data_change(
                nodes,
                queuesize=self.cfg.queue_size,
                sampling_interval=self.cfg.sampling_interval_ms,
            )
            self.sink.status(None, subscribed=self.cfg.endpoint)
            await self._backfill(client, started, stop)
            while not stop.is_set():
                await asyncio.sleep(0.2)
                await client.check_connection()
        finally:
            self.filling = {}
            try:
                await asyncio.wait_for(client.disconnect(), 5)
            except Exception as exc:  # the server may be gone already
                log.debug("%s: disconnect: %s", self.source_id, exc)

    # -- history backfill ------------------------------------------------------------
    async def _backfill(self, client: Any, started: datetime, stop: threading.Event) -> None:
        """Fill every node in ``filling`` from history; record a gap for those that
        cannot be filled."""
        if not self.filling:
            return
        unread: dict[str, str] = {}  # node -> why its missed changes cannot be read
        since = {node_id: self.last[node_id] for node_id in self.filling}
        if not self.cfg.history_backfill:
            unread = dict.fromkeys(self.filling, "history_backfill is off")
        else:
            readable = await self._history_readable(client, list(self.filling))
            horizon = started - timedelta(hours=self.cfg.history_backfill_max_h)
            too_old = [n for n in readable if since[n] < horizon]
            if too_old:
                self._gap(
                    min(since[n] for n in too_old),
                    horizon,
                    too_old,
                    f"older than history_backfill_max_h ({self.cfg.history_backfill_max_h:g} h)",
                )
            for node_id in list(self.filling):
                if stop.is_set():
                    return
                if node_id not in readable:
                    unread[node_id] = (
                        "the server keeps no history (access level without HistoryRead)"
                    )
                    continue
                why = await self._fill(client, node_id, max(since[node_id], horizon), stop)
                if why is not None:
                    unread[node_id] = why
                elif not stop.is_set():
                    self._filled(node_id)
        for reason in sorted(set(unread.values())):
            nodes = [n for n, why in unread.items() if why == reason]
            self._gap(min(self.last[n] for n in nodes), started, nodes, reason)
            for node_id in nodes:
                self._filled(node_id)

    def _filled(self, node_id: str) -> None:
        """The node's history is read: its state may move past the live values."""
        self._advance(node_id, self.filling.pop(node_id, None))

    def _gap(self, start: datetime, end: datetime, nodes: list[str], reason: str) -> None:
        names = [self.fields[n] for n in sorted(nodes)]
        named = ", ".join(names[:NAMED_NODES])
        if len(names) > NAMED_NODES:
            named += f" and {len(names) - NAMED_NODES} more"
        message = f"OPC UA {self.cfg.endpoint}: changes of {named} not read: {reason}"
        end = max(start, end)  # a device clock ahead of this one: from its last change on
        log.warning("%s: %s (%s to %s)", self.source_id, message, start, end)
        self.sink.gap(start, end, message)

    async def _history_readable(self, client: Any, node_ids: list[str]) -> set[str]:
        """The nodes whose access level (for this session's user) allows HistoryRead."""
        ua = asyncua().ua
        readable: set[str] = set()
        for first in range(0, len(node_ids), READS_PER_REQUEST):
            chunk = node_ids[first : first + READS_PER_REQUEST]
            params = ua.ReadParameters()
            params.NodesToRead = [
                ua.ReadValueId(
                    NodeId=ua.NodeId.from_string(n), AttributeId=ua.AttributeIds.UserAccessLevel
                )
                for n in chunk
            ]
            for node_id, found in zip(chunk, await client.uaclient.read(params), strict=False):
                value = found.Value.Value if found.Value is not None else None
                if not found.StatusCode.is_good() or not isinstance(value, int):
                    continue
                if value & HISTORY_READ_BIT:
                    readable.add(node_id)
        return readable

    async def _fill(
        self, client: Any, node_id: str, since: datetime, stop: threading.Event
    ) -> str | None:
        """Hand over the node's history from ``since`` on, page by page; None when read to
        the end, else why it cannot be read."""
        ua = asyncua().ua
        start, point = since, None
        while not stop.is_set():
            params = ua.HistoryReadParameters()
            params.HistoryReadDetails = ua.ReadRawModifiedDetails(
                IsReadModified=False,
                StartTime=start,
                EndTime=ua.get_win_epoch(),  # unspecified: up to the newest value
                NumValuesPerNode=HISTORY_PAGE,
                ReturnBounds=False,
            )
            params.TimestampsToReturn = ua.TimestampsToReturn.Both
            params.NodesToRead = [
                ua.HistoryReadValueId(
                    NodeId=ua.NodeId.from_string(node_id), ContinuationPoint=point
                )
            ]
            try:
                result = (await client.uaclient.history_read(params))[0]
            except ua.UaStatusCodeError as exc:
                name = ua.StatusCode(exc.code).name
                if name in NO_HISTORY:
                    return f"the server refused to read the history ({name})"
                raise
            status = result.StatusCode
            if status.is_bad() and status.name != "BadNoData":
                return f"the server refused to read the history ({status.name})"
            data = result.HistoryData
            values = list(getattr(data, "DataValues", None) or [])
            newest = self._hand_over(node_id, values)
            point = result.ContinuationPoint or None
            if point is not None:
                continue
            if len(values) < HISTORY_PAGE:
                return None
            # A full page without a continuation point (servers that page by count
            # only): go on from its newest value, which is read again and merges.
            if newest is None or newest < start:
                return "the server's history pages do not follow the time asked for"
            # All values of a full page at one instant: past it (they merge by key anyway).
            start = newest if newest > start else start + timedelta(microseconds=1)
        return None

    def _hand_over(self, node_id: str, values: list[Any]) -> datetime | None:
        """Put one page of history, one message per value; the last carries the state.
        Returns the newest source timestamp of the page."""
        field = self.fields.get(node_id, node_id)
        records = [change_record(self.cfg, node_id, field, v) for v in values]
        newest: datetime | None = None
        for value in values:
            when = utc(value.SourceTimestamp)
            if when is not None and (newest is None or when > newest):
                newest = when
        self._advance(node_id, newest)
        for i, record in enumerate(records):
            last = i == len(records) - 1
            self.sink.put([record], raw=record, state=self._state() if last else None)
        return newest

    # -- asyncua's subscription callbacks -------------------------------------------
    def datachange_notification(self, node: Any, _val: Any, data: Any) -> None:
        node_id = node.nodeid.to_string()
        field = self.fields.get(node_id, node_id)
        value = data.monitored_item.Value
        record = change_record(self.cfg, node_id, field, value)
        when = utc(value.SourceTimestamp)
        if node_id in self.filling:
            seen = self.filling[node_id]
            if when is not None and (seen is None or when > seen):
                self.filling[node_id] = when
        else:
            self._advance(node_id, when)
        self.sink.put([record], raw=record, state=self._state())

    def status_change_notification(self, status: Any) -> None:
        log.warning("%s: subscription status %s", self.source_id, status)


async def _sleep(seconds: float, stop: threading.Event) -> None:
    end = asyncio.get_running_loop().time() + seconds
    while not stop.is_set() and asyncio.get_running_loop().time() < end:
        await asyncio.sleep(0.1)
