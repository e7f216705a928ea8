"""Siemens S7 sources against the python-snap7 server on loopback: configuration checks,
grouped reads (counted at the server), decoding, the realtime service writing one row
per poll into the store, a PLC that goes away and comes back, deadbands and refused
reads."""

from __future__ import annotations

import struct
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from factorysync.connectors.base import ConnectorContext
from factorysync.connectors.registry import build_connector, validate_connection_config
from factorysync.connectors.s7 import (
    S7Config,
    TagSpec,
    decode_tag,
    max_range_bytes,
    pack_requests,
    plan_ranges,
)
from factorysync.errors import ConfigError, ConnectorFatal, ConnectorRetriable
from factorysync.settings import Settings
from factorysync.store.store import Store
from tests.conftest import closed_port
from tests.connectors.plc_servers import (
    S7Server,
    gaps,
    last_error,
    realtime,
    rows,
    s7_server,
    s7_string,
)
from tests.connectors.test_polled_device import Sink
from tests.realtime.conftest import register
from tests.waiting import wait_until

pytest.importorskip("snap7")

SID = "press7-s7"
TABLE = "press_db"
TAGS = [
    {"name": "running", "db": 1, "start": 0, "bit": 0, "type": "bool"},
    {"name": "fault", "db": 1, "start": 0, "bit": 1, "type": "bool"},
    {"name": "speed_rpm", "db": 1, "start": 2, "type": "int"},
    {"name": "cycle_count", "db": 1, "start": 4, "type": "dint"},
    {"name": "ram_force_kn", "db": 1, "start": 8, "type": "real"},
    {"name": "energy_kwh", "db": 1, "start": 12, "type": "lreal"},
    {"name": "status_word", "db": 1, "start": 20, "type": "word"},
    {"name": "die_id", "db": 1, "start": 22, "type": "string", "length": 16},
    {"name": "oil_temp_c", "db": 2, "start": 0, "type": "int", "scale": 0.1},
    {"name": "mode", "area": "M", "start": 10, "type": "byte"},
    {"name": "motor_on", "area": "Q", "start": 0, "bit": 3, "type": "bool"},
]


def set_press(plc: S7Server, *, cycles: int, force: float, die: str, running: bool) -> None:
    db1 = bytearray(40)
    db1[0] = 0b01 if running else 0b10
    struct.pack_into(">h", db1, 2, -1450 if running else 0)
    struct.pack_into(">i", db1, 4, cycles)
    struct.pack_into(">f", db1, 8, force)
    struct.pack_into(">d", db1, 12, 123456.75 + cycles)
    struct.pack_into(">H", db1, 20, 0xBEEF)
    db1[22:40] = s7_string(die, 16)
    plc.write("DB", 1, 0, bytes(db1))
    plc.write("DB", 2, 0, struct.pack(">h", 655 if running else -12))
    plc.write("M", 0, 10, bytes([3 if running else 1]))
    plc.write("Q", 0, 0, bytes([0b1000 if running else 0]))


def expected_press(*, cycles: int, force: float, die: str, running: bool) -> dict[str, Any]:
    return {
        "running": running,
        "fault": not running,
        "speed_rpm": -1450 if running else 0,
        "cycle_count": cycles,
        "ram_force_kn": force,
        "energy_kwh": 123456.75 + cycles,
        "status_word": 0xBEEF,
        "die_id": die,
        "oil_temp_c": 65.5 if running else -1.2,
        "mode": 3 if running else 1,
        "motor_on": running,
    }


def s7_source(plc: S7Server, tags: list[dict[str, Any]] = TAGS, **config: Any) -> dict[str, Any]:
    return {
        "source_id": SID,
        "name": "Press 7 CPU",
        "source_type": "s7",
        "connections": [
            {
                "connection_config": {
                    "host": "127.0.0.1",
                    "port": plc.port,
                    "rack": 0,
                    "slot": 1,
                    "poll_ms": 100,
                    "timeout": 10,
                    "device": "press-7",
                    "batch_ms": 50,
                    "tags": tags,
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
    return build_connector("s7", config, {}, ConnectorContext(SID, Settings()))


@pytest.fixture
def plc() -> Iterator[S7Server]:
    with s7_server() as found:
        yield found


# -- configuration ----------------------------------------------------------------------------
def test_every_bad_tag_is_named_with_what_is_wrong() -> None:
    problems = validate_connection_config(
        "s7",
        {
            "host": "plc",
            "tags": [
                {"name": "ok", "db": 1, "start": 0, "type": "int"},
                {"name": "no_db", "start": 0, "type": "int"},
                {"name": "db_on_m", "area": "M", "db": 3, "start": 0, "type": "int"},
                {"name": "no_bit", "db": 1, "start": 0, "type": "bool"},
                {"name": "bit_on_int", "db": 1, "start": 0, "bit": 9, "type": "int"},
                {"name": "len_on_real", "db": 1, "start": 0, "type": "real", "length": 4},
                {"name": "far", "db": 1, "start": 65534, "type": "dint"},
                {
                    "name": "text",
                    "db": 1,
                    "start": 0,
                    "type": "string",
                    "deadband": {"absolute": 1},
                },
                {"name": "area", "area": "T", "start": 0, "type": "int"},
            ],
        },
    )
    assert problems == [
        "tags.1: tag 'no_db': db is required for area DB and only for it",
        "tags.2: tag 'db_on_m': db is required for area DB and only for it",
        "tags.3: tag 'no_bit': bit (0-7) is required for bool and only for bool",
        "tags.4: tag 'bit_on_int': bit: Input should be less than or equal to 7",
        "tags.5: tag 'len_on_real': length applies to strings only",
        "tags.6: tag 'far': start 65534 + 4 byte(s) runs past 65535",
        "tags.7: tag 'text': deadband: for numbers only",
        "tags.8: tag 'area': area: Input should be 'DB', 'M', 'I' or 'Q'",
    ]
    assert validate_connection_config(
        "s7", {"host": "plc", "tags": [{"name": "a", "db": 1, "start": 0, "type": "int"}] * 2}
    ) == ["tag name(s) given more than once: a"]


def test_defaults_and_device_name() -> None:
    cfg = S7Config.model_validate(
        {"host": "10.0.0.9", "tags": [{"name": "s", "db": 5, "start": 0, "type": "string"}]}
    )
    assert (cfg.port, cfg.rack, cfg.slot, cfg.poll_ms) == (102, 0, 1, 1000)
    assert cfg.device_name == "10.0.0.9:102/0/1"
    assert cfg.tags[0].length == 254 and cfg.tags[0].size == 256


def test_ranges_and_multi_variable_reads_fit_the_pdu() -> None:
    def tags(*specs: dict[str, Any]) -> list[TagSpec]:
        return [TagSpec.model_validate({"name": f"t{i}", **s}) for i, s in enumerate(specs)]

    found = plan_ranges([TagSpec.model_validate(t) for t in TAGS], 16, max_range_bytes(480))
    assert [(r.area, r.db, r.start, r.size) for r in found] == [
        ("DB", 1, 0, 40),
        ("DB", 2, 0, 2),
        ("M", 0, 10, 1),
        ("Q", 0, 0, 1),
    ]
    assert [len(p) for p in pack_requests(found, 480)] == [4]  # one exchange per poll
    # A gap of max_gap bytes is bridged, one more is not; data blocks are never joined.
    pair = tags({"db": 1, "start": 0, "type": "int"}, {"db": 1, "start": 18, "type": "int"})
    assert [(r.start, r.size) for r in plan_ranges(pair, 16, 462)] == [(0, 20)]
    assert [(r.start, r.size) for r in plan_ranges(pair, 15, 462)] == [(0, 2), (18, 2)]
    apart = tags({"db": 1, "start": 0, "type": "int"}, {"db": 2, "start": 2, "type": "int"})
    assert len(plan_ranges(apart, 100, 462)) == 2
    # A range holds what one answer can carry: 222 data bytes on a 240-byte PDU.
    assert max_range_bytes(240) == 222
    long = tags(*({"db": 1, "start": 100 * i, "type": "lreal"} for i in range(5)))
    assert [(r.start, r.size) for r in plan_ranges(long, 100, 222)] == [(0, 208), (300, 108)]
    # Up to 20 variables per read, and request and answer within the PDU.
    many = tags(*({"db": 1, "start": 10 * i, "type": "int"} for i in range(25)))
    assert [len(p) for p in pack_requests(plan_ranges(many, 0, 462), 480)] == [20, 5]
    assert [len(p) for p in pack_requests(plan_ranges(long, 100, 222), 240)] == [1, 1]
    assert [len(p) for p in pack_requests(plan_ranges(long, 100, 222), 480)] == [2]
    # A string longer than a small PDU's answer is read on its own (the driver chunks it).
    text = tags({"db": 1, "start": 0, "type": "string"}, {"db": 1, "start": 300, "type": "int"})
    ranges = plan_ranges(text, 100, 222)
    assert [(r.start, r.size) for r in ranges] == [(0, 256), (300, 2)]
    assert [len(p) for p in pack_requests(ranges, 240)] == [1, 1]


@pytest.mark.parametrize(
    ("spec", "data", "value"),
    [
        ({"type": "bool", "bit": 7}, b"\x80", True),
        ({"type": "bool", "bit": 6}, b"\x80", False),
        ({"type": "byte"}, b"\xff", 255),
        ({"type": "int"}, struct.pack(">h", -2), -2),
        ({"type": "word"}, struct.pack(">H", 65534), 65534),
        ({"type": "dint"}, struct.pack(">i", -70000), -70000),
        ({"type": "dword"}, struct.pack(">I", 4_000_000_000), 4_000_000_000),
        ({"type": "real"}, struct.pack(">f", 812.5), 812.5),
        ({"type": "lreal"}, struct.pack(">d", -1e300), -1e300),
        ({"type": "real"}, struct.pack(">f", float("inf")), None),
        ({"type": "int", "scale": 0.1, "offset": 1}, struct.pack(">h", 205), 21.5),
        ({"type": "string", "length": 8}, s7_string("DIE-42", 8), "DIE-42"),
        ({"type": "string", "length": 4}, bytes([4, 9]) + b"ABCD", "ABCD"),  # bad length byte
        ({"type": "string", "length": 6}, bytes([6, 3]) + "Prü".encode("latin-1") + b"xxx", "Prü"),
    ],
)
def test_decoding(spec: dict[str, Any], data: bytes, value: Any) -> None:
    tag = TagSpec.model_validate({"name": "v", "db": 1, "start": 0, **spec})
    assert decode_tag(tag, data) == value


# -- reading a PLC ------------------------------------------------------------------------------
def test_check_and_discover_read_every_tag_in_one_exchange(plc: S7Server) -> None:
    set_press(plc, cycles=18_231, force=812.5, die="DIE-42", running=True)
    config = s7_source(plc)["connections"][0]["connection_config"]
    result = connector(config).check()
    assert result.message == (
        f"S7 127.0.0.1:{plc.port} rack 0 slot 1: 11 tag(s) read in 1 request(s)"
    )
    assert plc.reads() == [4]  # one read request carrying 4 variables, counted by the server
    plc.forget_reads()
    fields = connector(config).discover()
    assert plc.reads() == [4]
    assert [f.name for f in fields] == ["ts", "device", *(t["name"] for t in TAGS)]
    samples = {f.name: f.samples[0] for f in fields}
    expected = expected_press(cycles=18_231, force=812.5, die="DIE-42", running=True)
    assert {k: samples[k] for k in expected} == expected
    kinds = {f.name: f.kind for f in fields}
    assert (kinds["cycle_count"], kinds["ram_force_kn"], kinds["oil_temp_c"]) == (
        "integer",
        "float",
        "float",
    )
    assert (kinds["running"], kinds["die_id"], kinds["ts"]) == ("boolean", "string", "datetime")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_polled_values_land_one_row_per_poll(store: Store, plc: S7Server) -> None:
    set_press(plc, cycles=18_231, force=812.5, die="DIE-42", running=True)
    register(store, s7_source(plc))
    columns = [t["name"] for t in TAGS]
    before = expected_press(cycles=18_231, force=812.5, die="DIE-42", running=True)
    after = expected_press(cycles=18_260, force=-3.25, die="DIE-7", running=False)
    with realtime(store, SID):
        wait_until(lambda: rows(store, TABLE), what="the first rows")
        set_press(plc, cycles=18_260, force=-3.25, die="DIE-7", running=False)
        wait_until(
            lambda: any({c: r[c] for c in columns} == after for r in rows(store, TABLE)),
            what="a row of the changed values",
        )
    written = rows(store, TABLE)
    seen = [{c: r[c] for c in columns} for r in written]
    assert seen[0] == before and seen[-1] == after
    # Every value decoded; a change the PLC program makes in several steps may fall
    # inside one poll, so each column is checked alone.
    assert all(s[c] in (before[c], after[c]) for s in seen for c in columns)
    assert all(r["device"] == "press-7" for r in written)
    assert len({r["ts"] for r in written}) == len(written)
    reads = plc.reads()
    assert set(reads) == {4}  # every poll one request of 4 variables
    assert len(written) <= len(reads) <= len(written) + 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_restarted_plc_is_polled_again_and_the_gap_recorded(store: Store, plc: S7Server) -> None:
    set_press(plc, cycles=1, force=1.0, die="A", running=True)
    register(store, s7_source(plc))
    where = f"S7 127.0.0.1:{plc.port} rack 0 slot 1: "
    with realtime(store, SID):
        wait_until(lambda: len(rows(store, TABLE)) >= 2, what="rows before the stop")
        plc.stop()
        wait_until(lambda: (last_error(store, SID) or "").startswith(where), what="the error")
        set_press(plc, cycles=2, force=2.0, die="B", running=False)
        plc.start()
        wait_until(
            lambda: any(r["cycle_count"] == 2 for r in rows(store, TABLE)),
            what="rows after the restart",
        )
        wait_until(lambda: last_error(store, SID) is None, what="the error cleared")
    written = rows(store, TABLE)
    listed, events = gaps(store, SID)
    assert len(listed) == 1 and len(events) == 1
    (gap,) = listed
    assert gap["reason"].startswith(where)
    stamps = [r["ts"] for r in written]
    i = stamps.index(datetime.fromisoformat(gap["from"]))
    assert stamps[i + 1] == datetime.fromisoformat(gap["to"])
    assert written[i]["cycle_count"] == 1 and written[i + 1]["cycle_count"] == 2
    assert events[0].details == gap


@pytest.mark.parametrize("backend", ["sqlite"])
def test_deadband_leaves_out_values_inside_their_band(store: Store, plc: S7Server) -> None:
    tags = [
        {"name": "force", "db": 1, "start": 8, "type": "real", "deadband": {"absolute": 1.0}},
        {"name": "cycles", "db": 1, "start": 4, "type": "dint"},
    ]
    plc.write("DB", 1, 4, struct.pack(">if", 1, 100.0))
    register(store, s7_source(plc, tags))
    with realtime(store, SID):
        wait_until(lambda: len(rows(store, TABLE)) >= 1, what="the first row")
        plc.write("DB", 1, 4, struct.pack(">if", 2, 100.75))  # force inside its band
        wait_until(lambda: any(r["cycles"] == 2 for r in rows(store, TABLE)), what="cycle 2")
        plc.write("DB", 1, 4, struct.pack(">if", 3, 98.5))  # |98.5 - 100| > 1
        wait_until(lambda: any(r["cycles"] == 3 for r in rows(store, TABLE)), what="cycle 3")
    by_cycle: dict[int, set[Any]] = {}
    for r in rows(store, TABLE):
        by_cycle.setdefault(r["cycles"], set()).add(r["force"])
    # The first row of each value carries what changed; later rows of it leave force out.
    assert 100.0 in by_cycle[1] and by_cycle[1] <= {100.0, None}
    assert by_cycle[2] == {None}
    assert 98.5 in by_cycle[3] and by_cycle[3] <= {98.5, None}


def test_check_says_what_the_plc_refused(plc: S7Server) -> None:
    config = s7_source(plc)["connections"][0]["connection_config"]
    missing = [{"name": "x", "db": 9, "start": 0, "type": "int"}]
    with pytest.raises(ConnectorFatal) as refused:
        connector(dict(config, tags=missing)).check()
    assert str(refused.value).startswith(
        f"S7 127.0.0.1:{plc.port} rack 0 slot 1: the PLC refused reading DB9 bytes 0-1 (x): "
    )
    assert "optimized block access" in str(refused.value)
    past = [{"name": "x", "db": 2, "start": 14, "type": "dint"}]  # DB2 has 16 bytes
    with pytest.raises(ConnectorFatal, match=r"DB2 bytes 14-17 \(x\).*past the end"):
        connector(dict(config, tags=past)).check()
    with closed_port() as port, pytest.raises(ConnectorRetriable, match="cannot connect: "):
        connector(dict(config, port=port)).check()


def test_a_missing_driver_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    built = connector(
        {"host": "127.0.0.1", "tags": [{"name": "a", "db": 1, "start": 0, "type": "int"}]}
    )
    monkeypatch.setitem(sys.modules, "snap7", None)
    with pytest.raises(ConfigError, match=r"pip install 'factorysync\[s7\]'"):
        built.check()
    with pytest.raises(ConfigError, match=r"pip install 'factorysync\[s7\]'"):
        built.subscribe(Sink(), threading.Event())


def test_the_press_template_is_a_valid_source() -> None:
    from factorysync.intake import parse_source
    from factorysync.store.templates import all_predefined, declaration_from_template

    (template,) = [t for t in all_predefined() if t["template_name"] == "press_s7"]
    decl, problems = parse_source(
        declaration_from_template(template, "press_7", sync_strategy="realtime")
    )
    assert problems == [] and decl is not None
