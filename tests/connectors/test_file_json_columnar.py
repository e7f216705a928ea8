"""Large JSON arrays read in chunks of whole records (connectors/file/json_columnar.py):
the same records as orjson and ijson decode from the whole document, wherever the chunks
are cut; rows where Arrow cannot hold the records; errors naming the record and the
byte offset; and syncs into the store matching the row path."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import ijson
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factorysync.connectors.base import ReadRequest
from factorysync.connectors.file import json as json_format
from factorysync.connectors.file import json_columnar
from factorysync.connectors.file.json_columnar import ArrayReader
from factorysync.engine.runner import Runner
from factorysync.errors import ConnectorFatal
from factorysync.store.store import Store
from tests.engine.test_runner import counts, register, table_rows


def parts_of(document: bytes, records_path: str | None = None, chunk: int = 64) -> list[Any]:
    reader = ArrayReader(io.BytesIO(document), "doc.json", chunk_size=chunk)
    assert reader.open(records_path), "the reader declined the document"
    return list(reader.parts())


def rows_of(parts: list[Any]) -> list[Any]:
    return [r for p in parts for r in (p if isinstance(p, list) else p.to_pylist())]


def tagged(value: Any) -> Any:
    """A value with its JSON kind, so that True never equals 1; a missing field and null
    are the same (a column holds null for a record without the field)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, dict):
        return {k: tagged(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [tagged(v) for v in value]
    return (type(value).__name__, value)


def expected(document: bytes, records_path: str | None) -> list[Any]:
    """The records as the whole-document row path (orjson) sees them, checked against
    ijson's streaming decoding."""
    records = orjson.loads(document)
    for key in (records_path or "").split(".") if records_path else []:
        records = records[key]
    prefix = f"{records_path}.item" if records_path else "item"
    streamed = list(ijson.items(io.BytesIO(document), prefix, use_float=True))
    assert tagged(streamed) == tagged(records)
    return records  # type: ignore[no-any-return]


# -- generated documents ------------------------------------------------------------------
TRICKY = st.sampled_from(
    ["}", "{", "]", "[", ",", '"', "\\", ":", "},{", '"}, {"', "\n", "\t", "é", "😀", " ", "\\u"]
)
text = st.lists(st.one_of(TRICKY, st.text(max_size=4)), max_size=5).map("".join)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(1 - 2**63, 2**63 - 1),  # ijson (yajl) refuses larger ones
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
key = st.one_of(st.sampled_from(["id", "a", "b", "ts", "x y", "}", '"q"', "é"]), text)
flat_record = st.dictionaries(key, scalar, max_size=5)
nested_value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=2), max_leaves=3)
any_record = st.one_of(
    flat_record,
    st.dictionaries(key, nested_value, max_size=3),
    st.dictionaries(key, st.dictionaries(key, scalar, max_size=2), max_size=2),
)


def same_kind_columns(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records whose fields keep one kind each (as most files have): the columnar case."""
    kinds: dict[str, type] = {}
    out = []
    for record in records:
        kept = {}
        for name, value in record.items():
            kind = float if type(value) is int else type(value)
            if value is None or kinds.setdefault(name, kind) is kind:
                kept[name] = value
        out.append(kept)
    return out


def dumped(records: Any, style: int) -> bytes:
    if style == 0:
        return orjson.dumps(records)
    if style == 1:
        return orjson.dumps(records, option=orjson.OPT_INDENT_2)
    if style == 2:
        return json.dumps(records, ensure_ascii=True, separators=(" , ", " : ")).encode()
    return json.dumps(records, ensure_ascii=False, indent="\t").encode() + b"\r\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.one_of(
        st.lists(flat_record, max_size=12).map(same_kind_columns),
        st.lists(any_record, max_size=8),
    ),
    style=st.integers(0, 3),
    wrapped=st.sampled_from([None, "data", "body.items"]),
    chunk=st.one_of(st.integers(1, 48), st.just(1 << 20)),
)
def test_the_same_records_as_orjson_and_ijson(
    records: list[Any], style: int, wrapped: str | None, chunk: int
) -> None:
    document: Any = records
    if wrapped == "data":
        document = {"meta": {"note": "}]", "n": [1, {"x": None}]}, "data": records, "end": 1}
    elif wrapped == "body.items":
        document = {"body": {"count": len(records), "items": records}, "ok": True}
    raw = dumped(document, style)
    assert tagged(rows_of(parts_of(raw, wrapped, chunk))) == tagged(expected(raw, wrapped))


def test_flat_records_become_one_batch_per_chunk() -> None:
    records = [{"id": i, "name": f'm"{i}"}}', "v": i / 4, "ok": i % 2 == 0} for i in range(500)]
    parts = parts_of(orjson.dumps(records), chunk=4096)
    assert len(parts) > 3 and all(not isinstance(p, list) for p in parts)
    assert [str(t) for t in parts[0].schema.types] == ["int64", "string", "double", "bool"]
    assert rows_of(parts) == records


def test_text_arrow_would_read_as_timestamps_stays_text() -> None:
    records = [{"id": i, "ts": f"2026-01-05T0{i % 10}:00:00+07:00"} for i in range(100)]
    records[60]["day"] = "2026-01-05"  # first seen in a later chunk
    parts = parts_of(orjson.dumps(records), chunk=1024)
    assert all(str(p.schema.field("ts").type) == "string" for p in parts)
    assert rows_of(parts)[60]["day"] == "2026-01-05"
    assert [p.schema.names[:2] for p in parts] == [["id", "ts"]] * len(parts)


@pytest.mark.parametrize(
    ("odd", "why"),
    [
        ({"id": 7, "v": {"x": 1}}, "nested object"),
        ({"id": 7, "v": [1, 2]}, "list"),
        ({"id": 7, "v": "seven"}, "text among numbers"),
        ({"id": 7, "v": True}, "boolean among numbers"),
        ({"id": 7, "v": 2**60 + 1}, "integer a double cannot hold"),
        ({"id": 7, "v": 1, "v2": 3}, "duplicate key (written below)"),
    ],
)
def test_chunks_that_arrow_cannot_hold_are_decoded_rows(odd: dict[str, Any], why: str) -> None:
    records: list[Any] = [{"id": i, "v": i / 2} for i in range(40)]
    records[7] = odd
    raw = orjson.dumps(records)
    if "v2" in odd:
        raw = raw.replace(b'"v2":3', b'"v":3')  # orjson keeps the last value
    parts = parts_of(raw, chunk=128)
    assert any(isinstance(p, list) for p in parts) and any(not isinstance(p, list) for p in parts)
    assert tagged(rows_of(parts)) == tagged(orjson.loads(raw)), why


def test_null_records_and_empty_objects_are_rows() -> None:
    raw = b'[{"a": 1}, null, {}, {"a": 2}]'
    assert rows_of(parts_of(raw, chunk=1 << 20)) == [{"a": 1}, None, {}, {"a": 2}]
    assert rows_of(parts_of(b"[{}, {}]")) == [{}, {}]
    assert rows_of(parts_of(b"  [ ]  ")) == []


@pytest.mark.parametrize(
    ("document", "path"),
    [
        (b'{"a": 1}', None),  # one object: the row path's business
        (b'{"data": {"a": 1}}', "data"),  # not an array
        (b'{"other": []}', "data"),
        (b'{"data" 1}', "data"),
        (b"", None),
    ],
)
def test_documents_of_another_shape_are_declined(document: bytes, path: str | None) -> None:
    assert not ArrayReader(io.BytesIO(document), "doc.json").open(path)


# -- errors -------------------------------------------------------------------------------
GOOD = b'[{"id": 1, "v": 1.5},\n {"id": 2, "v": 2.5},\n {"id": 3, "v": 3.5}'


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (GOOD, r"in record 3 \(byte offset 45\): the file ends before .* \(truncated\?\)$"),
        (GOOD[:40], r"in record 2 \(byte offset 23\): the file ends before .* \(truncated\?\)"),
        (GOOD.replace(b"2.5", b"2.5.1") + b"]", r"in record 2 \(byte offset 41\): unexpected"),
        (GOOD.replace(b"2.5", b"NaN") + b"]", r"in record 2 \(byte offset 38\): unexpected"),
        (GOOD.replace(b"2.5}", b"2.5}}") + b"]", r"in record 2 \(byte offset 42\): unexpected"),
        (GOOD + b",]", r"(in|after) record 3 \(byte offset 6[45]\): (trailing comma|a record is)"),
        (GOOD.replace(b',\n {"id": 3', b' {"id": 3') + b"]", r"in record 2 \(byte offset 43\)"),
        (GOOD + b"] []", r"after the records \(from byte offset 65\): parse error: trailing"),
    ],
    ids=[
        "truncated",
        "cut in a record",
        "bad number",
        "nan",
        "stray brace",
        "trailing comma",
        "missing comma",
        "trailing garbage",
    ],
)
@pytest.mark.parametrize("chunk", [8, 1 << 20])
def test_malformed_json_names_the_record_and_byte(
    document: bytes, message: str, chunk: int
) -> None:
    with pytest.raises(ConnectorFatal, match=r"^doc\.json: invalid JSON " + message):
        parts_of(document, chunk=chunk)


def test_wrapped_document_checks_what_follows_the_records() -> None:
    with pytest.raises(ConnectorFatal, match=r"after the records .*: parse error"):
        parts_of(b'{"data": [{"a": 1}], "x": }', "data")


# -- through the file connector -----------------------------------------------------------
@pytest.fixture
def streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every document is streamed, in chunks of 256 bytes."""
    monkeypatch.setattr(json_format, "STREAM_THRESHOLD", 0)
    monkeypatch.setattr(json_columnar, "ARRAY_CHUNK", 256)


def read(connector: Any, columnar: bool = True) -> list[Any]:
    out: list[Any] = []
    for batch in connector.read(ReadRequest(columnar=columnar)):
        out.extend(batch.arrow.to_pylist() if batch.arrow is not None else batch.records)
    return out


@pytest.mark.usefixtures("streamed")
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "latin-1", "utf-16"])
def test_encodings_are_read_in_chunks_too(data_dir: Path, make: Any, encoding: str) -> None:
    records = [{"id": i, "name": f"Prüfstand {i} – ß", "v": i * 1.5} for i in range(60)]
    text = json.dumps({"data": records}, ensure_ascii=False)
    if encoding == "latin-1":
        text = text.replace("–", "-")
    (data_dir / "e.json").write_bytes(text.encode(encoding))
    got = read(make("file", {"file_path": "e.json", "encoding": encoding, "records_path": "data"}))
    assert [r["id"] for r in got] == list(range(60))
    assert got[5]["name"].startswith("Prüfstand 5")


@pytest.mark.usefixtures("streamed")
def test_invalid_utf8_names_the_line(data_dir: Path, make: Any) -> None:
    records = [{"id": i, "name": f"n{i}"} for i in range(40)]
    raw = orjson.dumps(records, option=orjson.OPT_INDENT_2).replace(b'"n33"', b'"n\xff33"')
    (data_dir / "u.json").write_bytes(raw)
    line = raw[: raw.index(b"\xff")].count(b"\n") + 1
    with pytest.raises(ConnectorFatal, match=rf"u\.json: line {line} \(byte offset [\d,]+\): not"):
        read(make("file", {"file_path": "u.json"}))


@pytest.mark.usefixtures("streamed")
def test_no_records_and_other_shapes(data_dir: Path, make: Any) -> None:
    (data_dir / "empty.json").write_bytes(b"[]")
    with pytest.raises(ConnectorFatal, match="no records at 'the top-level array'"):
        read(make("file", {"file_path": "empty.json"}))
    (data_dir / "other.json").write_bytes(b'{"rows": [{"a": 1}]}')
    with pytest.raises(ConnectorFatal, match="no records at 'data'"):
        read(make("file", {"file_path": "other.json", "records_path": "data"}))


def file_source(sid: str, path: Path, columnar: bool) -> dict[str, Any]:
    config: dict[str, Any] = {"primary_key": "id", "records_path": "data"}
    if not columnar:  # a validation rule that never fails forces the row path
        config["validate"] = [{"field": "id", "rule": "min", "value": -1e18}]
    return {
        "source_id": sid,
        "name": sid,
        "source_type": "json",
        "connections": [{"connection_config": {"file_path": str(path)}}],
        "mappings": [{"target_table": sid, "mapping_config": config}],
    }


def production(n: int, bump: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "machine": f'M-{i % 4} "{{press}}"',
            "at": f"2026-01-05T0{i % 10}:00:00+07:00",
            "qty": i + (bump if i % 3 == 0 else 0),
            "temp": None if i % 5 == 0 else i / 4,
            "ok": i % 2 == 0,
            **({"note": {"by": "QA"}} if i == 250 else {}),  # one chunk of rows
        }
        for i in range(n)
    ]


def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    drop = {"_source_id", "_run_id", "_synced_at", "_row_hash"}
    return sorted(
        ({k: v for k, v in r.items() if k not in drop} for r in rows), key=lambda r: r["id"]
    )


def test_large_document_syncs_as_the_row_path_does(
    store: Store, data_dir: Path, make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json_format, "STREAM_THRESHOLD", 4096)
    monkeypatch.setattr(json_columnar, "ARRAY_CHUNK", 2048)
    path = data_dir / "production.json"
    register(store, file_source("fast", path, True), file_source("slow", path, False))
    runner = Runner(store)
    seen = []
    for step in (production(400), production(400), production(420, bump=1), production(300)):
        path.write_bytes(orjson.dumps({"plant": "P1", "data": step}, option=orjson.OPT_INDENT_2))
        assert path.stat().st_size > json_format.STREAM_THRESHOLD
        # Arrow batches, and rows for the chunk holding record 250.
        batches = list(
            make("file", {"file_path": str(path), "records_path": "data"}).read(
                ReadRequest(columnar=True)
            )
        )
        assert sum(b.arrow is not None for b in batches) > 10
        assert sum(len(b.records) for b in batches) == (12 if len(step) > 250 else 0)
        fast, slow = runner.sync("fast"), runner.sync("slow")
        assert fast.sync_status == slow.sync_status == "success", (fast, slow)
        assert counts(fast) == counts(slow)
        seen.append(counts(fast))
        rows = strip(table_rows(store, "fast"))
        assert rows == strip(table_rows(store, "slow"))
        assert len(rows) == len(step)
    assert seen == [(400, 0, 0), (0, 0, 0), (20, 134, 0), (0, 100, 120)]
    rows = {r["id"]: r for r in strip(table_rows(store, "fast"))}
    assert rows[7]["machine"] == 'M-3 "{press}"' and rows[7]["qty"] == 7
    assert rows[10]["temp"] is None and rows[11]["temp"] == 2.75 and rows[11]["ok"] is False
    assert rows[0]["at"].isoformat() == "2026-01-04T17:00:00+00:00"


def test_truncated_large_document_fails_and_keeps_the_rows(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json_format, "STREAM_THRESHOLD", 4096)
    monkeypatch.setattr(json_columnar, "ARRAY_CHUNK", 2048)
    path = data_dir / "production.json"
    register(store, file_source("fast", path, True))
    runner = Runner(store)
    path.write_bytes(orjson.dumps({"data": production(200)}))
    assert runner.sync("fast").records_inserted == 200
    path.write_bytes(path.read_bytes()[:-300])
    failed = runner.sync("fast")
    assert failed.sync_status == "failed"
    assert "invalid JSON in record 198 (byte offset 20,421)" in failed.error_message
    assert "(truncated?)" in failed.error_message
    assert len(table_rows(store, "fast")) == 200
