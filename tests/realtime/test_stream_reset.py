"""``source reset`` of a streaming source: its stream starts again from scratch.

A stream keeps its position source-wide (mapping 0 of ``data_source_sync_state``) and,
while it runs, in memory. The reset removes the stored position and marks the reset as
pending: no flush stores a position until the realtime service has restarted the stream
(neither the running one nor its last flush as it stops, nor a flush racing the reset),
and the restarted stream starts without one, as a fresh source's. Rows already written
stay. Against a real asyncua server and a running realtime service, end to end.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select, text

from factorysync import services
from factorysync.engine.runner import AlreadyRunning
from factorysync.engine.state import CONNECTOR_KEY, load_state, pending_resets, take_reset
from factorysync.realtime.service import RealtimeService
from factorysync.realtime.writer import Incoming, MicroBatchWriter
from factorysync.settings import Settings
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.store import Store
from factorysync.store.targets import target_table
from tests.api.conftest import make_api
from tests.conftest import run_cli
from tests.engine.test_reset import reset_events
from tests.realtime.conftest import mqtt_source, register
from tests.realtime.test_opcua import OpcServer, opcua_source, signals
from tests.test_source_lifecycle import end_run, running_row
from tests.waiting import PATIENCE, wait_until

PG_ONLY = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
LINE = "press-line"


# -- the store and the writer -------------------------------------------------------------
def press_line(store: Store) -> None:
    register(
        store,
        mqtt_source(
            LINE,
            "127.0.0.1",
            1883,
            ["plant/+/status"],
            table="press_values",
            mapping={
                "primary_key": ["machine_id", "seq"],
                "fields": {"machine_id": "machine_id", "seq": {"from": "seq", "type": "integer"}},
            },
        ),
    )


def writer_of(store: Store) -> MicroBatchWriter:
    """A writer of the press line, as a stream's worker starts it."""
    writer = MicroBatchWriter(store, LINE, window_s=3600)
    writer.open()
    return writer


def msg(seq: int, upto: int | None = None) -> Incoming:
    """A message; ``upto``: the stream's position it carries."""
    state = None if upto is None else {"upto": upto}
    return Incoming([{"machine_id": "P-1", "seq": seq}], state=state)


def position(store: Store, source_id: str = LINE) -> Any:
    with store.connect() as conn:
        return load_state(conn, source_id, 0, CONNECTOR_KEY)


def pending(store: Store) -> dict[str, str]:
    with store.connect() as conn:
        return pending_resets(conn)


def press_rows(store: Store) -> list[int]:
    with store.connect() as conn:
        t = target_table(conn, "press_values")
        return sorted(conn.execute(select(t.c.seq)).scalars())


def test_reset_forgets_the_stream_position_and_says_so(store: Store) -> None:
    press_line(store)
    writer = writer_of(store)
    try:
        writer.flush([msg(1, upto=1)])
        assert position(store) == {"upto": 1}
        # The stream's history window is open: that does not refuse the reset.
        proc = run_cli("source", "reset", LINE, "--json", check=True)
    finally:
        writer.stop()
    answer = orjson.loads(proc.stdout)
    assert answer["stream"] == {"cursor": None, "connector_state": True}
    assert list(answer["mappings"]) == ["press_values"]
    assert position(store) is None
    assert list(pending(store)) == [LINE]
    [event] = reset_events(store, LINE)
    assert event.details["stream"] == {"cursor": None, "connector_state": True}
    assert "the stream starts again from scratch" in event.message

    # One mapping reset resets the stream too (its position is the source's); a second
    # reset before the stream restarted replaces the mark with one of its own.
    stamp = pending(store)[LINE]
    again = services.reset_source(store, LINE, target_table="press_values", reset_by="test")
    assert again["stream"] == {"cursor": None, "connector_state": False}
    assert pending(store)[LINE] != stamp
    with store.begin() as conn:
        assert not take_reset(conn, LINE, stamp)  # a restart that saw the older reset
    assert LINE in pending(store)
    said = run_cli("source", "reset", LINE, check=True).stdout
    assert f"{LINE}: stream reset (no position stored); a running stream starts again" in said

    # A batch run in progress still refuses it.
    run_id = running_row(store, LINE)
    try:
        with pytest.raises(AlreadyRunning, match="reset it when the run has ended"):
            services.reset_source(store, LINE, reset_by="test")
    finally:
        end_run(store, run_id)


def test_a_stream_started_before_the_reset_writes_rows_but_not_its_position(
    store: Store,
) -> None:
    press_line(store)
    writer = writer_of(store)  # the stream running when the source is reset
    writer.start()
    try:
        writer.put_many([msg(1, upto=1), msg(2, upto=2)])
        wait_until(lambda: position(store) == {"upto": 2}, what="the position committed")
        services.reset_source(store, LINE, reset_by="test")
        writer.put(msg(3, upto=3))
        wait_until(lambda: press_rows(store) == [1, 2, 3], what="the row written after it")
        assert position(store) is None
        writer.put(msg(4, upto=4))  # written by the last flush at the latest, as it stops
    finally:
        writer.stop()
    assert press_rows(store) == [1, 2, 3, 4]
    assert position(store) is None

    # The service restarts the stream: the reset is taken up, and positions are stored.
    with store.begin() as conn:
        assert take_reset(conn, LINE, pending(store)[LINE])
    fresh = writer_of(store)
    try:
        fresh.flush([msg(1, upto=1)])
    finally:
        fresh.stop()
    assert position(store) == {"upto": 1}
    assert pending(store) == {}


def lock_waits(store: Store) -> int:
    """Sessions of this test's database waiting for a lock."""
    with store.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


@PG_ONLY
@pytest.mark.parametrize("first", ["flush", "reset"])
def test_a_flush_racing_the_reset_cannot_store_the_old_position(store: Store, first: str) -> None:
    """The flush and the reset both wait on the source's registry row (held by a third
    session); whichever is let through first, the position from before the reset is not
    left stored, and the flush's rows are."""
    press_line(store)
    writer = writer_of(store)
    writer.flush([msg(1, upto=1)])
    done: dict[str, BaseException | None] = {}

    def flush() -> None:
        try:
            writer.flush([msg(2, upto=2)])
            done["flush"] = None
        except BaseException as exc:
            done["flush"] = exc

    def reset() -> None:
        try:
            services.reset_source(store, LINE, reset_by="test")
            done["reset"] = None
        except BaseException as exc:
            done["reset"] = exc

    order = [flush, reset] if first == "flush" else [reset, flush]
    threads = [threading.Thread(target=f, daemon=True) for f in order]
    try:
        with store.connect() as holder, holder.begin():
            holder.execute(select(reg_t.c.id).where(reg_t.c.source_id == LINE).with_for_update())
            for n, thread in enumerate(threads, 1):
                thread.start()
                wait_until(lambda n=n: lock_waits(store) >= n, what=f"{n} session(s) waiting")
        for thread in threads:
            thread.join(PATIENCE)
        assert done == {"flush": None, "reset": None}
    finally:
        writer.stop()
    assert press_rows(store) == [1, 2]
    assert position(store) is None
    assert list(pending(store)) == [LINE]


# -- end to end: a running service and a real OPC UA server ------------------------------
@pytest.fixture
def controller() -> Iterator[OpcServer]:
    server = OpcServer()
    server.start()
    yield server
    server.stop()


def test_a_reset_restarts_a_running_stream_from_scratch(
    store: Store, controller: OpcServer
) -> None:
    source = opcua_source(controller)
    sid = source["source_id"]
    register(store, source)
    speed = controller.node_id("speed")

    def speed_position() -> datetime | None:
        found = position(store, sid)
        text_ = (found or {}).get("last_source_timestamp", {}).get(speed)
        return None if text_ is None else datetime.fromisoformat(text_)

    # The service as `factorysync run` runs it, scanning the registry often.
    scanning = Store(Settings(realtime_rescan_s=0.3))
    service = RealtimeService(scanning, file_watch=False)
    base = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
    older = base - timedelta(days=1)
    try:
        service.start()
        wait_until(lambda: sid in service.workers, what="the stream started")
        for i in range(1, 4):
            controller.write("speed", 1000.0 + i, base + timedelta(seconds=i))
            wait_until(lambda i=i: any(r["value"] == str(1000.0 + i) for r in signals(store)),
                       what=f"speed change {i}")  # fmt: skip
        newest = base + timedelta(seconds=3)
        wait_until(lambda: speed_position() == newest, what="the position committed",
                   state=lambda: position(store, sid))  # fmt: skip
        first = service.workers[sid][1]

        # The controller's clock was set back: its value now carries an older timestamp.
        # The running stream keeps its position (the newest timestamp it has seen).
        controller.write("speed", 999.0, older)
        wait_until(lambda: any(r["value"] == "999.0" for r in signals(store)),
                   what="the value with the older timestamp")  # fmt: skip
        assert speed_position() == newest

        proc = run_cli("source", "reset", sid, "--json", check=True)
        assert orjson.loads(proc.stdout)["stream"] == {"cursor": None, "connector_state": True}
        # Restarted at a scan, the stream starts from scratch: its position is the value
        # it is handed as it subscribes, not the one it had.
        wait_until(lambda: speed_position() == older, what="the restarted stream's position",
                   state=lambda: (position(store, sid), pending(store)))  # fmt: skip
        assert service.workers[sid][1] is not first
        assert pending(store) == {}
    finally:
        service.stop()
        scanning.dispose()
    # Rows already written stay.
    speeds = {r["source_timestamp"]: r["value"] for r in signals(store)
              if r["field"] == "spindle_speed"}  # fmt: skip
    assert {base + timedelta(seconds=i) for i in range(1, 4)} | {older} <= set(speeds)
    assert len(reset_events(store, sid)) == 1


def test_the_api_answer_says_the_stream_was_reset(store: Store) -> None:
    press_line(store)
    writer = writer_of(store)
    try:
        writer.flush([msg(1, upto=1)])
    finally:
        writer.stop()
    for api in make_api(store):
        answer = api.post(f"/api/sources/{LINE}/reset", role="operator")
        assert answer.status_code == 200, answer.text
        assert answer.json()["stream"] == {"cursor": None, "connector_state": True}
    assert position(store) is None and LINE in pending(store)


class _Stopped:
    """A worker stopped for the reset whose writer has not finished yet."""

    def __init__(self) -> None:
        self.writing = True
        self.writer = self

    def running(self) -> bool:
        return self.writing


def test_the_mark_stays_while_the_old_stream_writes_or_its_messages_wait(store: Store) -> None:
    """The new stream may store positions only once nothing of the old one can: its
    writer has ended, and none of its messages waits in this process's spool."""
    from factorysync.realtime.spools import close_process_spools, process_spool

    press_line(store)
    services.reset_source(store, LINE, reset_by="test")
    stamp = pending(store)[LINE]
    service = RealtimeService(store, file_watch=False)
    old = _Stopped()
    service._resetting[LINE] = old  # type: ignore[assignment]
    try:
        assert not service._take_reset(LINE, stamp)  # still writing
        assert pending(store) == {LINE: stamp}

        old.writing = False
        spool = process_spool(store.settings).get(create=True)
        assert spool is not None
        spool.append(LINE, [msg(1, upto=1)])  # a message of the old stream, spooled
        assert not service._take_reset(LINE, stamp)
        assert pending(store) == {LINE: stamp}

        spool.remove_through(LINE, spool.read(LINE, 10)[-1].seq)  # written by a drain
        assert service._take_reset(LINE, stamp)
        assert pending(store) == {}
    finally:
        service.stop()
        close_process_spools()
