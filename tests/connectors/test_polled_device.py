"""The poll loop Modbus TCP and S7 sources share, with a scripted device and a sink that
keeps what it is handed: a row per poll on a fixed schedule, deadbands, a device that
fails and comes back (status, back-off, gap), overruns, and stop while backing off."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest

from factorysync.connectors.polled_device import (
    Deadband,
    DeadbandFilter,
    DeviceError,
    PollLoop,
)
from factorysync.retry import RetryPolicy
from tests.waiting import PATIENCE, wait_until

FAST = RetryPolicy(attempts=1, backoff_s=0.05, max_delay_s=0.2, jitter=(1.0, 1.0))


class Sink:
    """Keeps everything a stream hands over, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: list[dict[str, Any]] = []
        self.statuses: list[tuple[str | None, str | None]] = []
        self.gaps: list[tuple[datetime, datetime, str]] = []
        self.events: list[tuple[str, str, dict[str, Any] | None]] = []

    def put(
        self, records: list[Any], *, raw: Any = None, error: Any = None, ack: Any = None
    ) -> None:
        with self.lock:
            self.rows.extend(records)

    def status(self, error: str | None, *, subscribed: str | None = None) -> None:
        with self.lock:
            self.statuses.append((error, subscribed))

    def drain(self) -> None:
        pass

    def event(self, event: str, message: str, *, level: str = "info", details: Any = None) -> None:
        with self.lock:
            self.events.append((event, message, details))

    def gap(self, start: datetime, end: datetime, reason: str) -> None:
        with self.lock:
            self.gaps.append((start, end, reason))

    def errors(self) -> list[str]:
        with self.lock:
            return [e for e, _ in self.statuses if e is not None]

    def row_count(self) -> int:
        with self.lock:
            return len(self.rows)


class ScriptedDevice:
    """Answers ``values()`` on every poll; ``fail`` makes reads raise it (once armed),
    ``slow_once`` makes one read take that long."""

    def __init__(self, values: Callable[[], dict[str, Any]]) -> None:
        self.values = values
        self.fail: Exception | None = None
        self.slow_once = 0.0
        self.connects = self.reads = self.closes = 0

    def connect(self) -> None:
        self.connects += 1
        if self.fail is not None:
            raise self.fail

    def read(self) -> dict[str, Any]:
        self.reads += 1
        if self.fail is not None:
            raise self.fail
        if self.slow_once:
            delay, self.slow_once = self.slow_once, 0.0
            time.sleep(delay)
        return self.values()

    def close(self) -> None:
        self.closes += 1


@contextmanager
def polling(
    device: ScriptedDevice,
    sink: Sink,
    *,
    period_s: float = 0.05,
    deadbands: dict[str, Deadband] | None = None,
    backoff: RetryPolicy = FAST,
) -> Iterator[PollLoop]:
    loop = PollLoop(
        device,
        name="press-7",
        where="test PLC",
        period_s=period_s,
        deadbands=deadbands or {},
        sink=sink,
        source_id="press7",
        backoff=backoff,
    )
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        stop.set()
        thread.join(PATIENCE)
        assert not thread.is_alive(), "the poll loop did not stop"


def test_one_row_per_poll_with_ts_and_device() -> None:
    sink, counter = Sink(), iter(range(10_000))
    device = ScriptedDevice(lambda: {"strokes": next(counter), "running": True})
    with polling(device, sink) as loop:
        wait_until(lambda: sink.row_count() >= 5, what="five rows")
    rows = sink.rows
    assert [r["strokes"] for r in rows] == list(range(len(rows)))
    assert all(set(r) == {"ts", "device", "strokes", "running"} for r in rows)
    assert all(r["device"] == "press-7" for r in rows)
    stamps = [datetime.fromisoformat(r["ts"]) for r in rows]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(s.utcoffset() is not None and s.utcoffset().total_seconds() == 0 for s in stamps)
    assert sink.statuses == [(None, "test PLC")]  # subscribed once, no error
    assert loop.polls == len(rows) and loop.failures == 0
    assert device.connects == 1 and device.closes == 1  # one connection, closed at stop


def test_deadband_leaves_out_values_inside_the_band_of_the_last_written() -> None:
    bands = {
        "force": Deadband(absolute=1.0),
        "temp": Deadband(percent=10),
    }
    filt = DeadbandFilter(bands)
    assert filt.outside({"force": 100.0, "temp": 50.0, "count": 1}) == {
        "force": 100.0,
        "temp": 50.0,
        "count": 1,
    }
    # Inside both bands: only the point without a deadband is written.
    assert filt.outside({"force": 100.9, "temp": 54.9, "count": 2}) == {"count": 2}
    # Measured from the last *written* value (100.0), not the last read one (100.9).
    assert filt.outside({"force": 101.0, "temp": 45.0, "count": 3}) == {"count": 3}
    assert filt.outside({"force": 101.5, "temp": 44.9, "count": 4}) == {
        "force": 101.5,
        "temp": 44.9,
        "count": 4,
    }
    assert filt.outside({"force": 100.6, "temp": 44.9, "count": 5}) == {"count": 5}
    # A value that turns null (or back) is a change; a percentage of 0 is a band of 0.
    assert filt.outside({"force": None, "temp": 0.0}) == {"force": None, "temp": 0.0}
    assert filt.outside({"force": None, "temp": 0.0}) == {}
    assert filt.outside({"force": None, "temp": 0.001}) == {"temp": 0.001}
    filt.reset()
    assert filt.outside({"force": None, "temp": 0.001}) == {"force": None, "temp": 0.001}


def test_a_poll_whose_every_value_is_inside_its_band_writes_no_row() -> None:
    sink = Sink()
    value = {"force": 100.0}
    device = ScriptedDevice(lambda: dict(value))
    with polling(device, sink, deadbands={"force": Deadband(absolute=1.0)}):
        wait_until(lambda: sink.row_count() == 1, what="the first row")
        reads = device.reads
        wait_until(lambda: device.reads >= reads + 5, what="five more polls")
        assert sink.row_count() == 1
        value["force"] = 102.0
        wait_until(lambda: sink.row_count() == 2, what="the row of the change")
    assert sink.rows[1]["force"] == 102.0 and set(sink.rows[1]) == {"ts", "device", "force"}


def test_a_device_that_stops_answering_is_reported_and_its_gap_recorded() -> None:
    sink, counter = Sink(), iter(range(10_000))
    device = ScriptedDevice(lambda: {"strokes": next(counter), "force": 100.0})
    with polling(device, sink, deadbands={"force": Deadband(absolute=5)}):
        wait_until(lambda: sink.row_count() >= 3, what="rows before the failure")
        device.fail = DeviceError("no response within 3 s reading holding registers 0-5")
        wait_until(lambda: len(sink.errors()) >= 3, what="failed polls reported")
        before = sink.row_count()
        device.fail = None
        wait_until(lambda: sink.gaps and sink.row_count() > before + 1, what="rows again")
    errors = sink.errors()
    assert all(e.startswith("test PLC: no response within 3 s reading holding") for e in errors)
    assert all("; reconnecting in " in e for e in errors)
    # Healthy, then the errors, then healthy again: subscribed is told on each recovery.
    assert sink.statuses[0] == (None, "test PLC")
    assert (None, "test PLC") in sink.statuses[len(errors) :]
    ((start, end, reason),) = sink.gaps
    last_before = datetime.fromisoformat(sink.rows[before - 1]["ts"])
    first_after = datetime.fromisoformat(sink.rows[before]["ts"])
    assert (start, end) == (last_before, first_after)
    assert reason.startswith("test PLC: no response within 3 s") and "failed poll(s)" in reason
    # After the gap every point is written again, deadbands notwithstanding.
    assert sink.rows[before]["force"] == 100.0
    assert "force" not in sink.rows[before + 1]


def test_an_unexpected_error_of_a_device_never_ends_the_loop() -> None:
    sink = Sink()
    device = ScriptedDevice(lambda: {"x": 1})
    device.fail = ValueError("unpack requires a buffer of 4 bytes")
    with polling(device, sink):
        wait_until(lambda: len(sink.errors()) >= 2, what="errors reported")
        device.fail = None
        wait_until(lambda: sink.row_count() >= 1, what="a row after the errors")
    assert "ValueError('unpack requires a buffer of 4 bytes')" in sink.errors()[0]
    # It never answered before: the gap starts at the first failure.
    ((start, end, _),) = sink.gaps
    assert start < end == datetime.fromisoformat(sink.rows[0]["ts"])


def test_an_overrunning_poll_skips_the_slots_it_missed_and_says_so() -> None:
    sink = Sink()
    device = ScriptedDevice(lambda: {"x": 1})
    with polling(device, sink, period_s=0.1) as loop:
        wait_until(lambda: sink.row_count() >= 2, what="rows")
        device.slow_once = 0.45  # at least 3 slots pass during this read
        wait_until(lambda: loop.skipped >= 3 and sink.events, what="the overrun")
    event, message, details = sink.events[0]
    assert event == "poll.overrun" and "poll(s) skipped" in message
    assert details is not None and details["skipped"] >= 3


def test_stop_is_honoured_while_backing_off() -> None:
    sink = Sink()
    device = ScriptedDevice(lambda: {"x": 1})
    device.fail = DeviceError("cannot connect: connection refused on port 502")
    slow = RetryPolicy(attempts=1, backoff_s=30.0, max_delay_s=30.0, jitter=(1.0, 1.0))
    with polling(device, sink, backoff=slow):
        wait_until(lambda: sink.errors(), what="the first failure")
    # The context manager joined the loop: it returned without waiting 30 s for the retry.
    assert sink.errors() == [
        "test PLC: cannot connect: connection refused on port 502; reconnecting in 30 s"
    ]
    assert device.connects == 1


@pytest.mark.parametrize(
    ("band", "message"),
    [
        ({}, "either {absolute: x} or {percent: y}"),
        ({"absolute": 1, "percent": 2}, "either {absolute: x} or {percent: y}"),
        ({"percent": 0}, "greater than 0"),
    ],
)
def test_a_deadband_is_one_of_absolute_or_percent(band: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message.replace("{", r"\{").replace("}", r"\}")):
        Deadband.model_validate(band)
