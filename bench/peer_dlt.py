"""One dlt load, as the peer benchmarks run it (in the benchmark environment, not ours).

Each invocation is one whole process: the harness times it with its start-up and imports.

    path   default   Python dicts (csv module / json.loads / SQLAlchemy rows): dlt's row path
           arrow     Arrow batches (pyarrow CSV/JSON readers, connectorx for databases)
                     with the parquet loader (ADBC into PostgreSQL)

    python bench/peer_dlt.py --source csv --path data.csv --dest postgres \\
        --dest-url postgresql://postgres@127.0.0.1/db [--path-kind arrow] \\
        [--disposition replace|merge|append] [--incremental] --pipelines-dir DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

# no telemetry: this machine reaches no outside host
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

CHUNK = 10_000
INTS = ("id", "qty_good", "qty_reject")
FLOATS = ("cycle_time_s", "temperature_c", "vibration_mm_s")
COLUMNS = [
    "id", "machine_id", "line", "ts", "shift", "product_code", "qty_good", "qty_reject",
    "cycle_time_s", "temperature_c", "vibration_mm_s", "status",
]  # fmt: skip
HINTS = {"ts": {"data_type": "timestamp", "timezone": True}}
TIMESTAMP = "ts"
NEWLINES_IN_VALUES = False


def text_layout() -> None:
    """Case h's file (bench/text_csv.py): 19 text columns, line breaks inside values."""
    global INTS, FLOATS, COLUMNS, HINTS, TIMESTAMP, NEWLINES_IN_VALUES
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from text_csv import COLUMNS as TEXT_COLUMNS

    INTS, FLOATS, COLUMNS = ("id", "qty"), ("measured",), list(TEXT_COLUMNS)
    TIMESTAMP, NEWLINES_IN_VALUES = "recorded_at", True
    HINTS = {TIMESTAMP: {"data_type": "timestamp", "timezone": True}}


def arrow_schema() -> Any:
    import pyarrow as pa

    types = {c: pa.string() for c in COLUMNS}
    types.update({c: pa.int64() for c in INTS})
    types.update({c: pa.float64() for c in FLOATS})
    types[TIMESTAMP] = pa.timestamp("us", tz="UTC")
    return pa.schema(list(types.items()))


def typed(record: dict[str, Any]) -> dict[str, Any]:
    record[TIMESTAMP] = datetime.fromisoformat(record[TIMESTAMP])
    return record


def chunks(records: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) >= CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def csv_dicts(path: str) -> Iterator[dict[str, Any]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        for values in reader:
            record: dict[str, Any] = {
                name: value or None for name, value in zip(header, values, strict=True)
            }
            for c in INTS:
                record[c] = int(record[c]) if record[c] is not None else None
            for c in FLOATS:
                record[c] = float(record[c]) if record[c] is not None else None
            yield typed(record)


def ndjson_dicts(path: str) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield typed(json.loads(line))


def json_array_dicts(path: str) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        records = json.load(f)
    for record in records:
        yield typed(record)


def csv_arrow(path: str) -> Iterator[Any]:
    import pyarrow.csv as pc

    schema = arrow_schema()
    with pc.open_csv(
        path,
        read_options=pc.ReadOptions(block_size=16 << 20),
        parse_options=pc.ParseOptions(newlines_in_values=NEWLINES_IN_VALUES),
        convert_options=pc.ConvertOptions(column_types=schema, strings_can_be_null=True),
    ) as reader:
        yield from reader


def ndjson_arrow(path: str) -> Iterator[Any]:
    import pyarrow.json as pj

    schema = arrow_schema()
    reader = pj.open_json(
        path,
        read_options=pj.ReadOptions(block_size=16 << 20),
        parse_options=pj.ParseOptions(explicit_schema=schema),
    )
    yield from reader


def json_array_arrow(path: str) -> Iterator[Any]:
    """pyarrow reads no JSON arrays: the document is parsed once, then cut into tables."""
    import pyarrow as pa

    schema = arrow_schema()
    as_text = pa.schema([f.with_type(pa.string()) if f.name == "ts" else f for f in schema])
    with open(path, encoding="utf-8") as f:
        records = json.load(f)
    for start in range(0, len(records), 100_000):
        table = pa.Table.from_pylist(records[start : start + 100_000], schema=as_text)
        yield table.set_column(3, "ts", table["ts"].cast(schema.field("ts").type))


FILE_READERS = {
    ("csv", "default"): lambda p: chunks(csv_dicts(p)),
    ("ndjson", "default"): lambda p: chunks(ndjson_dicts(p)),
    ("json", "default"): lambda p: chunks(json_array_dicts(p)),
    ("csv", "arrow"): csv_arrow,
    ("ndjson", "arrow"): ndjson_arrow,
    ("json", "arrow"): json_array_arrow,
}


def destination(kind: str, url: str) -> Any:
    import dlt

    if kind == "postgres":
        from urllib.parse import urlsplit

        # dlt refuses PostgreSQL credentials without a password, even for trust or peer
        # authentication, where the server ignores it
        parts = urlsplit(url)
        if parts.password is None and parts.username:
            url = url.replace(f"//{parts.username}@", f"//{parts.username}:unused@", 1)
        return dlt.destinations.postgres(credentials=url)
    # a primary key gives the merge's delete-insert an index to join on (without one the
    # merge into SQLite compares every staged row with every stored row)
    return dlt.destinations.sqlalchemy(credentials=url, create_primary_keys=True)


def build_resource(args: argparse.Namespace) -> Any:
    import dlt

    keys: dict[str, Any] = {"write_disposition": args.disposition}
    if args.disposition == "merge":
        keys["primary_key"] = "id"
    if args.source == "postgres":
        from dlt.sources.sql_database import sql_table

        return sql_table(
            credentials=args.source_url,
            table=args.source_table,
            backend="connectorx" if args.path_kind == "arrow" else "sqlalchemy",
            incremental=dlt.sources.incremental("id") if args.incremental else None,
            chunk_size=100_000 if args.path_kind == "arrow" else 50_000,
            **keys,
        )
    read = FILE_READERS[(args.source, args.path_kind)]
    if args.incremental:

        @dlt.resource(name="production", columns=HINTS, **keys)
        def production_incremental(cursor: Any = dlt.sources.incremental("id")) -> Iterator[Any]:
            yield from read(args.path)

        return production_incremental()
    return dlt.resource(read(args.path), name="production", columns=HINTS, **keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", choices=["csv", "ndjson", "json", "postgres"], required=True)
    parser.add_argument("--path", help="the source file")
    parser.add_argument("--source-url", help="postgresql://… of the source database")
    parser.add_argument("--source-table", default="production")
    parser.add_argument("--dest", choices=["postgres", "sqlite"], required=True)
    parser.add_argument("--dest-url", required=True)
    parser.add_argument("--path-kind", choices=["default", "arrow"], default="default")
    parser.add_argument("--disposition", choices=["replace", "merge", "append"], default="replace")
    parser.add_argument("--incremental", action="store_true", help="cursor on id, kept by dlt")
    parser.add_argument(
        "--loader-format", default=None, help="default: parquet on the arrow path, else dlt's"
    )
    parser.add_argument("--dataset", default="bench")
    parser.add_argument(
        "--layout", choices=["production", "text"], default="production", help="the CSV's columns"
    )
    parser.add_argument("--pipelines-dir", required=True)
    args = parser.parse_args(argv)
    if args.layout == "text":
        text_layout()

    import dlt

    pipeline = dlt.pipeline(
        pipeline_name="fs_bench",
        pipelines_dir=args.pipelines_dir,
        destination=destination(args.dest, args.dest_url),
        dataset_name=args.dataset,
        progress=None,
    )
    info = pipeline.run(
        build_resource(args),
        table_name="production",
        loader_file_format=args.loader_format or ("parquet" if args.path_kind == "arrow" else None),
    )
    info.raise_on_failed_jobs()
    counts = pipeline.last_trace.last_normalize_info.row_counts
    print(json.dumps({"rows": counts.get("production", 0)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
