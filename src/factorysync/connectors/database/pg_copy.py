"""PostgreSQL sources read as Arrow record batches through ``COPY (SELECT …) TO STDOUT``.

The server writes the rows as CSV and pyarrow parses them with column types taken from
the query's result description, so no Python object is made per value. This is used
when the engine asks for Arrow batches and every column has a type whose CSV text
parses to exactly the value the row path's driver returns:

    int2 int4 int8 oid            int64
    float4 float8                 float64 (parsed from the same text the driver parses)
    text varchar bpchar name      string (uuid as its text, like the row path)
    bool                          bool (t / f)
    date                          date32
    timestamptz                   timestamp[us, UTC] (the session writes UTC offsets)
    timestamp                     timestamp[us] in the connection's ``timezone``

Any other column (numeric, json, bytea, arrays, times, intervals, …) keeps the row path
for the whole read. Session settings that shape the text (time zone, date style) are
set with ``SET LOCAL`` inside the read's own transaction, which is rolled back
afterwards like every read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from factorysync.prefetch import prefetched

if TYPE_CHECKING:
    import pyarrow as pa

# CSV bytes parsed at once: a few MB keeps pyarrow's per-call overhead negligible.
CHUNK_BYTES = 8 * 1024 * 1024
PREFETCH = 2  # parsed chunks that may wait for the consumer
_STRING_TYPES = {"text", "varchar", "bpchar", "name", "uuid", "citext"}
_INT_TYPES = {"int2", "int4", "int8", "oid"}


def arrow_type(type_name: str | None) -> pa.DataType | None:
    """The Arrow type a column of this PostgreSQL type is parsed as; None: not supported."""
    import pyarrow as pa

    if type_name in _INT_TYPES:
        return pa.int64()
    if type_name in ("float4", "float8"):
        return pa.float64()
    if type_name in _STRING_TYPES:
        return pa.string()
    if type_name == "bool":
        return pa.bool_()
    if type_name == "date":
        return pa.date32()
    if type_name == "timestamptz":
        return pa.timestamp("us", "UTC")
    if type_name == "timestamp":
        return pa.timestamp("us")
    return None


def column_types(raw: Any, sql: str, params: dict[str, Any]) -> dict[str, pa.DataType] | None:
    """Arrow types of the statement's columns, or None when one has no exact CSV form."""
    names = type_names(raw, sql, params)
    if names is None:
        return None
    types: dict[str, pa.DataType] = {}
    for name, kind in names.items():
        dtype = arrow_type(kind)
        if dtype is None:
            return None
        types[name] = dtype
    return types


def read_batches(
    raw: Any,
    sql: str,
    params: dict[str, Any],
    types: dict[str, pa.DataType],
    zone: str,
    rows_per_batch: int,
) -> Iterator[pa.RecordBatch]:
    """Stream the statement's rows as record batches of at most ``rows_per_batch`` rows.

    A thread receives and parses the COPY stream while the caller writes the previous
    batch, so the source server, the parser and the store work at the same time; at
    most ``PREFETCH`` parsed chunks wait between them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    read_options = pacsv.ReadOptions(column_names=list(types), use_threads=False)
    convert = pacsv.ConvertOptions(
        column_types=types,
        null_values=[""],
        strings_can_be_null=True,
        # COPY writes NULL as an empty field and an empty string as "".
        quoted_strings_can_be_null=False,
        true_values=["t"],
        false_values=["f"],
    )
    parse = pacsv.ParseOptions(newlines_in_values=True)
    naive = [n for n, t in types.items() if pa.types.is_timestamp(t) and t.tz is None]

    def parsed(chunks: list[bytes]) -> pa.Table:
        table = pacsv.read_csv(
            pa.py_buffer(b"".join(chunks)),
            read_options=read_options,
            parse_options=parse,
            convert_options=convert,
        )
        for name in naive:
            index = table.schema.get_field_index(name)
            local = pc.assume_timezone(
                table.column(index), timezone=zone, ambiguous="earliest", nonexistent="earliest"
            )
            table = table.set_column(index, name, local)
        return table.combine_chunks()

    def tables() -> Iterator[pa.Table]:
        with raw.cursor() as cur:
            # Text the parser reads exactly: UTC offsets and ISO dates. Floats are
            # written as for the row path's driver (the session's float digits).
            cur.execute("SET LOCAL TIME ZONE 'UTC'")
            cur.execute("SET LOCAL DateStyle = 'ISO, YMD'")
            # Closed early (the reader stopped), leaving the block cancels the COPY.
            with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT CSV)", params) as copy:
                chunks: list[bytes] = []
                size = rows = 0
                for row in copy:
                    chunks.append(bytes(row))
                    size += len(row)
                    rows += 1
                    if size >= CHUNK_BYTES or rows >= rows_per_batch:
                        yield parsed(chunks)
                        chunks, size, rows = [], 0, 0
                if chunks:
                    yield parsed(chunks)

    for table in prefetched(tables(), depth=PREFETCH):
        yield from table.to_batches(max_chunksize=rows_per_batch)


# -- binary relay ---------------------------------------------------------------------------
# Column types a first load may relay as the server writes them in binary COPY, each cast
# in the source query to the exact type of the store column the Arrow path would make.
# float4 is left out (the Arrow path reads its text, which a cast to float8 does not
# give), and so are types whose text differs from a cast (char(n) keeps its padding).
PIPE_CASTS = {
    "int2": "bigint",
    "int4": "bigint",
    "int8": "bigint",
    "float8": "double precision",
    "text": "text",
    "varchar": "text",
    "bool": "boolean",
    "date": "date",
    "timestamptz": "timestamp with time zone",
}
# The kind each of those types is stored as (what ``bulk.arrow_kind`` says of the Arrow
# type it is read as): the relay plans its target without loading pyarrow.
PIPE_KINDS = {
    "int2": "integer",
    "int4": "integer",
    "int8": "integer",
    "float8": "float",
    "text": "string",
    "varchar": "string",
    "bool": "boolean",
    "date": "date",
    "timestamptz": "datetime",
}
# The store type of each kind, for constant columns a relay adds to every row.
KIND_CASTS = {
    "integer": "bigint",
    "float": "double precision",
    "string": "text",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamp with time zone",
}
RELAY_BYTES = 1024 * 1024  # bytes handed to the writer at once


def relay_select(
    types: dict[str, str], columns: list[str], constants: dict[str, tuple[Any, str]]
) -> tuple[list[str], dict[str, Any]]:
    """The select list and parameters of a relay over ``q`` (the source's statement):
    ``columns`` cast to their store types, then each constant as ``%(fs_<name>)s``."""
    select = [f"q.{quote(column)}::{PIPE_CASTS[types[column]]}" for column in columns]
    params: dict[str, Any] = {}
    for name, (value, kind) in constants.items():
        select.append(f"%(fs_{name})s::{KIND_CASTS[kind]}")
        params[f"fs_{name}"] = value
    return select, params


def type_names(raw: Any, sql: str, params: dict[str, Any]) -> dict[str, str] | None:
    """PostgreSQL type names of the statement's columns (None: a repeated name)."""
    with raw.cursor() as cur:
        cur.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0", params)
        names: dict[str, str] = {}
        for column in cur.description or []:
            info = raw.adapters.types.get(column.type_code)
            if column.name in names:
                return None
            names[column.name] = info.name if info is not None else ""
    return names


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def first_values(raw: Any, sql: str, params: dict[str, Any], columns: list[str]) -> list[Any]:
    """Each column's first value that is not NULL, in the order the statement reads."""
    if not columns:
        return []
    picks = ", ".join(
        f"(SELECT q.{quote(c)} FROM ({sql}) AS q WHERE q.{quote(c)} IS NOT NULL LIMIT 1)"
        for c in columns
    )
    with raw.cursor() as cur:
        cur.execute(f"SELECT {picks}", params)
        row = cur.fetchone()
    return list(row or [])


def copy_binary(raw: Any, sql: str, params: dict[str, Any]) -> Iterator[bytearray]:
    """The statement's rows in PostgreSQL's binary COPY format, about ``RELAY_BYTES`` at a
    time.

    The server sends one message per row, so the stream is read through libpq itself
    (psycopg's ``pq`` layer): a loop over ``PQgetCopyData`` costs a fraction of a
    psycopg ``Copy.read()`` per row, which matters at a million rows. Waiting for the
    socket releases the GIL. A reader stopped early cancels the COPY and drains it, so
    the connection stays usable.
    """
    import psycopg
    from psycopg import pq
    from psycopg.errors import error_from_result

    statement = f"COPY ({sql}) TO STDOUT (FORMAT BINARY)"
    query = psycopg.ClientCursor(raw).mogrify(statement, params)
    encoding = raw.info.encoding
    pgconn = raw.pgconn
    with raw.lock:
        pgconn.send_query(query.encode(encoding))
        result = _next_result(pgconn)
        if result is None or result.status != pq.ExecStatus.COPY_OUT:
            _drain_results(pgconn)
            if result is None:
                raise psycopg.OperationalError("the server sent no answer to COPY")
            raise error_from_result(result, encoding=encoding)
        ended = False
        try:
            buffer = bytearray()
            while True:
                size, data = pgconn.get_copy_data(1)
                if size > 0:
                    buffer += data
                    if len(buffer) >= RELAY_BYTES:
                        yield buffer
                        buffer = bytearray()
                elif size == 0:
                    _wait_readable(pgconn)
                    pgconn.consume_input()
                elif size == -1:
                    break
                else:
                    raise psycopg.OperationalError(
                        pgconn.get_error_message().decode(encoding, "replace")
                    )
            ended = True
            result = _next_result(pgconn)
            _drain_results(pgconn)
            if result is None or result.status != pq.ExecStatus.COMMAND_OK:
                raise (
                    error_from_result(result, encoding=encoding)
                    if result
                    else (psycopg.OperationalError("the server did not end the COPY"))
                )
            if buffer:
                yield buffer
        finally:
            if not ended:
                _cancel(pgconn)


def _wait_readable(pgconn: Any) -> None:
    import select

    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN)
    poller.poll()


def _next_result(pgconn: Any) -> Any:
    """libpq's next result (None: no more), waiting for the server as needed."""
    while True:
        pgconn.consume_input()
        if not pgconn.is_busy():
            return pgconn.get_result()
        _wait_readable(pgconn)


def _drain_results(pgconn: Any) -> None:
    while _next_result(pgconn) is not None:
        pass


def _cancel(pgconn: Any) -> None:
    """Stop a COPY out that is still sending and read what is left of it."""
    import contextlib

    with contextlib.suppress(Exception):
        pgconn.get_cancel().cancel()
    with contextlib.suppress(Exception):
        while True:
            size, _ = pgconn.get_copy_data(1)
            if size == 0:
                _wait_readable(pgconn)
                pgconn.consume_input()
            elif size < 0:
                break
        _drain_results(pgconn)
