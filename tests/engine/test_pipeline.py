"""The one record pipeline: batch runs and the realtime writer refuse the same records for
the same reasons, under one quarantine cap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from factorysync.engine import pipeline
from factorysync.engine.mapping import Mapper, MappingConfig
from factorysync.engine.pipeline import Quarantine, RecordPipeline, Validator
from factorysync.engine.runner import Runner
from factorysync.errors import MappingError
from factorysync.realtime.writer import Incoming, MicroBatchWriter
from factorysync.store.schema import data_source_quarantine as quarantine_t
from factorysync.store.store import Store
from tests.conftest import write_json
from tests.engine.test_runner import json_source, register
from tests.realtime.conftest import mqtt_source
from tests.realtime.conftest import register as register_realtime

MAPPING: dict[str, Any] = {
    "primary_key": ["id"],
    "on_invalid": "quarantine",
    "fields": {"id": "id", "qty": {"from": "qty", "type": "integer"}},
    "validate": [{"field": "qty", "rule": "min", "value": 0}],
}
RECORDS = [
    {"id": 1, "qty": 5},
    {"id": 2, "qty": -3},  # below the minimum
    {"id": None, "qty": 1},  # no key
    {"id": 4, "qty": "many"},  # not an integer
    {"id": 5, "qty": 7},
]


def make(config: dict[str, Any], cursor_field: str | None = None) -> RecordPipeline:
    mapping = MappingConfig.model_validate(config)
    return RecordPipeline(Mapper(mapping), Validator(mapping.validate_), cursor_field=cursor_field)


def test_map_validate_hash() -> None:
    line = make(MAPPING)
    outcomes = [m for record in RECORDS for m in line.run(record)]
    assert [m.accepted for m in outcomes] == [True, False, False, False, True]
    assert outcomes[1].problems == ["qty = -3 is below the minimum 0"]
    assert outcomes[2].problems == ["primary key column 'id' is empty"]
    assert outcomes[3].row is None and "qty" in outcomes[3].problems[0]
    row = outcomes[0].row
    assert row is not None
    digest = line.hashed(row)
    assert digest == line.hashed(dict(row)) and "_row_key" not in row
    # The key of a refused record: from its row, or from its key columns alone.
    assert line.key_of(outcomes[1]) == (2,) and line.key_of(outcomes[3]) == (4,)
    assert line.key_of(outcomes[2]) is None


def test_rows_without_a_key_are_numbered_by_content() -> None:
    line = make({"fields": {"a": "a"}})
    rows = [m.row for m in line.run({"a": 1})] + [m.row for m in line.run({"a": 1})]
    assert all(r is not None for r in rows)
    first, second = (line.hashed(r) for r in rows if r is not None)
    assert first == second
    keys = [r["_row_key"] for r in rows if r is not None]
    assert keys == [f"{first}:0", f"{first}:1"]


def test_an_incremental_cursor_may_not_be_empty() -> None:
    line = make({"primary_key": ["id"], "cursor_field": "ts"}, cursor_field="ts")
    [mapped] = line.run({"id": 1})
    assert mapped.problems == ["cursor_field 'ts' is empty"]


def test_explode_failures_refuse_the_whole_source_record() -> None:
    line = make({"primary_key": ["id"], "explode": "items"})
    [mapped] = line.run({"id": 1, "items": 5})
    assert mapped.stage == "source" and mapped.row is None


def test_quarantine_policies_and_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "QUARANTINE_CAP", 2)
    kept = Quarantine("s", "t", "quarantine")
    assert [kept.refuse({"n": n}, ["bad"], 7) for n in range(4)] == [0, 1, -1, -1]
    assert (kept.refused, kept.kept) == (4, 2)
    entries = kept.take()
    assert [e["record"] for e in entries] == [{"n": 0}, {"n": 1}]
    assert kept.take() == [] and kept.refuse({"n": 9}, ["bad"], 7) == -1  # cap per run
    skipped = Quarantine("s", "t", "skip")
    assert skipped.refuse({}, ["bad"], 7) == -1 and skipped.take() == []
    failing = Quarantine("s", "t", "fail")
    with pytest.raises(MappingError, match=r"^record 3 rejected: bad; worse$"):
        failing.refuse({}, ["bad", "worse"], 7, label="record 3")
    with pytest.raises(MappingError, match=r"^bad$"):
        failing.refuse({}, ["bad", "worse"], 7)


def _reasons(store: Store, source_id: str) -> list[tuple[str, list[str]]]:
    with store.connect() as conn:
        rows = conn.execute(
            select(quarantine_t.c.stage, quarantine_t.c.reasons).where(
                quarantine_t.c.source_id == source_id
            )
        ).all()
    return sorted((r.stage, list(r.reasons)) for r in rows)


def test_batch_and_realtime_refuse_alike_under_one_cap(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "QUARANTINE_CAP", 2)
    path = write_json(data_dir / "lines.json", RECORDS)
    register(store, json_source("batch", path, **MAPPING))
    result = Runner(store).sync("batch")
    assert (result.records_inserted, result.records_rejected) == (2, 3)

    register_realtime(
        store,
        mqtt_source("live", "127.0.0.1", 1883, ["plant/#"], table="live", mapping=MAPPING),
    )
    writer = MicroBatchWriter(store, "live", window_s=3600)
    writer.open()
    try:
        items = [Incoming([record]) for record in RECORDS]
        writer.flush(items)
    finally:
        writer.stop()
    assert [bool(i.rejections) for i in items] == [False, True, True, True, False]
    # Three refused, the first two kept (the cap), with the same reasons either way.
    expected = [
        ("record", ["primary key column 'id' is empty"]),
        ("record", ["qty = -3 is below the minimum 0"]),
    ]
    assert _reasons(store, "batch") == _reasons(store, "live") == expected
