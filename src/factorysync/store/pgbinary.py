"""Arrow columns as PostgreSQL's binary ``COPY`` format, built with numpy.

The server reads binary ``COPY`` with the types' receive functions instead of parsing
text (timestamps and floats above all), which takes it about 40 % less CPU than CSV for
the production rows of the benchmarks. No maintained Python package writes this format
from Arrow (ADBC's PostgreSQL driver does, on a connection of its own, outside the run's
transaction), so it is done here: each row is a field count, then per field a 4-byte
length (-1 for NULL) and the value in network byte order. Values are converted a column
at a time (numpy for the byte order) and Arrow joins the fields row by row.

Only the kinds whose column types are known exactly are encoded (BIGINT, DOUBLE
PRECISION, BOOLEAN, TEXT, DATE, TIMESTAMPTZ); anything else makes :func:`encode` return
None and the caller writes CSV.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # no flags, no header extension
TRAILER = b"\xff\xff"
_PG_EPOCH_DAYS = 10_957  # 2000-01-01 in days since 1970-01-01
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400 * 1_000_000
_WIDTH = {"integer": 8, "float": 8, "boolean": 1, "date": 4, "datetime": 8}


def fits(columns: list[pa.Array], kinds: list[str]) -> bool:
    """Whether every column's Arrow type can be written, exactly, as a column of its kind
    (then :func:`encode` cannot fail)."""
    return all(_carries(c.type, k) for c, k in zip(columns, kinds, strict=True))


def _carries(dtype: pa.DataType, kind: str) -> bool:
    import pyarrow as pa

    if pa.types.is_null(dtype):
        return True
    if kind == "integer":  # every width but unsigned 64-bit fits BIGINT
        return bool(pa.types.is_integer(dtype) and dtype != pa.uint64())
    if kind == "float":
        return bool(pa.types.is_floating(dtype))
    if kind == "boolean":
        return bool(pa.types.is_boolean(dtype))
    if kind == "date":
        return bool(pa.types.is_date(dtype))
    if kind == "datetime":  # units that widen to microseconds without loss
        return bool(pa.types.is_timestamp(dtype) and dtype.tz is not None and dtype.unit != "ns")
    if kind == "string":
        return bool(pa.types.is_string(dtype) or pa.types.is_large_string(dtype))
    return False


def encode(
    columns: list[pa.Array], kinds: list[str], *, suffix: bytes = b"", suffix_fields: int = 0
) -> bytes | memoryview | None:
    """The rows of ``columns`` (one Arrow array per target column, of the given kinds) as
    binary COPY tuples, without signature or trailer; None unless they :func:`fits`.
    ``suffix`` is ``suffix_fields`` fields that end every row alike (:func:`constants`).

    Each column becomes a binary array of its fields (length prefix and value), adjacent
    fixed-width columns without nulls one array together, and Arrow joins them row by
    row: the joined array's data is the COPY body."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = len(columns[0]) if columns else 0
    if not fits(columns, kinds):
        return None
    if rows == 0:
        return b""
    parts: list[pa.Array] = []
    run: list[tuple[pa.Array, str]] = []  # fixed-width columns without nulls, in a row
    for array, kind in zip(columns, kinds, strict=True):
        if kind != "string" and not array.null_count:
            run.append((array, kind))
            continue
        if run:
            parts.append(_fixed_fields(run, rows))
            run = []
        parts.append(_field(array, kind, rows))
    if run:
        parts.append(_fixed_fields(run, rows))
    count = pa.scalar((len(columns) + suffix_fields).to_bytes(2, "big"), pa.binary())
    joined = pc.binary_join_element_wise(
        count, *parts, pa.scalar(suffix, pa.binary()), pa.scalar(b"", pa.binary())
    )
    offsets = joined.buffers()[1]
    start, end = (
        int.from_bytes(offsets[4 * i : 4 * i + 4], "little", signed=True)
        for i in (joined.offset, joined.offset + rows)
    )
    return memoryview(joined.buffers()[2])[start:end]


def constants(values: list[object], types: list[pa.DataType], kinds: list[str]) -> bytes:
    """One row's fields of ``values`` (of Arrow ``types`` and the given kinds): the
    ``suffix`` of :func:`encode` for columns that hold the same value in every row."""
    import pyarrow as pa

    columns = [pa.array([v], t) for v, t in zip(values, types, strict=True)]
    body = encode(columns, kinds)
    assert body is not None, f"constants of kinds {kinds} do not fit"
    return bytes(body)[2:]  # without the row's field count


_NULL_FIELD = b"\xff\xff\xff\xff"


def _field(array: pa.Array, kind: str, rows: int) -> pa.Array:
    """One column's fields as a binary array (length prefix and value)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    null = pa.scalar(_NULL_FIELD, pa.binary())
    if pa.types.is_null(array.type):
        return pa.repeat(null, rows)
    if kind == "string":
        if pa.types.is_large_string(array.type):
            array = array.cast(pa.string())
        lengths = pc.binary_length(array).fill_null(0).to_numpy().astype(">i4")
        prefix = _fixed(lengths.view(np.uint8).reshape(rows, 4))
        fields = pc.binary_join_element_wise(
            prefix, array.cast(pa.binary()), pa.scalar(b"", pa.binary())
        )
    else:
        fields = _fixed_fields([(array, kind)], rows)
    if array.null_count:
        fields = pc.if_else(array.is_valid(), fields, null)
    return fields


def _fixed_fields(run: list[tuple[pa.Array, str]], rows: int) -> pa.Array:
    """The fields of fixed-width columns side by side, as one binary array."""
    width = sum(4 + _WIDTH[kind] for _, kind in run)
    block = np.empty((rows, width), dtype=np.uint8)
    at = 0
    for array, kind in run:
        size = _WIDTH[kind]
        block[:, at : at + 4] = np.frombuffer(size.to_bytes(4, "big"), dtype=np.uint8)
        block[:, at + 4 : at + 4 + size] = _values(array, kind).view(np.uint8).reshape(rows, size)
        at += 4 + size
    return _fixed(block)


def _values(array: pa.Array, kind: str) -> np.ndarray[Any, Any]:
    """The values in network byte order (nulls as zeros) of a column that fits ``kind``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: np.ndarray[Any, Any]
    if kind == "integer":
        out = pc.cast(pc.fill_null(array, 0), pa.int64()).to_numpy().astype(">i8")
    elif kind == "float":
        out = pc.cast(pc.fill_null(array, 0), pa.float64()).to_numpy().astype(">f8")
    elif kind == "boolean":
        out = pc.fill_null(array, False).to_numpy(zero_copy_only=False).astype(np.uint8)
    elif kind == "date":
        days = pc.cast(pc.cast(array, pa.date32()), pa.int32()).fill_null(0).to_numpy()
        out = (days.astype(np.int64) - _PG_EPOCH_DAYS).astype(">i4")
    else:  # datetime
        micros = pc.cast(pc.cast(array, pa.timestamp("us", "UTC")), pa.int64())
        out = (micros.fill_null(0).to_numpy() - _PG_EPOCH_US).astype(">i8")
    return out


def _fixed(block: np.ndarray) -> pa.Array:
    """Rows of a (rows × width) byte block as a binary array."""
    import pyarrow as pa

    rows, width = block.shape
    fixed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), rows, [None, pa.py_buffer(np.ascontiguousarray(block))]
    )
    return fixed.cast(pa.binary())
