"""Modbus TCP sources against a real pymodbus server on loopback: configuration checks,
request grouping (counted at the server), decoding, the realtime service writing one row
per poll into the store, a device that goes away and comes back, deadbands, refused and
malformed answers, and ``source test`` / ``source discover`` through the CLI."""

from __future__ import annotations

import struct
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
import pytest

from factorysync.connectors.base import ConnectorContext
from factorysync.connectors.modbus_registers import (
    ModbusConfig,
    RegisterSpec,
    decode_registers,
    plan_reads,
)
from factorysync.connectors.registry import build_connector, validate_connection_config
from factorysync.errors import ConfigError, ConnectorFatal, ConnectorRetriable
from factorysync.settings import Settings
from factorysync.store.store import Store
from tests.conftest import closed_port, run_cli
from tests.connectors.plc_servers import (
    MalformedDevice,
    ModbusServer,
    gaps,
    last_error,
    modbus_server,
    realtime,
    rows,
    text_words,
    words_of,
)
from tests.connectors.test_cli_source import one_line_failure
from tests.connectors.test_polled_device import Sink, polling
from tests.realtime.conftest import register
from tests.waiting import wait_until

pytest.importorskip("pymodbus")

SID = "press7-modbus"
TABLE = "press_signals"
PRESS = [
    {"name": "ram_force_kn", "address": 0, "type": "float32"},
    {"name": "ram_force_le", "address": 2, "type": "float32", "word_order": "little"},
    {"name": "strokes_total", "address": 4, "type": "int32"},
    {"name": "strokes_per_min", "address": 6},
    {"name": "die_id", "address": 10, "type": "string", "count": 4},
    {"name": "overload", "address": 20, "type": "bool", "bit": 3},
    {"name": "die_temp_c", "address": 0, "kind": "input", "type": "int16", "scale": 0.1},
    {"name": "oil_bar", "address": 1, "kind": "input", "scale": 0.01, "offset": -1},
    {"name": "running", "address": 0, "kind": "coil"},
    {"name": "guard_closed", "address": 1, "kind": "discrete"},
]
# What one poll of PRESS asks: holding 0-20 (gaps of 3 and 6 bridged), inputs 0-1, one
# coil, one discrete input.
PLANNED = [("holding", 0, 21), ("input", 0, 2), ("coil", 0, 1), ("discrete", 1, 1)]


def set_press(server: ModbusServer, *, force: float, strokes: int, die: str, running: bool) -> None:
    server.set_words("holding", 0, words_of("f", force))
    server.set_words("holding", 2, words_of("f", -force, word_order="little"))
    server.set_words("holding", 4, words_of("i", strokes))
    server.set_words("holding", 6, [strokes % 60])
    server.set_words("holding", 10, text_words(die, 4))
    server.set_words("holding", 20, [0b1000 if running else 0b0100])
    server.set_words("input", 0, words_of("h", -215 if running else 231))
    server.set_words("input", 1, [12345])
    server.set_bits("coil", 0, [running])
    server.set_bits("discrete", 1, [not running])


def expected_press(*, force: float, strokes: int, die: str, running: bool) -> dict[str, Any]:
    return {
        "ram_force_kn": force,
        "ram_force_le": -force,
        "strokes_total": strokes,
        "strokes_per_min": strokes % 60,
        "die_id": die,
        "overload": running,
        "die_temp_c": -21.5 if running else 23.1,
        "oil_bar": 122.45,
        "running": running,
        "guard_closed": not running,
    }


def modbus_source(
    server: ModbusServer, registers: list[dict[str, Any]] = PRESS, **config: Any
) -> dict[str, Any]:
    return {
        "source_id": SID,
        "name": "Press 7 PLC",
        "source_type": "modbus",
        "connections": [
            {
                "connection_config": {
                    "host": "127.0.0.1",
                    "port": server.port,
                    "poll_ms": 100,
                    "timeout": 10,  # the server shares this machine's busy CPU
                    "device": "press-7",
                    "batch_ms": 50,
                    "registers": registers,
                    **config,
                }
            }
        ],
        "mappings": [
            {
                "target_table": TABLE,
                "sync_strategy": "realtime",
                "mapping_config": {"primary_key": ["device", "ts"]},
            }
        ],
    }


def connector(config: dict[str, Any]) -> Any:
    return build_connector("modbus", config, {}, ConnectorContext(SID, Settings()))


@pytest.fixture
def server() -> Iterator[ModbusServer]:
    with modbus_server() as found:
        yield found


# -- configuration ----------------------------------------------------------------------------
def test_every_bad_register_is_named_with_what_is_wrong() -> None:
    problems = validate_connection_config(
        "modbus",
        {
            "host": "plc",
            "registers": [
                {"name": "ok", "address": 1},
                {"name": "Ram Force", "address": 70000},
                {"name": "clamp", "address": 3, "kind": "coil", "type": "float32"},
                {"name": "recipe", "address": 3, "type": "string"},
                {"name": "last", "address": 65535, "type": "float32"},
                {"name": "ts", "address": 4},
                {"name": "flag", "address": 5, "type": "bool", "bit": 3, "scale": 2},
                {"name": "word", "address": 6, "word_order": "little"},
                {"name": "band", "address": 7, "deadband": {"absolute": 1, "percent": 5}},
            ],
        },
    )
    assert problems == [
        "registers.1: register 'Ram Force': name: name 'Ram Force' is not a valid name: "
        "use lower-case letters, digits and underscores, starting with a letter or underscore, "
        "at most 63 characters; address: Input should be less than or equal to 65535",
        "registers.2: register 'clamp': type 'float32' does not fit kind 'coil': "
        "coils and discrete inputs are bool",
        "registers.3: register 'recipe': count is required for strings and only for strings",
        "registers.4: register 'last': address 65535 + 2 register(s) runs past 65535",
        "registers.5: register 'ts': name: name 'ts' is taken: every row has 'ts' and 'device'",
        "registers.6: register 'flag': scale: for numbers only",
        "registers.7: register 'word': word_order applies to 32- and 64-bit types only",
        "registers.8: register 'band': deadband: a deadband is either {absolute: x} or "
        "{percent: y}",
    ]
    assert validate_connection_config(
        "modbus", {"host": "plc", "registers": [{"name": "a", "address": 0}] * 2}
    ) == ["register name(s) given more than once: a"]
    assert validate_connection_config(
        "modbus",
        {
            "host": "plc",
            "max_registers_per_read": 8,
            "registers": [{"name": "recipe", "address": 0, "type": "string", "count": 10}],
        },
    ) == ["register(s) recipe span more than max_registers_per_read (8)"]
    assert validate_connection_config("modbus", {"host": "plc", "registers": []}) == [
        "registers: List should have at least 1 item after validation, not 0"
    ]


def test_defaults_and_device_name() -> None:
    cfg = ModbusConfig.model_validate(
        {
            "host": "10.0.0.5",
            "registers": [{"name": "a", "address": 0}, {"name": "b", "address": 0, "kind": "coil"}],
        }
    )
    assert (cfg.port, cfg.unit_id, cfg.poll_ms, cfg.device_name) == (502, 1, 1000, "10.0.0.5:502/1")
    assert [r.type for r in cfg.registers] == ["uint16", "bool"]


def test_reads_are_grouped_into_the_fewest_requests_the_limits_allow() -> None:
    def plan(registers: list[dict[str, Any]], **config: Any) -> list[tuple[str, int, int]]:
        cfg = ModbusConfig.model_validate({"host": "plc", "registers": registers, **config})
        return [(r.kind, r.start, r.count) for r in plan_reads(cfg)]

    consecutive = [{"name": f"r{i}", "address": i} for i in range(130)]
    assert plan(consecutive) == [("holding", 0, 125), ("holding", 125, 5)]
    assert plan(consecutive, max_registers_per_read=100) == [
        ("holding", 0, 100),
        ("holding", 100, 30),
    ]
    # A gap of max_gap addresses is bridged, one more is not.
    pair = [{"name": "a", "address": 0, "type": "int32"}, {"name": "b", "address": 10}]
    assert plan(pair) == [("holding", 0, 11)]
    assert plan(pair, max_gap=7) == [("holding", 0, 2), ("holding", 10, 1)]
    assert plan(pair, max_gap=0) == [("holding", 0, 2), ("holding", 10, 1)]
    # Kinds are read apart; bits of one register share its read; coils up to 2000.
    mixed = [
        {"name": "i", "address": 5, "kind": "input"},
        {"name": "h", "address": 5},
        {"name": "f1", "address": 9, "type": "bool", "bit": 0},
        {"name": "f2", "address": 9, "type": "bool", "bit": 15},
        {"name": "c0", "address": 0, "kind": "coil"},
        {"name": "c1", "address": 1999, "kind": "coil"},
        {"name": "c2", "address": 2000, "kind": "coil"},
        {"name": "d", "address": 7, "kind": "discrete"},
    ]
    assert plan(mixed, max_gap=2000) == [
        ("holding", 5, 5),
        ("input", 5, 1),
        ("coil", 0, 2000),
        ("coil", 2000, 1),
        ("discrete", 7, 1),
    ]


@pytest.mark.parametrize(
    ("spec", "words", "value"),
    [
        ({"type": "int16"}, [0xFFFE], -2),
        ({"type": "uint16"}, [0xFFFE], 65534),
        ({"type": "int32"}, words_of("i", -70000), -70000),
        (
            {"type": "uint32", "word_order": "little"},
            words_of("I", 4_000_000_000, word_order="little"),
            4_000_000_000,
        ),
        ({"type": "int64"}, words_of("q", -(2**40)), -(2**40)),
        (
            {"type": "int64", "word_order": "little"},
            words_of("q", 2**50 + 3, word_order="little"),
            2**50 + 3,
        ),
        ({"type": "float32"}, words_of("f", 812.5), 812.5),
        (
            {"type": "float64", "word_order": "little"},
            words_of("d", -1.0625, word_order="little"),
            -1.0625,
        ),
        # byte_order little: the two bytes of every register are swapped.
        (
            {"type": "float32", "byte_order": "little"},
            [int.from_bytes(struct.pack(">f", 6.5)[i : i + 2][::-1], "big") for i in (0, 2)],
            6.5,
        ),
        ({"type": "uint16", "scale": 0.1}, [3], 0.3),
        ({"type": "int16", "scale": 0.5, "offset": -10}, [words_of("h", -4)[0]], -12.0),
        ({"type": "float32"}, words_of("f", float("nan")), None),
        ({"type": "string", "count": 3}, text_words("AB", 3), "AB"),
        ({"type": "string", "count": 2}, [0x4142, 0x2020], "AB"),  # trailing spaces go
        ({"type": "string", "count": 2, "byte_order": "little"}, [0x4241, 0x0043], "ABC"),
        ({"type": "string", "count": 2}, [0xFC62, 0x6572], "übe" + "r"),  # Latin-1 bytes
        ({"type": "string", "count": 2}, [0xC3BC, 0x6200], "üb"),  # UTF-8 bytes
        ({"type": "bool", "bit": 15}, [0x8000], True),
        ({"type": "bool", "bit": 0}, [0x8000], False),
    ],
)
def test_decoding(spec: dict[str, Any], words: list[int], value: Any) -> None:
    reg = RegisterSpec.model_validate({"name": "v", "address": 0, **spec})
    assert decode_registers(reg, words) == value


# -- reading a device ---------------------------------------------------------------------------
def test_check_and_discover_read_every_register_in_the_planned_requests(
    server: ModbusServer,
) -> None:
    set_press(server, force=812.5, strokes=70_001, die="DIE-42", running=True)
    config = modbus_source(server)["connections"][0]["connection_config"]
    result = connector(config).check()
    assert result.message == (
        f"Modbus TCP 127.0.0.1:{server.port} unit 1: 10 register(s) read in 4 request(s)"
    )
    assert server.read_requests() == PLANNED  # counted by the server
    server.forget_requests()

    fields = connector(config).discover()
    assert server.read_requests() == PLANNED
    assert [f.name for f in fields] == ["ts", "device", *(r["name"] for r in PRESS)]
    found = {f.name: (f.kind, f.samples) for f in fields}
    expected = expected_press(force=812.5, strokes=70_001, die="DIE-42", running=True)
    assert {
        name: samples[0] for name, (_, samples) in found.items() if name in expected
    } == expected
    assert found["device"] == ("string", ["press-7"])
    assert found["ts"][0] == "datetime"
    assert found["ram_force_kn"][0] == "float" and found["strokes_total"][0] == "integer"
    assert found["die_temp_c"][0] == "float" and found["running"][0] == "boolean"
    assert found["die_id"][0] == "string"


def test_polled_values_land_one_row_per_poll(store: Store, server: ModbusServer) -> None:
    """Runs on SQLite and on PostgreSQL (the ``backend`` fixture)."""
    set_press(server, force=812.5, strokes=70_001, die="DIE-42", running=True)
    register(store, modbus_source(server))
    columns = [r["name"] for r in PRESS]
    before = expected_press(force=812.5, strokes=70_001, die="DIE-42", running=True)
    after = expected_press(force=-3.25, strokes=70_050, die="DIE-7", running=False)
    with realtime(store, SID):
        wait_until(lambda: rows(store, TABLE), what="the first rows")
        set_press(server, force=-3.25, strokes=70_050, die="DIE-7", running=False)
        wait_until(
            lambda: any({c: r[c] for c in columns} == after for r in rows(store, TABLE)),
            what="a row of the changed values",
        )
    written = rows(store, TABLE)
    seen = [{c: r[c] for c in columns} for r in written]
    assert seen[0] == before and seen[-1] == after
    # Every value decoded; the values of a row are one poll's, but a change may fall
    # between two of its requests (as on a real PLC), so each column is checked alone.
    assert all(s[c] in (before[c], after[c]) for s in seen for c in columns)
    assert all(r["device"] == "press-7" for r in written)
    assert len({r["ts"] for r in written}) == len(written)
    # One row per poll: each poll made the planned requests once, no more.
    reads = server.read_requests()
    assert set(reads) == set(PLANNED)
    assert len(PLANNED) * len(written) <= len(reads) <= len(PLANNED) * (len(written) + 1)
    assert last_error(store, SID) is None


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_restarted_device_is_polled_again_and_the_gap_recorded(
    store: Store, server: ModbusServer
) -> None:
    set_press(server, force=100.0, strokes=1, die="A", running=True)
    register(store, modbus_source(server))
    where = f"Modbus TCP 127.0.0.1:{server.port} unit 1: "
    with realtime(store, SID):
        wait_until(lambda: len(rows(store, TABLE)) >= 2, what="rows before the stop")
        server.stop()
        wait_until(lambda: (last_error(store, SID) or "").startswith(where), what="the error")
        assert "reconnecting in" in (last_error(store, SID) or "")
        set_press(server, force=200.0, strokes=2, die="B", running=False)
        server.start()  # the same port
        wait_until(
            lambda: any(r["strokes_total"] == 2 for r in rows(store, TABLE)),
            what="rows after the restart",
        )
        wait_until(lambda: last_error(store, SID) is None, what="the error cleared")
    written = rows(store, TABLE)
    listed, events = gaps(store, SID)
    assert len(listed) == 1 and len(events) == 1
    (gap,) = listed
    assert gap["reason"].startswith(where)
    stamps = [r["ts"] for r in written]
    start, end = datetime.fromisoformat(gap["from"]), datetime.fromisoformat(gap["to"])
    i = stamps.index(start)  # from the last row before the stop to the first one after
    assert stamps[i + 1] == end
    assert written[i]["strokes_total"] == 1 and written[i + 1]["strokes_total"] == 2
    assert events[0].level == "warning" and events[0].details == gap


@pytest.mark.parametrize("backend", ["sqlite"])
def test_deadband_writes_only_values_that_left_their_band(
    store: Store, server: ModbusServer
) -> None:
    registers = [
        {"name": "force", "address": 0, "type": "float32", "deadband": {"absolute": 1.0}},
        {"name": "temp", "address": 0, "kind": "input", "scale": 0.1, "deadband": {"percent": 10}},
    ]
    server.set_words("holding", 0, words_of("f", 100.0))
    server.set_words("input", 0, [500])
    register(store, modbus_source(server, registers))

    def polls_later(n: int) -> None:
        seen = len(server.read_requests())
        wait_until(lambda: len(server.read_requests()) >= seen + 2 * n, what=f"{n} more polls")

    with realtime(store, SID):
        wait_until(lambda: len(rows(store, TABLE)) == 1, what="the first row")
        polls_later(5)
        server.set_words("holding", 0, words_of("f", 100.5))  # inside: |0.5| <= 1
        server.set_words("input", 0, [540])  # inside: |54.0 - 50.0| <= 5.0
        polls_later(5)
        assert len(rows(store, TABLE)) == 1  # every value inside its band: no row
        server.set_words("holding", 0, words_of("f", 101.5))  # |101.5 - 100| > 1
        wait_until(lambda: len(rows(store, TABLE)) == 2, what="the force row")
        server.set_words("input", 0, [560])  # |56.0 - 50.0| > 5.0
        wait_until(lambda: len(rows(store, TABLE)) == 3, what="the temperature row")
        polls_later(3)
    assert [(r["force"], r["temp"]) for r in rows(store, TABLE)] == [
        (100.0, 50.0),
        (101.5, None),
        (None, 56.0),
    ]


# -- what a device may answer -------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_refusing_device_is_reported_and_polled_again(store: Store, server: ModbusServer) -> None:
    set_press(server, force=1.0, strokes=1, die="A", running=True)
    register(store, modbus_source(server))
    with realtime(store, SID):
        wait_until(lambda: rows(store, TABLE), what="rows")
        server.refuse = 4
        wait_until(
            lambda: "exception 4 (server device failure)" in (last_error(store, SID) or ""),
            what="the refusal reported",
        )
        server.refuse = None
        set_press(server, force=1.0, strokes=9, die="A", running=True)
        wait_until(
            lambda: any(r["strokes_total"] == 9 for r in rows(store, TABLE)), what="rows again"
        )
        wait_until(lambda: last_error(store, SID) is None, what="the error cleared")
    listed, _ = gaps(store, SID)
    assert len(listed) == 1 and "exception 4 (server device failure)" in listed[0]["reason"]


def test_check_says_what_the_device_answered(server: ModbusServer) -> None:
    config = modbus_source(server)["connections"][0]["connection_config"]
    server.refuse = 2
    with pytest.raises(ConnectorFatal) as refused:
        connector(config).check()
    assert str(refused.value) == (
        f"Modbus TCP 127.0.0.1:{server.port} unit 1: the device refused reading holding "
        "registers 0-20 (ram_force_kn, ram_force_le, strokes_total, strokes_per_min, …): "
        "exception 2 (illegal data address); the request also spans addresses between "
        "configured registers: set max_gap: 0 if the device has none there"
    )
    server.refuse = 6
    with pytest.raises(ConnectorRetriable, match=r"exception 6 \(server device busy\)"):
        connector(config).check()
    server.refuse = None
    outside = [{"name": "far", "address": 300}]  # the server has registers 0-255
    with pytest.raises(ConnectorFatal, match=r"holding registers 300 \(far\): exception 2"):
        connector(dict(config, registers=outside)).check()
    with closed_port() as port, pytest.raises(ConnectorRetriable) as down:
        connector(dict(config, port=port, timeout=2)).check()
    assert str(down.value) == (
        f"Modbus TCP 127.0.0.1:{port} unit 1: cannot connect: connection refused on port {port}"
    )


def _short_answer(request: bytes) -> bytes:
    """A well-formed answer to a read of holding registers, with one register fewer."""
    tid, _, _, unit, code, _, count = struct.unpack(">HHHBBHH", request[:12])
    data = b"\x00\x07" * (count - 1)
    return struct.pack(">HHHBBB", tid, 0, 3 + len(data), unit, code, len(data)) + data


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (lambda _: b"\xde\xad\xbe\xef" * 3, ConnectorRetriable, "no response within 1 s"),
        (lambda _: b"", ConnectorRetriable, "reading holding registers 0-1 (a, b)"),
        (
            _short_answer,
            ConnectorFatal,
            "short answer reading holding registers 0-1 (a, b): 1 of 2",
        ),
    ],
    ids=["garbage", "silence", "short"],
)
def test_malformed_answers_fail_the_read_with_a_reason(
    answer: Any, error: type, message: str
) -> None:
    device = MalformedDevice(answer)
    try:
        config = {
            "host": "127.0.0.1",
            "port": device.port,
            "timeout": 1,
            "registers": [{"name": "a", "address": 0}, {"name": "b", "address": 1}],
        }
        with pytest.raises(error) as failed:
            connector(config).check()
        assert message in str(failed.value)
    finally:
        device.close()


def test_the_poll_loop_survives_garbage_and_keeps_trying() -> None:
    from factorysync.connectors.modbus import ModbusDevice
    from factorysync.retry import RetryPolicy

    device = MalformedDevice(lambda _: b"\x00\x01\x00\x00\x00\x03\x01\x83")  # truncated
    try:
        cfg = ModbusConfig.model_validate(
            {
                "host": "127.0.0.1",
                "port": device.port,
                "timeout": 0.5,
                "registers": [{"name": "a", "address": 0}],
            }
        )
        sink = Sink()
        fast = RetryPolicy(attempts=1, backoff_s=0.05, max_delay_s=0.1, jitter=(1.0, 1.0))
        with polling(ModbusDevice(cfg), sink, backoff=fast):  # type: ignore[arg-type]
            wait_until(lambda: len(sink.errors()) >= 3, what="three failed polls")
        assert sink.rows == [] and device.requests >= 3
    finally:
        device.close()


def test_a_missing_driver_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"host": "127.0.0.1", "registers": [{"name": "a", "address": 0}]}
    built = connector(config)  # the config is checked without the driver
    monkeypatch.setitem(sys.modules, "pymodbus.client", None)
    with pytest.raises(ConfigError, match=r"pip install 'factorysync\[modbus\]'"):
        built.check()
    with pytest.raises(ConfigError, match=r"pip install 'factorysync\[modbus\]'"):
        built.subscribe(Sink(), threading.Event())


# -- the command line and the template ----------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite"])
def test_source_test_discover_and_sync_through_the_cli(store: Store, server: ModbusServer) -> None:
    set_press(server, force=812.5, strokes=70_001, die="DIE-42", running=True)
    register(store, modbus_source(server))
    tested = run_cli("source", "test", SID, check=True).stdout
    assert "ok  primary" in tested
    assert (
        f"Modbus TCP 127.0.0.1:{server.port} unit 1: 10 register(s) read in 4 request(s)" in tested
    )

    found = orjson.loads(run_cli("source", "discover", SID, "--json", check=True).stdout)
    fields = {f["name"]: f for f in found["fields"]}
    assert list(fields) == ["ts", "device", *(r["name"] for r in PRESS)]
    assert fields["ram_force_kn"] == {
        "name": "ram_force_kn",
        "kind": "float",
        "nullable": True,
        "samples": [812.5],
    }
    assert fields["die_id"]["samples"] == ["DIE-42"] and fields["running"]["kind"] == "boolean"
    assert fields["device"]["samples"] == ["press-7"] and fields["ts"]["kind"] == "datetime"
    table = run_cli("source", "discover", SID, check=True).stdout
    assert "12 field(s)" in table

    synced = run_cli("source", "sync", SID)
    assert synced.returncode != 0
    assert "polled continuously by the realtime service" in synced.stdout + synced.stderr

    server.stop()  # one line says why, without the driver's own log lines
    line = one_line_failure(run_cli("source", "test", SID))
    assert line.startswith(f"error: source '{SID}': connection 'primary' failed after ")
    assert line.endswith(
        f"Modbus TCP 127.0.0.1:{server.port} unit 1: cannot connect: "
        f"connection refused on port {server.port}"
    )


def test_the_press_template_is_a_valid_source() -> None:
    from factorysync.intake import parse_source
    from factorysync.store.templates import all_predefined, declaration_from_template

    (template,) = [t for t in all_predefined() if t["template_name"] == "press_modbus"]
    assert template["connection_type"] == "modbus"
    decl, problems = parse_source(
        declaration_from_template(template, "press_7", sync_strategy="realtime")
    )
    assert problems == [] and decl is not None
