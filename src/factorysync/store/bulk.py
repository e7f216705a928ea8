"""Columnar staging: Arrow record batches into a run's staging table without per-row Python.

PostgreSQL receives each batch through ``COPY … FROM STDIN`` (binary, or CSV written by
Arrow's C++ CSV writer); SQLite receives multi-row ``INSERT`` statements through
``executemany``, the values laid out row by row by numpy and the timestamps formatted by
Arrow. Both run in the run's connection and transaction, next to
the row-by-row path of :mod:`factorysync.store.targets`, which handles whatever this one
cannot (nested values, a batch whose values do not fit the column types).

This module uses a :class:`~factorysync.store.targets.TargetTable` and the column kinds;
they import nothing of it. A first load's COPY stays open across batches
(:class:`~factorysync.store.open_copy.OpenCopy`, which the target table ends too).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from factorysync.kinds import merge_kinds
from factorysync.store.key_order import ORDERED_KINDS
from factorysync.store.open_copy import OpenCopy

if TYPE_CHECKING:  # pyarrow is imported lazily: only columnar sources need it
    import numpy as np
    import pyarrow as pa

    from factorysync.store.targets import TargetTable


SQLITE_SLICE_ROWS = 10_000  # rows turned into Python values per executemany
# Rows per SQLite INSERT statement: one statement per row spends more time in the driver's
# per-statement work (reset, step, GIL hand-off) than in binding values; past ~100 rows
# the gain is flat. Capped by the connection's bound-parameter limit.
SQLITE_ROWS_PER_INSERT = 100
BINARY_SLICE_ROWS = 16_384  # rows encoded at once for a binary COPY


class NotColumnar(Exception):
    """This batch cannot take the columnar path; stage it row by row instead."""


def arrow_kind(dtype: pa.DataType) -> str | None:
    """Our column kind for an Arrow type; None when the columnar path cannot carry it."""
    import pyarrow as pa

    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_integer(dtype):
        return "integer"
    if pa.types.is_floating(dtype):
        return "float"
    if pa.types.is_decimal(dtype):
        return "decimal"
    if pa.types.is_timestamp(dtype):
        return "datetime"
    if pa.types.is_date(dtype):
        return "date"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if pa.types.is_null(dtype):
        return "string"
    return None


def _normalise(column: pa.Array, kind: str) -> pa.Array:
    """The column as the target kind wants it (timestamps in UTC microseconds)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    dtype = column.type
    if kind == "datetime":
        if pa.types.is_timestamp(dtype):
            if dtype.tz is None:
                raise NotColumnar("timestamp without a time zone")
            return pc.cast(column, pa.timestamp("us", "UTC"))
        raise NotColumnar("not a timestamp")
    if kind == "date" and not pa.types.is_date(dtype):
        raise NotColumnar("not a date")
    if kind == "integer" and not pa.types.is_integer(dtype):
        if pa.types.is_null(dtype):
            return column.cast(pa.int64())
        raise NotColumnar("not an integer")
    if kind == "float":
        if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_null(dtype):
            return pc.cast(column, pa.float64())
        raise NotColumnar("not a number")
    if kind == "string":
        if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
            return column
        if pa.types.is_null(dtype):
            return column.cast(pa.string())
        raise NotColumnar("not text")
    if kind == "boolean" and not (pa.types.is_boolean(dtype) or pa.types.is_null(dtype)):
        raise NotColumnar("not a boolean")
    if kind == "decimal" and not (pa.types.is_decimal(dtype) or pa.types.is_integer(dtype)):
        raise NotColumnar("not a decimal")
    if kind == "json":
        raise NotColumnar("JSON columns take the row path")
    return column


def plan_arrow(target: TargetTable, batch: pa.RecordBatch) -> None:
    """Learn column kinds from a batch's schema (declared types win, tables only widen)."""
    found: dict[str, str] = {}
    for name, dtype in zip(batch.schema.names, batch.schema.types, strict=True):
        kind = target.declared.get(name) or arrow_kind(dtype)
        if kind is None:
            raise NotColumnar(f"column {name!r} has Arrow type {dtype}")
        if dtype == "null" and name in target.kinds:
            continue
        found[name] = kind
    plan_kinds(target, found)


def plan_kinds(target: TargetTable, kinds: dict[str, str]) -> None:
    """Learn column kinds known without a batch (declared types win, tables only widen)."""
    for name, found in kinds.items():
        kind = target.declared.get(name) or found
        current = target.kinds.get(name) or target.existing.get(name)
        target.kinds[name] = merge_kinds(current, kind) or kind


def stage_arrow(target: TargetTable, batch: pa.RecordBatch) -> int:
    """Write one batch into the target's staging table; raises NotColumnar to fall back."""
    if batch.num_rows == 0:
        return 0
    missing = [k for k in target.key if k not in batch.schema.names]
    if missing:
        raise NotColumnar(f"key column(s) {missing} missing")
    plan_arrow(target, batch)
    columns = [
        _normalise(batch.column(i), target.kinds[name]) for i, name in enumerate(batch.schema.names)
    ]
    names = list(batch.schema.names)
    for key in target.key:
        if columns[names.index(key)].null_count:
            raise NotColumnar("a key column has empty values")
    if target.direct:
        target.ensure_target()
        from sqlalchemy.exc import IntegrityError

        driver_error: type[Exception]
        if target.dialect == "postgresql":
            from psycopg import IntegrityError as driver_error
        else:
            from sqlite3 import IntegrityError as driver_error
        try:
            _write_direct(target, names, columns)
        except driver_error as exc:
            # A repeated key once the key index exists (the driver's own error, as this
            # bypasses SQLAlchemy): the runner then loads again through staging.
            raise IntegrityError("bulk first load", None, exc) from exc
        target.direct_rows += batch.num_rows
        return int(batch.num_rows)
    target.ensure_stage()
    if target.dialect == "postgresql":
        target.stage_order.follow(_ordered_key(target, names, columns))
        _copy_postgres(target, names, columns)
    elif not (target.bulk_staging and _stage_sqlite(target, names, columns, staging=True)):
        _insert_sqlite(target, names, columns)
    target.staged_rows(batch.num_rows)
    return int(batch.num_rows)


def _write_direct(target: TargetTable, names: list[str], columns: list[pa.Array]) -> None:
    """First load: rows straight into the target, provenance columns as constants."""
    import pyarrow as pa

    values = target.direct_values
    if target.dialect != "postgresql":
        if not _stage_sqlite(target, names, columns, staging=False):
            # Constants in the statement: three values fewer to bind per row.
            _insert_sqlite(target, names, columns, into=target.name, constants=values)
        return
    constants = {
        "_source_id": pa.scalar(values["_source_id"], pa.string()),
        "_run_id": pa.scalar(values["_run_id"], pa.int64()),
        "_synced_at": pa.scalar(values["_synced_at"], pa.timestamp("us", "UTC")),
    }
    _copy_into(target, target.name, names, columns, keep_open=True, constants=constants)


_PROVENANCE_KINDS = {
    "_source_id": "string",
    "_run_id": "integer",
    "_synced_at": "datetime",
    "_row_hash": "string",
}


def _copy_into(
    target: TargetTable,
    table: str,
    names: list[str],
    columns: list[pa.Array],
    *,
    keep_open: bool = False,
    constants: dict[str, pa.Scalar] | None = None,
) -> None:
    """COPY the columns into ``table``: binary where every column's kind allows it (the
    server's cheapest input), else CSV written by Arrow. ``constants`` are columns that
    hold the same value in every row, after ``columns``."""
    import pyarrow as pa

    from factorysync.store import pgbinary

    constants = constants or {}
    rows = len(columns[0]) if columns else 0
    kinds = [target.kinds.get(n) or _PROVENANCE_KINDS.get(n, "") for n in names]
    fixed = [_PROVENANCE_KINDS[n] for n in constants]
    everything = [*names, *constants]
    cols = ", ".join(target.quote(n) for n in everything)
    parts: Iterable[bytes | memoryview]
    if (
        pgbinary.fits(columns, kinds)
        and pgbinary.fits([pa.array([v], v.type) for v in constants.values()], fixed)
        and binary_fits(target, table, everything, [*kinds, *fixed])
    ):
        statement = _binary_copy(target, table, everything)
        head, tail = pgbinary.SIGNATURE, pgbinary.TRAILER
        suffix = pgbinary.constants(
            [v.as_py() for v in constants.values()], [v.type for v in constants.values()], fixed
        )
        # Encoded a slice at a time: the intermediate arrays stay small.
        parts = (
            _encoded(
                [c.slice(start, BINARY_SLICE_ROWS) for c in columns], kinds, suffix, len(fixed)
            )
            for start in range(0, rows, BINARY_SLICE_ROWS)
        )
    else:
        statement = f"COPY {target.quote(table)} ({cols}) FROM STDIN (FORMAT CSV)"
        head = tail = b""
        repeated = [pa.repeat(v, rows) for v in constants.values()]
        parts = [_csv(everything, [*columns, *repeated])]
    if keep_open:
        copy = OpenCopy.get(target.conn, statement, head=head, tail=tail)
        for part in parts:
            copy.write(part)
        return
    OpenCopy.end(target.conn)
    raw = target.conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(statement) as stream:
        for part in (head, *parts, tail):
            if part:
                stream.write(part)


def _encoded(
    columns: list[pa.Array], kinds: list[str], suffix: bytes = b"", suffix_fields: int = 0
) -> bytes | memoryview:
    from factorysync.store import pgbinary

    body = pgbinary.encode(columns, kinds, suffix=suffix, suffix_fields=suffix_fields)
    assert body is not None, "pgbinary.fits() said these columns fit"
    return body


_PG_TYPE_OF_KIND = {
    "integer": "bigint",
    "float": "double precision",
    "boolean": "boolean",
    "string": "text",
    "date": "date",
    "datetime": "timestamp with time zone",
}


def binary_fits(target: TargetTable, table: str, names: list[str], kinds: list[str]) -> bool:
    """Whether every column of ``table`` has exactly the type its binary values are for
    (a table made elsewhere may hold an INTEGER or a TIMESTAMP without time zone, whose
    binary forms differ). Asked once per table and column layout."""
    key = (table, tuple(names), tuple(kinds))
    known = target.binary_layouts.get(key)
    if known is None:
        found: dict[str, str] = dict(
            target.conn.execute(
                text(
                    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = to_regclass(:table) AND attnum > 0 AND NOT attisdropped"
                ),
                {"table": target.quote(table)},
            ).all()
        )
        known = all(
            found.get(n) == _PG_TYPE_OF_KIND.get(k) for n, k in zip(names, kinds, strict=True)
        )
        target.binary_layouts[key] = known
    return known


def copy_binary(
    target: TargetTable, table: str, names: list[str], chunks: Iterable[bytes | bytearray]
) -> int:
    """Write a binary COPY stream made elsewhere (signature, rows, trailer) into
    ``table``'s columns ``names``; returns the rows the server took."""
    OpenCopy.end(target.conn)
    raw = target.conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        with cur.copy(_binary_copy(target, table, names)) as copy:
            for chunk in chunks:
                copy.write(chunk)
        return int(cur.rowcount)


def _binary_copy(target: TargetTable, table: str, names: list[str]) -> str:
    cols = ", ".join(target.quote(n) for n in names)
    return f"COPY {target.quote(table)} ({cols}) FROM STDIN (FORMAT BINARY)"


def _csv(names: list[str], columns: list[pa.Array]) -> memoryview:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # Arrow's CSV writer formats zoned timestamps through the time zone database, value
    # by value; as UTC text with an explicit offset they cost a cast and a concatenation.
    columns = [
        _utc_text(column, "+00") if pa.types.is_timestamp(column.type) else column
        for column in columns
    ]
    buffer = io.BytesIO()
    pacsv.write_csv(
        pa.Table.from_arrays(columns, names=names),
        buffer,
        pacsv.WriteOptions(include_header=False),
    )
    return buffer.getbuffer()


def _utc_text(column: pa.Array, suffix: str = "") -> pa.Array:
    """UTC timestamps as "YYYY-MM-DD HH:MM:SS.ffffff" text (plus ``suffix``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(pc.cast(column, pa.timestamp("us")), pa.string())
    return pc.binary_join_element_wise(text, suffix, "") if suffix else text


def _copy_postgres(target: TargetTable, names: list[str], columns: list[pa.Array]) -> None:
    # One COPY across the batches, sent by a thread while the next batch is encoded;
    # the target's flush_bulk() (first thing of a merge) ends it.
    _copy_into(target, target.stage_name, names, columns, keep_open=True)


def _insert_sqlite(
    target: TargetTable,
    names: list[str],
    columns: list[pa.Array],
    into: str | None = None,
    constants: dict[str, Any] | None = None,
) -> None:
    from sqlite3 import SQLITE_LIMIT_VARIABLE_NUMBER

    prepared = _sqlite_columns(target, names, columns)
    fixed = _sqlite_constants(target, constants or {})
    cols = ", ".join(target.quote(n) for n in [*names, *fixed])
    row = "(" + ", ".join(["?"] * len(names) + list(fixed.values())) + ")"
    table = target.quote(into or target.stage_name)
    head = f"INSERT OR REPLACE INTO {table} ({cols}) VALUES "
    raw = target.conn.connection.driver_connection
    assert raw is not None
    if not prepared:
        return  # no columns, no rows
    rows, width = len(prepared[0]), len(prepared)
    per = max(1, min(SQLITE_ROWS_PER_INSERT, raw.getlimit(SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    full = head + ", ".join([row] * per)
    # Python objects cost ~50 bytes a value: a slice at a time, not the whole batch; a
    # whole number of statements per slice, so only the batch's last slice has a rest.
    step = per * max(1, SQLITE_SLICE_ROWS // per)
    for start in range(0, rows, step):
        values = _row_major([c.slice(start, step) for c in prepared])
        whole = len(values) - len(values) % per
        if whole:
            raw.executemany(full, values[:whole].reshape(-1, width * per).tolist())
        if whole < len(values):
            rest = head + ", ".join([row] * (len(values) - whole))
            raw.execute(rest, values[whole:].reshape(-1).tolist())


def _sqlite_columns(target: TargetTable, names: list[str], columns: list[pa.Array]) -> list[Any]:
    """The columns as SQLite stores them: datetimes as SQLAlchemy's text form, dates and
    decimals as text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    prepared = []
    for name, column in zip(names, columns, strict=True):
        kind = target.kinds.get(name, "")
        if kind == "datetime":
            # The text form SQLAlchemy's DateTime uses on SQLite: naive UTC, microseconds
            # ("2026-01-05 00:00:00.000000"); a cast is far faster than strftime.
            column = _utc_text(column)
        elif kind == "date" or kind == "decimal":
            column = pc.cast(column, pa.string())
        prepared.append(column)
    return prepared


def _sqlite_constants(target: TargetTable, constants: dict[str, Any]) -> dict[str, str]:
    """Provenance values as SQL literals (column → literal)."""
    from factorysync.store.types import UTCDateTime

    fixed = dict(constants)
    if "_synced_at" in fixed:
        stamp = UTCDateTime().process_bind_param(fixed["_synced_at"], target.conn.dialect)
        fixed["_synced_at"] = stamp.isoformat(" ", "microseconds")
    return {name: _sqlite_literal(value) for name, value in fixed.items()}


def _stage_sqlite(
    target: TargetTable, names: list[str], columns: list[pa.Array], *, staging: bool
) -> bool:
    """Queue a batch for the target's Arrow stage, bound for the staging table or (a
    first load) the target; False when this store or connection cannot take one (the
    caller binds the rows itself)."""
    from factorysync.store import arrow_stage

    if not columns:
        return True  # no columns, no rows
    stage = target.arrow_stage
    if stage is None:
        conn = target.conn
        if not (arrow_stage.available(conn.engine.url.database) and arrow_stage.attachable(conn)):
            return False
        if staging:
            table, constants = target.stage_name, {}
        else:
            table, constants = target.name, _sqlite_constants(target, target.direct_values)
        try:
            stage = arrow_stage.ArrowStage(
                str(conn.engine.url.database), target.quote(table), target.quote, constants
            )
        except OSError:  # no file can be made beside the store: the values are bound
            return False
        target.arrow_stage = stage
    # A first load's key is checked for ascending order: the target's indexes can then
    # be built before the rows go in (appended, not sorted).
    keys = None if staging else _ordered_key(target, names, columns)
    stage.put(names, _sqlite_columns(target, names, columns), keys)
    return True


def _ordered_key(target: TargetTable, names: list[str], columns: list[pa.Array]) -> Any:
    """The batch's values of the target's single integer or text key, else None."""
    key = target.key[0] if len(target.key) == 1 else ""
    if key not in names or target.kinds.get(key) not in ORDERED_KINDS:
        return None
    return columns[names.index(key)]


def _row_major(columns: list[pa.Array]) -> np.ndarray:
    """The columns' values as Python objects (None for nulls), one row per line."""
    import numpy as np
    import pyarrow as pa

    out = np.empty((len(columns[0]), len(columns)), dtype=object)
    for j, column in enumerate(columns):
        dtype = column.type
        numeric = pa.types.is_integer(dtype) or pa.types.is_floating(dtype)
        if (numeric and not column.null_count) or _numpy_gives_objects(dtype):
            out[:, j] = column.to_numpy(zero_copy_only=False)
        else:  # numpy holds numbers with nulls as floats and NaN
            out[:, j] = column.to_pylist()
    return out


def _numpy_gives_objects(dtype: pa.DataType) -> bool:
    """Types whose ``to_numpy`` gives Python objects, with None for nulls."""
    import pyarrow as pa

    return bool(
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_null(dtype)
    )


def _sqlite_literal(value: Any) -> str:
    """A constant (text or integer) written into an SQLite statement."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"
