"""A stream's state committed with its rows, and the OPC UA history backfill built on it.

At the writer: the state a message carries is stored by the flush that commits it, in
the same transaction, and read back by the sink of a later stream. Against a real asyncua
server that keeps its history in SQLite (so that a restarted server still has it): a
restart of the server mid-stream, a restart of factorysync and a handover between two
workers lose no sample and duplicate none; a server without history gets the gap
recorded.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from factorysync.engine.state import CONNECTOR_KEY, load_state
from factorysync.realtime.service import GAP_EVENT, RealtimeService
from factorysync.realtime.stream import Feed
from factorysync.realtime.writer import Incoming, MicroBatchWriter
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import infolog
from factorysync.store.store import Store
from factorysync.store.targets import target_table
from tests.engine.test_workers import running, start_worker, stop
from tests.realtime.conftest import free_port, mqtt_source, register
from tests.realtime.test_opcua import opcua_source, signals
from tests.realtime.test_scaleout import LEASE, holders, pid_of, realtime_env
from tests.waiting import PATIENCE, wait_until

asyncua = pytest.importorskip("asyncua")
ua = asyncua.ua
from asyncua.server.history_sql import HistorySQLite  # noqa: E402

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
PG_ONLY = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
SOURCE = "m101-opcua"
FIELD = {"speed": "spindle_speed", "state": "state"}


# -- the writer ----------------------------------------------------------------------
def writer_for(store: Store, **mapping: Any) -> MicroBatchWriter:
    register(
        store,
        mqtt_source(
            "press-line",
            "127.0.0.1",
            1883,
            ["plant/+/status"],
            table="press_values",
            mapping={
                "primary_key": ["machine_id", "seq"],
                "fields": {"machine_id": "machine_id", "seq": {"from": "seq", "type": "integer"}},
                **mapping,
            },
        ),
    )
    writer = MicroBatchWriter(store, "press-line", window_s=3600)
    writer.open()
    return writer


def msg(seq: int, state: dict[str, Any] | None = None) -> Incoming:
    return Incoming([{"machine_id": "P-1", "seq": seq}], state=state)


def stored_state(store: Store, source_id: str) -> Any:
    with store.connect() as conn:
        return load_state(conn, source_id, 0, CONNECTOR_KEY)


def press_rows(store: Store) -> list[int]:
    with store.connect() as conn:
        t = target_table(conn, "press_values")
        return sorted(conn.execute(select(t.c.seq)).scalars())


def test_the_state_of_the_last_message_is_committed_with_its_rows(store: Store) -> None:
    writer = writer_for(store)
    feed = Feed(writer, lambda: False)
    try:
        assert feed.state() == {}
        writer.flush([msg(1, {"upto": 1}), msg(2, {"upto": 2}), msg(3)])
        # The last state carried; a message without one leaves it as it is.
        assert stored_state(store, "press-line") == {"upto": 2}
        writer.flush([msg(4)])
        assert feed.state() == {"upto": 2}
        writer.flush([msg(5, {"upto": 5, "nested": {"a": [1, 2]}})])
        assert press_rows(store) == [1, 2, 3, 4, 5]
    finally:
        writer.stop()
    # Another writer of the source (a restart, another worker) reads what was committed.
    other = MicroBatchWriter(store, "press-line", window_s=3600)
    other.open()
    try:
        assert Feed(other, lambda: False).state() == {"upto": 5, "nested": {"a": [1, 2]}}
    finally:
        other.stop()


def test_a_failed_flush_stores_neither_rows_nor_state(store: Store) -> None:
    writer = writer_for(
        store, validate=[{"field": "seq", "rule": "min", "value": 0}], on_invalid="fail"
    )
    try:
        writer.flush([msg(1, {"upto": 1})])
        with pytest.raises(Exception, match="seq"):
            writer.flush([msg(2, {"upto": 2}), msg(-3, {"upto": 3})])
        assert stored_state(store, "press-line") == {"upto": 1}
        assert press_rows(store) == [1]
    finally:
        writer.stop()


# -- an OPC UA server that keeps history -------------------------------------------------
class HistoryServer:
    """An asyncua server on loopback (its own event loop thread) with the nodes of
    :func:`tests.realtime.test_opcua.opcua_source`, ``speed`` and ``state``; with
    ``history``, a SQLite file in which both keep every change, across restarts."""

    def __init__(self, history: Path | None) -> None:
        self.history = history
        self.port = free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/factorysync/"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nodes: dict[str, Any] = {}
        self.server: Any = None
        self.lock = threading.Lock()  # held while a value is written
        self.count = 0

    def call(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(PATIENCE)

    async def _start(self) -> None:
        server = asyncua.Server()
        if self.history is not None:
            server.iserver.history_manager.set_storage(HistorySQLite(str(self.history)))
        await server.init()
        server.set_endpoint(self.endpoint)
        ns = await server.register_namespace("urn:factorysync:test")
        machine = await server.nodes.objects.add_object(ua.NodeId(1, ns), "M101")
        # Numeric node ids: asyncua's SQLite history names a table after each node.
        self.nodes["speed"] = await machine.add_variable(ua.NodeId(1001, ns), "Speed", 0.0)
        self.nodes["state"] = await machine.add_variable(ua.NodeId(2001, ns), "State", "idle")
        await server.start()
        if self.history is not None:
            await server.historize_node_data_change(list(self.nodes.values()), period=None)
        self.server = server

    def start(self) -> None:
        """Start; again after ``stop_server`` on the same port, which clients reconnect to."""
        first = not self.nodes
        for attempt in range(5):
            try:
                self.call(self._start())
                return
            except OSError:  # the port found free was taken meanwhile: another one
                if not first or attempt == 4:
                    raise
                self.port = free_port()
                self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/factorysync/"

    def stop_server(self) -> None:
        with self.lock:
            self.call(self.server.stop())
            self.server = None

    def close(self) -> None:
        if self.server is not None:
            self.stop_server()
        self.call(_cancel_the_rest())  # what a stopped server left running (its sessions)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def node_id(self, name: str) -> str:
        return str(self.nodes[name].nodeid.to_string())

    def tick(self) -> None:
        """One change of ``speed`` (and of ``state`` every third), stamped now; with
        history, returns once the history holds it (asyncua's history keeps the newest
        change of a node per internal publish, so changes faster than that would
        coalesce there, not in the subscription under test)."""
        with self.lock:
            if self.server is None:
                return
            self.count += 1
            n = self.count
            now = datetime.now(UTC)
            changes = [("speed", 1000.0 + n)] + ([("state", f"step-{n}")] if n % 3 == 0 else [])
            for name, value in changes:
                dv = ua.DataValue(ua.Variant(value), SourceTimestamp=now)
                self.call(self.nodes[name].write_value(dv))
                if self.history is not None:
                    wait_until(lambda name=name: self._newest(name) == now, what=f"{name} kept")

    def _newest(self, name: str) -> datetime | None:
        storage = self.server.iserver.history_manager.storage
        values, _ = self.call(storage.read_node_history(self.nodes[name].nodeid, None, None, 1))
        return values[0].SourceTimestamp.astimezone(UTC) if values else None

    def recorded(self) -> set[tuple[str, datetime]]:
        """Every (field, source timestamp) the server's history holds."""
        assert self.server is not None
        storage = self.server.iserver.history_manager.storage
        found = set()
        for name, node in self.nodes.items():
            values, _ = self.call(storage.read_node_history(node.nodeid, None, None, 0))
            found |= {(FIELD[name], dv.SourceTimestamp.astimezone(UTC)) for dv in values}
        return found


async def _cancel_the_rest() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Ticker:
    """Changes the server's values at 10 Hz in a thread of its own."""

    def __init__(self, server: HistoryServer) -> None:
        self.server = server
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(0.1):  # the pace of the changes, not a wait for anything
            self.server.tick()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(PATIENCE)


@pytest.fixture
def history_server(tmp_path: Path) -> Iterator[HistoryServer]:
    server = HistoryServer(tmp_path / "opcua-history.sqlite")
    server.start()
    yield server
    server.close()


def landed(store: Store) -> set[tuple[str, datetime]]:
    found = set()
    for r in signals(store):
        when = r["source_timestamp"]
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        found.add((r["field"], when))
    return found


def gap_events(store: Store) -> list[Any]:
    with store.connect() as conn:
        return list(
            conn.execute(
                select(infolog).where(infolog.c.source_id == SOURCE, infolog.c.event == GAP_EVENT)
            )
        )


def no_duplicate_keys(store: Store) -> None:
    with store.connect() as conn:
        t = target_table(conn, "machine_signals")
        dupes = conn.execute(
            select(t.c.field, t.c.source_timestamp)
            .group_by(t.c.field, t.c.source_timestamp)
            .having(func.count() > 1)
        ).all()
    assert dupes == []


def same_as_recorded(store: Store, server: HistoryServer) -> None:
    """The target holds exactly what the server recorded (waiting for it to catch up)."""
    wait_until(
        lambda: landed(store) == server.recorded(),
        what="the target to hold every sample the server recorded, and nothing else",
        state=lambda: (
            sorted(server.recorded() - landed(store))[:5],
            sorted(landed(store) - server.recorded())[:5],
        ),
    )
    assert len(signals(store)) == len(server.recorded())
    no_duplicate_keys(store)


def grown(store: Store, more: int) -> None:
    """Wait until ``more`` further samples landed."""
    have = len(signals(store))
    wait_until(lambda: len(signals(store)) >= have + more, what=f"{more} more samples")


# -- factorysync restarted, server restarted, no history ----------------------------------
@SQLITE_ONLY
def test_changes_made_while_factorysync_was_down_are_read_from_history(
    store: Store, history_server: HistoryServer
) -> None:
    register(store, opcua_source(history_server))
    service = RealtimeService(store, file_watch=False)
    ticker: Ticker | None = None
    try:
        service.reconcile()
        # The initial values first: the history starts with them.
        wait_until(lambda: len(signals(store)) == 2, what="the initial values")
        ticker = Ticker(history_server)
        grown(store, 20)
        service.stop()  # factorysync stops; the server goes on changing
        down = len(history_server.recorded())
        wait_until(lambda: len(history_server.recorded()) >= down + 30, what="30 changes")
        service = RealtimeService(store, file_watch=False)
        service.reconcile()
        grown(store, 30)
        ticker.stop()
        same_as_recorded(store, history_server)
    finally:
        if ticker is not None:
            ticker.stop()
        service.stop()
    assert gap_events(store) == []
    with store.connect() as conn:
        state = load_state(conn, SOURCE, 0, CONNECTOR_KEY)
    newest = max(t for f, t in landed(store) if f == "spindle_speed")
    assert (
        datetime.fromisoformat(state["last_source_timestamp"][history_server.node_id("speed")])
        == newest
    )


@SQLITE_ONLY
def test_a_server_without_history_gets_the_gap_recorded(store: Store, tmp_path: Path) -> None:
    server = HistoryServer(None)
    server.start()
    register(store, opcua_source(server))
    service = RealtimeService(store, file_watch=False)
    try:
        service.reconcile()
        wait_until(lambda: len(signals(store)) == 2, what="the initial values")
        for _ in range(3):
            server.tick()
        wait_until(lambda: len(signals(store)) == 6, what="three changes")  # 3 speed, 1 state
        last = max(t for f, t in landed(store) if f == "spindle_speed")
        server.stop_server()
        server.start()  # a fresh server: its values start over, without history
        # The subscription comes back; what happened in between is lost, and said so.
        wait_until(lambda: gap_events(store), what="the gap recorded")
    finally:
        service.stop()
        server.close()
    event = gap_events(store)[0]
    assert event.level == "warning"
    assert "spindle_speed" in event.message and "without HistoryRead" in event.message
    assert datetime.fromisoformat(event.details["from"]) <= last
    with store.connect() as conn:
        windows = conn.execute(
            select(hist_t.c.details).where(hist_t.c.source_id == SOURCE)
        ).scalars()
        listed = [g for details in windows for g in (details or {}).get("gaps", [])]
    assert listed and listed[0]["reason"] == event.details["reason"]


# -- the Done-when test: server restart and handover, two workers on PostgreSQL -------------
@PG_ONLY
@pytest.mark.slow
def test_server_restart_and_handover_lose_and_duplicate_nothing(
    store: Store, env: dict[str, str], tmp_path: Path, history_server: HistoryServer
) -> None:
    register(store, opcua_source(history_server))
    args = ("--lease-seconds", str(LEASE))
    workers = [start_worker(realtime_env(env), tmp_path, *args) for _ in range(2)]
    ticker: Ticker | None = None
    try:
        pids = {w.pid for w in workers}
        wait_until(
            lambda: running(workers) and pid_of(holders(store, [SOURCE])[SOURCE]) in pids,
            what="one worker leasing the source",
        )
        wait_until(lambda: len(signals(store)) == 2, what="the initial values")
        ticker = Ticker(history_server)
        grown(store, 30)

        # The server restarts mid-stream; its history survives in the SQLite file.
        history_server.stop_server()
        history_server.start()
        grown(store, 30)

        # The worker holding the subscription dies; the other one takes it over.
        holder = pid_of(holders(store, [SOURCE])[SOURCE])
        victim = next(w for w in workers if w.pid == holder)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
        survivor = next(w for w in workers if w.pid != holder)
        wait_until(
            lambda: running([survivor]) and holders(store, [SOURCE])[SOURCE] is not None
            and pid_of(holders(store, [SOURCE])[SOURCE]) == survivor.pid,
            what="the surviving worker leasing the source",
            state=lambda: holders(store, [SOURCE]),
        )  # fmt: skip
        grown(store, 30)
        ticker.stop()
        same_as_recorded(store, history_server)
    finally:
        if ticker is not None:
            ticker.stop()
        stop([w for w in workers if w.poll() is None])
    assert gap_events(store) == []
