"""JSON, NDJSON and CSV files on the columnar path: Arrow batches where the records allow,
rows where they do not, and the same stored rows and counts as the row path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from factorysync.connectors.base import ReadRequest
from factorysync.connectors.file import csv as csv_file
from factorysync.connectors.file import json as file_module
from factorysync.connectors.file import records_to_arrow
from factorysync.engine.runner import Runner
from factorysync.errors import ConnectorFatal
from factorysync.store.store import Store
from tests.engine.test_runner import counts, register, table_rows


def write_ndjson(path: Path, records: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def read(connector: Any, columnar: bool) -> list[Any]:
    out: list[Any] = []
    for batch in connector.read(ReadRequest(columnar=columnar)):
        out.extend(batch.arrow.to_pylist() if batch.arrow is not None else batch.records)
    return out


@pytest.mark.parametrize(
    ("records", "flat"),
    [
        ([{"a": 1, "b": "x"}, {"a": 2.5, "c": True}], True),
        ([{"a": 1.5}, {"a": True}], False),  # Arrow would read True as 1.0
        ([{"a": 1}, {"a": "1"}], False),
        ([{"a": {"x": 1}}], False),
        ([{"a": [1, 2]}], False),
        ([{"a": 2**70}], False),
        ([[1, 2]], False),
    ],
)
def test_records_become_arrow_only_when_flat(records: list[Any], flat: bool) -> None:
    batch = records_to_arrow(records)
    assert (batch is not None) == flat
    if flat:
        assert batch.to_pylist() == [
            {"a": 1.0, "b": "x", "c": None},
            {"a": 2.5, "b": None, "c": True},
        ]


def test_ndjson_chunks_keep_text_and_fall_back(
    data_dir: Path, make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_module, "NDJSON_CHUNK", 200)
    records = [
        {"id": i, "at": f"2026-01-05T0{i % 10}:00:00+07:00", "day": "2026-01-05", "v": i / 2}
        for i in range(30)
    ]
    records[17]["nested"] = {"x": 1}  # its chunk is decoded line by line
    write_ndjson(data_dir / "m.ndjson", records)
    connector = make("file", {"file_path": "m.ndjson"})
    batches = list(connector.read(ReadRequest(columnar=True)))
    assert any(b.arrow is not None for b in batches) and any(b.records for b in batches)
    got = read(connector, True)
    # Dates stay the text they were (typed later like the row path types them).
    assert [r["at"] for r in got] == [r["at"] for r in records]
    assert [r["id"] for r in got] == list(range(30))
    assert got[17]["nested"] == {"x": 1}


def test_ndjson_bad_line_is_named(data_dir: Path, make: Any) -> None:
    (data_dir / "bad.ndjson").write_bytes(b'{"id": 1}\n{"id": 2}\n{"id": \n')
    with pytest.raises(ConnectorFatal, match="line 3: invalid JSON"):
        read(make("file", {"file_path": "bad.ndjson"}), True)


def test_csv_kinds_hold_across_blocks(
    data_dir: Path, make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_file, "BLOCK_SIZE", 1024)
    lines = ["id,code,ratio,word"]
    for i in range(600):
        code = f"{i:05d}" if i > 300 else str(i + 100)  # leading zeros only later
        lines.append(f"{i},{code},{i / 4 if i % 50 else 'nan'},{'inf' if i == 599 else 'x'}")
    (data_dir / "k.csv").write_text("\n".join(lines) + "\n")
    got = read(make("file", {"file_path": "k.csv"}), True)
    assert [r["id"] for r in got] == list(range(600))
    # "nan" / "inf" stay text, as do codes with leading zeros.
    assert {type(r["ratio"]) for r in got} <= {str, float} and got[0]["ratio"] == "nan"
    assert got[599]["word"] == "inf" and got[301]["code"] == "00301" and got[0]["code"] == 100


def file_source(sid: str, path: Path, columnar: bool, **mapping: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"primary_key": "id", **mapping}
    if not columnar:  # a validation rule that never fails forces the row path
        config["validate"] = [{"field": "id", "rule": "min", "value": -1e18}]
    return {
        "source_id": sid,
        "name": sid,
        "source_type": "json",
        "connections": [{"connection_config": {"file_path": str(path)}}],
        "mappings": [{"target_table": sid, "mapping_config": config}],
    }


def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    drop = {"_source_id", "_run_id", "_synced_at", "_row_hash"}
    return sorted(
        ({k: v for k, v in r.items() if k not in drop} for r in rows), key=lambda r: r["id"]
    )


@pytest.mark.parametrize("suffix", ["ndjson", "json", "csv"])
def test_files_match_the_row_path(store: Store, data_dir: Path, suffix: str) -> None:
    path = data_dir / f"lines.{suffix}"

    def write(records: list[dict[str, Any]]) -> None:
        if suffix == "ndjson":
            write_ndjson(path, records)
        elif suffix == "json":
            path.write_bytes(orjson.dumps(records))
        else:
            names = list(records[0])
            text = [",".join(names)] + [
                ",".join("" if r[n] is None else str(r[n]) for n in names) for r in records
            ]
            path.write_text("\n".join(text) + "\n")

    def records(n: int, bump: int = 0) -> list[dict[str, Any]]:
        return [
            {
                "id": i,
                "machine": f"M-{i % 4}",
                "at": f"2026-01-05T0{i % 10}:00:00+07:00",
                "qty": i + (bump if i % 3 == 0 else 0),
                "temp": None if i % 5 == 0 else i / 4,
                "ok": i % 2 == 0,
            }
            for i in range(n)
        ]

    register(store, file_source("fast", path, True), file_source("slow", path, False))
    runner = Runner(store)
    seen = []
    for step in (records(30), records(30), records(33, bump=1), records(25, bump=1)):
        write(step)
        fast, slow = runner.sync("fast"), runner.sync("slow")
        assert fast.sync_status == slow.sync_status == "success", (fast, slow)
        assert counts(fast) == counts(slow)
        seen.append(counts(fast))
        assert strip(table_rows(store, "fast")) == strip(table_rows(store, "slow"))
    assert seen == [(30, 0, 0), (0, 0, 0), (3, 10, 0), (0, 0, 8)]


def test_first_block_goes_alone_and_the_rest_is_gathered() -> None:
    import pyarrow as pa

    from factorysync.connectors.file.csv import _gathered

    blocks = [pa.record_batch({"n": list(range(i * 10, i * 10 + 10))}) for i in range(5)]
    empty = pa.record_batch({"n": pa.array([], pa.int64())})
    got = list(_gathered(iter([empty, *blocks]), 25))
    assert [(first, b.num_rows) for first, b in got] == [(0, 10), (10, 20), (30, 20)]
    assert [v for _, b in got for v in b.column(0).to_pylist()] == list(range(50))
