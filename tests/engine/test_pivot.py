"""``mapping_config.pivot``: narrow samples (OPC UA, Sparkplug B, MQTT topic levels) made
one row per machine, with the latest value per signal or as a wide time series, the same
way in the record pipeline, in batch runs and in realtime flushes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from factorysync.engine import columnar
from factorysync.engine.mapping import Mapper, MappingConfig
from factorysync.engine.pipeline import Mapped, RecordPipeline, Validator
from factorysync.engine.runner import Runner
from factorysync.errors import ConfigError
from factorysync.intake import parse_sources
from factorysync.realtime.writer import Incoming, MicroBatchWriter
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.conftest import write_json
from tests.engine.test_runner import register
from tests.realtime.conftest import mqtt_source
from tests.realtime.conftest import register as register_realtime

MACHINES = ("P1", "P2", "P3")
SIGNALS = ("force", "stroke_rate", "oil_temp", "state", "door_closed")
BASE = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
# The press of an OPC UA node id: ns=2;s=P2.force -> P2.
PRESS_OF_NODE = "value.split(';s=')[1].split('.')[0]"
PIVOT: dict[str, Any] = {
    "key": ["machine_id"],
    "key_from": {"machine_id": {"from": "node_id", "expr": PRESS_OF_NODE}},
    "name_from": "field",
    "value_from": "value",
    "ts_from": "source_timestamp",
}
WIDE = {**PIVOT, "mode": "wide_time_series"}


def at(t: float) -> datetime:
    return BASE + timedelta(seconds=t)


def reading(machine: str, signal: str, t: int) -> Any:
    """The value ``signal`` of ``machine`` has at second ``t`` (exact in every store)."""
    m = MACHINES.index(machine) + 1
    return {
        "force": 800.5 + 10 * m + t,
        "stroke_rate": 20 * m + t,
        "oil_temp": 40.25 + m + t,
        "state": ("idle", "run", "setup")[(m + t) % 3],
        "door_closed": (m + t) % 2 == 0,
    }[signal]


def sample(machine: str, signal: str, t: int, value: Any = None) -> dict[str, Any]:
    """One OPC UA change record, as the connector makes it."""
    stamp = at(t).isoformat()
    return {
        "node_id": f"ns=2;s={machine}.{signal}",
        "field": signal,
        "value": reading(machine, signal, t) if value is None else value,
        "source_timestamp": stamp,
        "server_timestamp": stamp,
        "status": "Good",
        "status_code": 0,
    }


def samples(*times: int) -> list[dict[str, Any]]:
    return [sample(m, s, t) for t in times for m in MACHINES for s in SIGNALS]


def machine_row(machine: str, t: int) -> dict[str, Any]:
    return {
        "machine_id": machine,
        "ts": at(t),
        **{s: reading(machine, s, t) for s in SIGNALS},
    }


def make(config: dict[str, Any]) -> RecordPipeline:
    mapping = MappingConfig.model_validate(config)
    return RecordPipeline(Mapper(mapping), Validator(mapping.validate_))


def run(line: RecordPipeline, records: list[Any]) -> list[Mapped]:
    return [m for record in records for m in line.run(record)]


def last_rows(outcomes: list[Mapped], key: list[str]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """What the merge keeps: the last accepted row of each key."""
    rows = {}
    for mapped in outcomes:
        if mapped.accepted and mapped.row is not None:
            rows[tuple(mapped.row[k] for k in key)] = mapped.row
    return rows


# -- the pivot on records --------------------------------------------------------------
def test_latest_three_machines_five_signals() -> None:
    records = samples(0, 1)
    random.Random(7).shuffle(records)  # times out of order: the newer value stays
    line = make({"pivot": PIVOT})
    outcomes = run(line, records)
    assert all(m.accepted for m in outcomes) and len(outcomes) == 30
    assert line.mapper.key == ["machine_id"]
    assert last_rows(outcomes, ["machine_id"]) == {
        ("P1",): machine_row("P1", 1),
        ("P2",): machine_row("P2", 1),
        ("P3",): machine_row("P3", 1),
    }
    assert machine_row("P2", 1) == {
        "machine_id": "P2",
        "ts": datetime(2026, 1, 5, 8, 0, 1, tzinfo=UTC),
        "force": 821.5,
        "stroke_rate": 41,
        "oil_temp": 43.25,
        "state": "idle",
        "door_closed": False,
    }


def test_wide_time_series_one_row_per_machine_and_time() -> None:
    records = samples(0, 1)
    random.Random(11).shuffle(records)
    line = make({"pivot": WIDE})
    outcomes = run(line, records)
    assert all(m.accepted for m in outcomes)
    assert line.mapper.key == ["machine_id", "ts"]
    assert last_rows(outcomes, ["machine_id", "ts"]) == {
        (m, at(t)): machine_row(m, t) for m in MACHINES for t in (0, 1)
    }
    # A row holds the names that have a sample at its time, whenever they come.
    line = make({"pivot": WIDE})
    [first] = line.run(sample("P1", "force", 0))
    [late] = line.run(sample("P1", "state", 0))
    [other] = line.run(sample("P1", "state", 1))
    assert first.row == {"machine_id": "P1", "ts": at(0), "force": 810.5}
    assert late.row == {"machine_id": "P1", "ts": at(0), "force": 810.5, "state": "run"}
    assert other.row == {"machine_id": "P1", "ts": at(1), "state": "setup"}


def test_an_older_sample_never_overwrites_a_newer_value() -> None:
    line = make({"pivot": PIVOT})
    run(line, [sample("P1", "force", 5, 900.0), sample("P1", "state", 3, "run")])
    [older] = line.run(sample("P1", "force", 4, 100.0))
    assert older.accepted
    assert older.row == {"machine_id": "P1", "ts": at(5), "force": 900.0, "state": "run"}
    # The same time again: the later arrival wins (a correction, or a redelivery).
    [same] = line.run(sample("P1", "force", 5, 901.0))
    assert same.row == {"machine_id": "P1", "ts": at(5), "force": 901.0, "state": "run"}
    # Each name is judged by its own time; ts is the newest of them.
    [newer] = line.run(sample("P1", "state", 7, "stop"))
    [force] = line.run(sample("P1", "force", 6, 902.0))
    assert newer.row == {"machine_id": "P1", "ts": at(7), "force": 901.0, "state": "stop"}
    assert force.row == {"machine_id": "P1", "ts": at(7), "force": 902.0, "state": "stop"}


def test_name_and_time_may_be_computed_like_fields() -> None:
    # One field per node ("p1_force"), a local time text: both read through field specs.
    pivot = {
        **PIVOT,
        "name_from": {"from": "node_id", "expr": "value.rsplit('.', 1)[1]"},
        "ts_from": {
            "from": "local_time",
            "type": "datetime",
            "format": "%d/%m/%Y %H:%M:%S",
            "timezone": "Asia/Jakarta",
        },
    }
    line = make({"pivot": pivot})
    record = {**sample("P1", "force", 0), "field": "p1_force", "local_time": "05/01/2026 15:00:00"}
    [mapped] = line.run(record)
    assert mapped.row == {"machine_id": "P1", "ts": at(0), "force": 810.5}
    [bad] = line.run({**record, "local_time": "2026-01-05"})
    assert bad.problems == [
        "pivot.ts_from: cannot convert '2026-01-05' to datetime: time data '2026-01-05' "
        "does not match format '%d/%m/%Y %H:%M:%S'"
    ]


def test_without_ts_from_the_order_of_arrival_decides() -> None:
    pivot = {k: v for k, v in PIVOT.items() if k != "ts_from"}
    line = make({"pivot": pivot})
    outcomes = run(line, [sample("P1", "force", 5, 2.0), sample("P1", "force", 1, 1.0)])
    assert outcomes[-1].row == {"machine_id": "P1", "force": 1.0}


def test_keys_from_topic_levels_and_names_made_column_names() -> None:
    # MQTT topic_template plant/{line}/{machine_id}/{signal}: the key is two topic levels.
    line = make(
        {"pivot": {"key": ["line", "machine_id"], "name_from": "signal", "value_from": "value"}}
    )

    def topic(signal: Any, value: Any, machine: str | None = "M1") -> dict[str, Any]:
        return {"line": "L1", "machine_id": machine, "signal": signal, "value": value}

    outcomes = run(
        line,
        [
            topic("Temp (C)", 71.5),
            topic("Motor/Speed", 1450),
            topic("temp_c", 1.0),  # the column of "Temp (C)"
            topic("machine_id", "M9"),  # a key column
            topic(None, 1),
            topic({"n": 1}, 1),
            topic("count", 1, machine=None),
            "not an object",
        ],
    )
    assert outcomes[1].row == {
        "line": "L1",
        "machine_id": "M1",
        "temp_c": 71.5,
        "motor_speed": 1450,
    }
    assert [m.problems for m in outcomes[2:]] == [
        ["signals 'Temp (C)' and 'temp_c' both make column 'temp_c'"],
        ["signal 'machine_id' would fill column 'machine_id', which is a pivot.key column"],
        ["pivot.name_from 'signal' is empty"],
        ["pivot.name_from 'signal' holds a dict, not a signal name"],
        ["pivot key column 'machine_id' is empty"],
        ["a pivot sample is an object, not a str"],
    ]
    assert all(m.row is None and m.stage == "record" for m in outcomes[2:])
    # Refused samples left the row as it was.
    [again] = line.run(topic("Motor/Speed", 1500))
    assert again.row == {"line": "L1", "machine_id": "M1", "temp_c": 71.5, "motor_speed": 1500}


def test_unreadable_times_and_keys_are_refused_with_every_reason() -> None:
    line = make({"pivot": PIVOT})
    bad = {**sample("P1", "force", 0), "source_timestamp": "yesterday", "field": ""}
    [mapped] = line.run(bad)
    assert mapped.problems == [
        "pivot.name_from 'field' is empty",
        "pivot.ts_from 'source_timestamp': cannot read 'yesterday' as a date-time: "
        "Invalid isoformat string: 'yesterday'",
    ]
    [mapped] = line.run({**sample("P1", "force", 0), "node_id": "ns=2;i=1002"})
    assert mapped.problems == [
        "pivot key machine_id: expression \"value.split(';s=')[1].split('.')[0]\" failed "
        "for value 'ns=2;i=1002': list index out of range"
    ]
    [mapped] = line.run({**sample("P1", "force", 0), "source_timestamp": None})
    assert mapped.problems == ["pivot.ts_from 'source_timestamp' is empty"]
    assert line.pivot is not None and len(line.pivot) == 0  # nothing kept


def test_a_refused_row_leaves_the_machine_as_it_was() -> None:
    line = make(
        {
            "pivot": PIVOT,
            "fields": {
                "machine_id": "machine_id",
                "updated_at": "ts",
                "force_kn": {"from": "force", "type": "float", "expr": "value / 10"},
                "state": "state",
            },
            "validate": [{"field": "force_kn", "rule": "min", "value": 0}],
        }
    )
    [good] = line.run(sample("P1", "force", 0, 805.0))
    [below] = line.run(sample("P1", "force", 1, -5.0))
    [junk] = line.run(sample("P1", "force", 2, "n/a"))
    [state] = line.run(sample("P1", "state", 3, "run"))
    assert good.row == {"machine_id": "P1", "updated_at": at(0), "force_kn": 80.5, "state": None}
    assert below.problems == ["force_kn = -0.5 is below the minimum 0"]
    assert junk.row is None and junk.problems[0].startswith("force_kn: cannot convert 'n/a'")
    # The refused samples are kept as they came (a replay pivots them again).
    assert below.record == sample("P1", "force", 1, -5.0) and below.stage == "record"
    assert state.row == {"machine_id": "P1", "updated_at": at(3), "force_kn": 80.5, "state": "run"}
    assert line.key_of(below) == ("P1",)


def test_the_state_is_bounded() -> None:
    line = make({"pivot": {**PIVOT, "state_rows": 2}})
    run(line, [sample("P1", "force", 0), sample("P2", "force", 0), sample("P1", "state", 0)])
    [p3] = line.run(sample("P3", "force", 0))  # P2, the least recently changed, leaves
    [p2] = line.run(sample("P2", "state", 1))  # and begins again (P1 leaves)
    [p3_again] = line.run(sample("P3", "state", 1))
    assert line.pivot is not None and len(line.pivot) == 2
    assert p3.row == {"machine_id": "P3", "ts": at(0), "force": 830.5}
    assert p2.row == {"machine_id": "P2", "ts": at(1), "state": "idle"}
    assert p3_again.row == {"machine_id": "P3", "ts": at(1), "force": 830.5, "state": "run"}

    # Time rows that left are not made again from a late sample alone.
    line = make({"pivot": {**WIDE, "state_rows": 2}})
    run(line, [sample("P1", "force", t) for t in (0, 1, 2)])  # the row at 0 leaves
    [late] = line.run(sample("P1", "state", 0))
    [kept] = line.run(sample("P1", "state", 1))
    [other] = line.run(sample("P2", "state", 0))  # another machine's time row is new
    assert late.row is None and late.problems == [
        "the row of machine_id 'P1' at 2026-01-05T08:00:00+00:00 has left the pivot's "
        "memory (pivot.state_rows 2): a sample this late would make a row of its own "
        "signals only"
    ]
    assert kept.row == {"machine_id": "P1", "ts": at(1), "force": 811.5, "state": "setup"}
    assert other.accepted


def test_a_flush_or_run_of_samples_stays_whole_after_explode_and_where() -> None:
    # Sparkplug-like payloads: a list of metrics per message, historical ones left out.
    line = make(
        {
            "explode": "metrics",
            "where": "not row.get('is_historical', False)",
            "pivot": {"key": ["device_id"], "name_from": "name", "value_from": "value"},
        }
    )
    payload = {
        "device_id": "press-2",
        "metrics": [
            {"name": "Press/Force", "value": 812.5},
            {"name": "Press/Force", "value": 1.0, "is_historical": True},
            {"name": "Press/Strokes", "value": 1200},
        ],
    }
    outcomes = run(line, [payload])
    assert [m.row for m in outcomes][-1] == {
        "device_id": "press-2",
        "press_force": 812.5,
        "press_strokes": 1200,
    }


# -- configuration ---------------------------------------------------------------------
def _problems(mapping_config: dict[str, Any], strategy: str = "full") -> str:
    source = {
        "source_id": "press_line",
        "name": "Press line",
        "source_type": "json",
        "connections": [{"connection_config": {"file_path": "samples.json"}}],
        "mappings": [
            {
                "target_table": "presses",
                "sync_strategy": strategy,
                "mapping_config": mapping_config,
            }
        ],
    }
    with pytest.raises(ConfigError) as info:
        parse_sources({"sources": [source]}, "sources.yaml")
    return str(info.value)


@pytest.mark.parametrize(
    ("pivot", "extra", "expected"),
    [
        ({"name_from": "field", "value_from": "value"}, {}, "pivot.key: Field required"),
        (
            {"key": [], "name_from": "field", "value_from": "value"},
            {},
            "pivot.key: List should have at least 1 item",
        ),
        ({"key": "machine_id", "value_from": "value"}, {}, "pivot.name_from: Field required"),
        ({"key": "machine_id", "name_from": "field"}, {}, "pivot.value_from: Field required"),
        (
            {"key": "machine_id", "name_from": "field", "value_from": "value", "mode": "wide"},
            {},
            "pivot.mode: Input should be 'latest' or 'wide_time_series'",
        ),
        (
            {
                "key": "machine_id",
                "name_from": "field",
                "value_from": "value",
                "mode": "wide_time_series",
            },
            {},
            "pivot.ts_from is required with mode 'wide_time_series'",
        ),
        (
            {"key": ["Machine ID"], "name_from": "field", "value_from": "value"},
            {},
            "pivot.key column 'Machine ID' is not a valid name",
        ),
        (
            {"key": ["machine__id"], "name_from": "field", "value_from": "value"},
            {},
            "pivot.key column 'machine__id' is not in snake_case: write 'machine_id'",
        ),
        (
            {"key": ["m", "m"], "name_from": "field", "value_from": "value"},
            {},
            "pivot.key names 'm' more than once",
        ),
        (
            {"key": ["ts"], "name_from": "f", "value_from": "v", "ts_from": "t"},
            {},
            "pivot.key column 'ts' is the pivoted rows' timestamp",
        ),
        (
            {"key": ["m"], "key_from": {"press": "node_id"}, "name_from": "f", "value_from": "v"},
            {},
            "pivot.key_from names 'press', which is not one of pivot.key ['m']",
        ),
        (
            {
                "key": ["m"],
                "key_from": {"m": {"expr": "value +"}},
                "name_from": "f",
                "value_from": "v",
            },
            {},
            "expression 'value +' is not valid",
        ),
        (
            {"key": ["m"], "name_from": "a..b", "value_from": "v"},
            {},
            "path 'a..b' has an empty segment",
        ),
        (
            {"key": ["m"], "name_from": {"expr": "value.upper()"}, "value_from": "v"},
            {},
            "pivot.name_from needs 'from' (the sample's source path)",
        ),
        (
            {"key": ["m"], "name_from": "f", "value_from": "v"},
            {"primary_key": ["m"]},
            "primary_key cannot be declared with pivot: the rows' key is pivot.key",
        ),
        (
            {"key": ["m"], "name_from": "f", "value_from": "v", "ts_from": "t"},
            {"cursor_field": "ts"},
            "cursor_field cannot be used with pivot",
        ),
        (
            {"key": ["m"], "name_from": "f", "value_from": "v"},
            {"validate": [{"field": "force", "rule": "required"}]},
            "validate rule 'required' on 'force' cannot be used with pivot",
        ),
        (
            {
                "key": ["m"],
                "name_from": "f",
                "value_from": "v",
                "ts_from": "t",
                "mode": "wide_time_series",
            },
            {"fields": {"m": "m", "force": "force"}},
            "primary_key column 'ts' (a key column of the pivot) is not one of the mapped fields",
        ),
    ],
)
def test_bad_pivot_config_names_the_key(
    pivot: dict[str, Any], extra: dict[str, Any], expected: str
) -> None:
    assert expected in _problems({"pivot": pivot, **extra})


def test_pivoted_mappings_never_take_the_columnar_path() -> None:
    # Arrow batches skip the record pipeline, and so would skip the pivot.
    for pivot in (PIVOT, WIDE):
        config = MappingConfig.model_validate(
            {"pivot": pivot, "fields": {"machine_id": "machine_id", "ts": "ts", "force": "force"}}
        )
        assert not columnar.eligible(config)
        assert columnar.projection(config, {}) is None


# -- batch runs and realtime flushes, on both stores ---------------------------------
def _rows(store: Store, table: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        rows = read_rows(conn, table)
    return sorted(
        ({k: v for k, v in r.items() if not k.startswith("_")} for r in rows),
        key=lambda r: (r["machine_id"], r.get("ts") or BASE),
    )


def test_a_batch_run_pivots_a_file_of_samples(store: Store, data_dir: Path) -> None:
    records = samples(0, 1)
    random.Random(3).shuffle(records)
    path = write_json(data_dir / "press_line.json", records)
    register(
        store,
        {
            "source_id": "press-line",
            "name": "Press line",
            "source_type": "json",
            "connections": [{"connection_config": {"file_path": str(path)}}],
            "mappings": [
                {
                    "target_table": "press_latest",
                    "sync_strategy": "full",
                    "mapping_config": {"pivot": PIVOT},
                },
                {
                    "target_table": "press_series",
                    "sync_strategy": "full",
                    "mapping_config": {"pivot": WIDE},
                },
            ],
        },
    )
    runner = Runner(store)
    first = runner.sync("press-line")
    assert first.sync_status == "success", first.error_message
    # 30 samples for each mapping; 3 machine rows and 6 time rows.
    assert (first.records_processed, first.records_inserted, first.records_rejected) == (60, 9, 0)
    assert _rows(store, "press_latest") == [machine_row(m, 1) for m in MACHINES]
    assert _rows(store, "press_series") == [machine_row(m, t) for m in MACHINES for t in (0, 1)]

    again = runner.sync("press-line")
    assert (again.records_inserted, again.records_updated, again.records_deleted) == (0, 0, 0)

    # A snapshot without P3: its rows go; P1's newer samples update its rows.
    write_json(path, [r for r in samples(0, 1, 2) if "P3." not in r["node_id"]])
    third = runner.sync("press-line")
    assert third.sync_status == "success", third.error_message
    assert (third.records_inserted, third.records_updated, third.records_deleted) == (2, 2, 3)
    assert _rows(store, "press_latest") == [machine_row(m, 2) for m in ("P1", "P2")]


def _writer(store: Store, mode: str) -> MicroBatchWriter:
    """A realtime source whose key comes from MQTT topic levels (line, machine_id)."""
    pivot: dict[str, Any] = {
        "key": ["line", "machine_id"],
        "name_from": "signal",
        "value_from": "value",
        "ts_from": "at",
        "mode": mode,
    }
    register_realtime(
        store,
        mqtt_source(
            "press-topics",
            "127.0.0.1",
            1883,
            ["plant/+/+/+"],
            table="press_state",
            mapping={"pivot": pivot},
            topic_template="plant/{line}/{machine_id}/{signal}",
        ),
    )
    writer = MicroBatchWriter(store, "press-topics", window_s=3600)
    writer.open()
    return writer


def message(machine: str, signal: str, value: Any, t: int) -> Incoming:
    record = {"line": "L1", "machine_id": machine, "signal": signal, "value": value}
    return Incoming([{**record, "at": at(t).isoformat()}])


def _state(store: Store) -> list[dict[str, Any]]:
    return _rows(store, "press_state")


def _counts(writer: MicroBatchWriter) -> tuple[int, int, int]:
    r = writer.window.result
    assert r is not None
    return r.records_processed, r.records_inserted, r.records_updated


def test_partial_flushes_leave_every_signal_set(store: Store) -> None:
    writer = _writer(store, "latest")
    try:
        writer.flush([message("M1", "force", 812.5, 1)])
        writer.flush([message("M1", "state", "run", 2)])
        row = {"line": "L1", "machine_id": "M1", "ts": at(2), "force": 812.5, "state": "run"}
        assert _state(store) == [row]
        assert _counts(writer) == (2, 1, 1)

        # An older sample changes nothing; a flush with many samples of a machine
        # writes its one row, complete.
        writer.flush([message("M1", "force", 1.0, 0)])
        assert _state(store) == [row] and _counts(writer) == (3, 1, 1)
        writer.flush(
            [
                message("M2", "force", 790.0, 3),
                message("M1", "force", 815.0, 3),
                message("M2", "state", "idle", 3),
            ]
        )
        assert _state(store) == [
            {**row, "ts": at(3), "force": 815.0},
            {"line": "L1", "machine_id": "M2", "ts": at(3), "force": 790.0, "state": "idle"},
        ]
        assert _counts(writer) == (6, 2, 2)
    finally:
        writer.stop()


def test_partial_flushes_complete_a_time_row(store: Store) -> None:
    writer = _writer(store, "wide_time_series")
    try:
        writer.flush([message("M1", "force", 812.5, 1), message("M1", "force", 813.0, 2)])
        writer.flush([message("M1", "state", "run", 1)])
        writer.flush([message("M1", "state", "stop", 2), message("M1", "force", 812.0, 1)])
        assert _state(store) == [
            {"line": "L1", "machine_id": "M1", "ts": at(1), "force": 812.0, "state": "run"},
            {"line": "L1", "machine_id": "M1", "ts": at(2), "force": 813.0, "state": "stop"},
        ]
        assert _counts(writer) == (5, 2, 3)
    finally:
        writer.stop()
