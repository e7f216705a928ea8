"""JSON arrays of records as Arrow record batches, streamed in chunks of whole records.

A large JSON document (an array, or an object holding the array at ``records_path``) is
read in chunks of about ``chunk_size`` bytes, each cut after a record, and each chunk is
handed whole to pyarrow's JSON parser as ``{"r": [chunk]}``: no Python object is made
per value. Finding where to cut costs one ``rfind`` in the common case, because the
parse checks the cut: the text before a byte can only parse as a complete array when
that byte ends a record of the array (JSON is read left to right, so a prefix tokenizes
as the whole document does; a cut inside a string leaves the string open). When the
parse fails, the exact scan below (strings and brackets, by regular expression) finds
the records instead.

A chunk whose records are not flat objects with one kind of scalar per field (nested
values, a field holding numbers and text, integers beyond 64 bits, duplicate keys) is
decoded by orjson instead and handed back as a list of records, which the format
turns into batches as it does for every decoded record: the results are those of the
row path. So is an error: malformed JSON is decoded by orjson, whose message is given
with the record number and the byte offset in the file.

What the reader does not expect (a document that is not an array, a records path that
does not lead to one, a large value before the records) it declines before reading any
record, and the caller streams the document with ijson instead.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import orjson

from factorysync.errors import ConnectorFatal

# Bytes of JSON parsed at once (whole records; one Arrow table each).
ARRAY_CHUNK = 8 * 1024 * 1024
# Chunks whose records take the row path are smaller: decoded records take ~10x the
# memory of their text.
ROWS_CHUNK = 1024 * 1024
# How far into the document the records array may start (else ijson reads it): the
# values before it are decoded, to check them.
PREFIX_LIMIT = 4 * 1024 * 1024
# Doubles from this on may be integers the row path keeps as integers.
EXACT_LIMIT = 2.0**53

_WS = re.compile(rb"[ \t\r\n]*")
# A whole string, or one structural byte. A lone quote is a string the buffer cuts off.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|["\[\]{},]', re.S)
_SCALAR = re.compile(rb"[^ \t\r\n,\]}]+")
_QUOTE, _COMMA, _COLON = ord('"'), ord(","), ord(":")
_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")


class ByteStream(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def first_line(exc: Exception) -> str:
    """The first line of a parser's message (yajl's go on over lines of the bad bytes)."""
    message = exc.args[0] if exc.args else ""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return str(message).strip().partition("\n")[0] or type(exc).__name__


def flat_type(pa: Any, dtype: Any) -> bool:
    """Whether an Arrow column of this type holds scalars the row path keeps as they are."""
    return bool(
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_null(dtype)
    )


def scan(
    buf: bytes, start: int, end: int | None = None
) -> tuple[list[int], int | None, int | None]:
    """The array body from ``start`` (between two records) up to ``end``: positions of
    its top-level commas, of its closing bracket (None: not seen), and of a closing
    bracket that closes nothing (malformed; None: none). Stops at a string cut off."""
    depth = 0
    commas: list[int] = []
    for match in _TOKEN.finditer(buf, start, len(buf) if end is None else end):
        at = match.start()
        byte = buf[at]
        if byte == _QUOTE:
            if match.end() - at == 1:
                break
        elif byte in _OPEN:
            depth += 1
        elif byte in _CLOSE:
            if depth == 0:
                return (commas, at, None) if byte == ord("]") else (commas, None, at)
            depth -= 1
        elif depth == 0:
            commas.append(at)
    return commas, None, None


class _Buffer:
    """Bytes read from a stream and not consumed yet: ``buf[pos:]``, at file offset
    ``base + pos``."""

    def __init__(self, raw: ByteStream, chunk: int) -> None:
        self.raw = raw
        self.chunk = chunk
        self.buf = b""
        self.pos = 0
        self.base = 0
        self.eof = False

    def fill(self, want: int) -> None:
        """Keep at least ``want`` unconsumed bytes (fewer only at the end of the stream)."""
        if self.pos:
            self.buf, self.base, self.pos = self.buf[self.pos :], self.base + self.pos, 0
        parts, have = [self.buf], len(self.buf)
        while have < want and not self.eof:
            data = self.raw.read(max(want - have, min(self.chunk, 65536)))
            if not data:
                self.eof = True
            parts.append(data)
            have += len(data)
        if len(parts) > 1:
            self.buf = b"".join(parts)

    def skip_ws(self) -> bool:
        """Skip whitespace; False at the end of the stream."""
        while True:
            match = _WS.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf):
                return True
            if self.eof:
                return False
            self.fill(1)

    def peek(self) -> int:
        return self.buf[self.pos]

    def read(self, size: int = -1) -> bytes:
        """The rest of the stream (what is buffered first), for a parser to read."""
        if self.pos < len(self.buf):
            data, self.buf, self.pos = self.buf[self.pos :], b"", 0
            return data
        return self.raw.read(size if size > 0 else self.chunk)


class ArrayReader:
    """The records of a JSON array read in chunks: Arrow record batches for chunks of
    flat records, lists of decoded records for the others (see the module docstring).

    ``offsets``: byte offsets in messages are the file's (False for a stream re-encoded
    to UTF-8, whose offsets are not). ``path``: the file, looked at again to name the
    line of text that is not valid UTF-8.
    """

    def __init__(
        self,
        raw: ByteStream,
        label: str,
        *,
        chunk_size: int = ARRAY_CHUNK,
        offsets: bool = True,
        path: Path | None = None,
    ) -> None:
        self.label = label
        self.chunk = chunk_size
        self.window = chunk_size
        self.offsets = offsets
        self.path = path
        self.stream = _Buffer(raw, chunk_size)
        self.depth = 0  # objects around the array
        self.records = 0  # records read so far
        self.order: dict[str, None] = {}  # field names as first seen in the file
        self.text_fields: dict[str, Any] = {}  # fields Arrow would read as timestamps

    # -- finding the array -----------------------------------------------------------
    def open(self, records_path: str | None) -> bool:
        """Move to the first record; False (nothing read is lost: the caller reads the
        file again) when the document is not what this reader handles."""
        stream = self.stream
        stream.fill(self.chunk)
        if stream.buf.startswith(b"\xef\xbb\xbf"):
            stream.pos = 3
        keys = records_path.split(".") if records_path else []
        for key in keys:
            if not self._enter(key):
                return False
        if not stream.skip_ws() or stream.peek() != ord("["):
            return False
        stream.pos += 1
        self.depth = len(keys)
        return True

    def _enter(self, key: str) -> bool:
        """Move into the object at the stream's position, to the value of ``key``."""
        stream = self.stream
        if not stream.skip_ws() or stream.peek() != ord("{"):
            return False
        stream.pos += 1
        while stream.skip_ws() and stream.peek() == _QUOTE:
            name = self._value()
            if not isinstance(name, str) or not stream.skip_ws() or stream.peek() != _COLON:
                return False
            stream.pos += 1
            if not stream.skip_ws():
                return False
            if name == key:
                return True
            if self._value() is _NOT_FOUND or not stream.skip_ws() or stream.peek() != _COMMA:
                return False
            stream.pos += 1
        return False

    def _value(self) -> Any:
        """Decode the value at the stream's position and move past it."""
        stream = self.stream
        while True:
            buf, pos = stream.buf, stream.pos
            end = -1
            if buf[pos] == _QUOTE or buf[pos] in _OPEN:
                depth = 0
                for match in _TOKEN.finditer(buf, pos):
                    byte = buf[match.start()]
                    if byte == _QUOTE and match.end() - match.start() == 1:
                        break
                    depth += (byte in _OPEN) - (byte in _CLOSE)
                    if depth <= 0 and byte != _COMMA:
                        end = match.end()
                        break
            elif (scalar := _SCALAR.match(buf, pos)) and scalar.end() < len(buf):
                end = scalar.end()
            if end >= 0 or stream.eof or len(buf) - pos > PREFIX_LIMIT:
                break
            stream.fill(2 * (len(buf) - pos) + self.chunk)
        if end < 0:
            return _NOT_FOUND
        try:
            value = orjson.loads(buf[pos:end])
        except orjson.JSONDecodeError:
            return _NOT_FOUND
        stream.pos = end
        return value

    # -- the records -----------------------------------------------------------------
    def parts(self) -> Iterator[Any]:
        """Arrow record batches and lists of records, in the file's order."""
        stream = self.stream
        if not stream.skip_ws():
            raise self._truncated()
        if stream.peek() == ord("]"):
            stream.pos += 1
            self._tail()
            return
        while True:
            if stream.peek() in (_COMMA, ord("]")):
                raise self._unexpected("a record is missing before this ',' or ']'")
            stream.fill(self.window)
            end, part = self._next()
            self.records += part.num_rows if not isinstance(part, list) else len(part)
            yield part
            stream.pos = end
            if not stream.skip_ws():
                raise self._truncated()
            if stream.peek() == ord("]"):
                stream.pos += 1
                break
            if stream.peek() != _COMMA:
                raise self._unexpected("expected ',' or ']' after a record")
            stream.pos += 1
            if not stream.skip_ws():
                raise self._truncated()
        self._tail()

    def _next(self) -> tuple[int, Any]:
        """The records from the stream's position: where they end, and their part."""
        stream = self.stream
        buf, start = stream.buf, stream.pos
        limit = min(len(buf), start + self.window)
        ends = limit
        if stream.eof and limit == len(buf):
            ends = max(buf.rfind(b"]", start), start)  # the array ends before its ']'
        for cut in self._guesses(buf, start, ends):
            part = self._parse(start, cut, exact=False)
            if part is not None:
                return cut, part
        while True:
            commas, close, stray = scan(buf, start, limit)
            if stray is not None:
                raise self._invalid(start, stray + 1, commas)
            end = close if close is not None else (commas[-1] if commas else -1)
            if end > start:
                part = self._parse(start, end, exact=True, commas=commas)
                return end, part
            if limit < len(buf):
                limit = len(buf)
                continue
            if stream.eof:
                raise self._truncated()
            stream.fill(2 * (len(buf) - start) + self.chunk)  # a record longer than a chunk
            buf, start = stream.buf, stream.pos
            limit = len(buf)

    @staticmethod
    def _guesses(buf: bytes, start: int, limit: int) -> Iterator[int]:
        """Where the records before ``limit`` may end: after its last '}', else (when
        the text has no escapes, so that a '}' is outside strings when an even number of
        quotes comes before it) after the last such '}'."""
        at = buf.rfind(b"}", start, limit)
        if at <= start:
            return
        yield at + 1
        if buf.find(b"\\", start, at) >= 0:
            return
        first = at
        for _ in range(8):
            if not buf.count(b'"', start, at) % 2:
                break
            at = buf.rfind(b"}", start, at)
            if at <= start:
                return
        if at != first and not buf.count(b'"', start, at) % 2:
            yield at + 1

    def _parse(self, start: int, end: int, *, exact: bool, commas: list[int] | None = None) -> Any:
        """The records between ``start`` and ``end``: a record batch, else decoded
        records; None when they do not parse and the cut was a guess (``exact`` false)."""
        span = memoryview(self.stream.buf)[start:end]
        batch = self._columns(span)
        if batch is not None:
            self.window = self.chunk
            return batch
        try:
            records = orjson.loads(b"".join((b"[", span, b"]")))
        except orjson.JSONDecodeError as exc:
            if not exact:
                return None
            raise self._invalid(start, end, commas, exc) from None
        self.window = min(self.chunk, ROWS_CHUNK)
        return records

    def _columns(self, span: memoryview) -> Any:
        """The records of ``span`` as one record batch; None when pyarrow cannot parse
        them or they are not flat objects of one kind of scalar per field."""
        import pyarrow as pa
        import pyarrow.json as pajson

        data = b"".join((b'{"r":[', span, b"]}"))
        read_options = pajson.ReadOptions(use_threads=False, block_size=len(data) + 64)
        for _ in range(2):
            schema = None
            if self.text_fields:
                schema = pa.schema({"r": pa.list_(pa.struct(self.text_fields))})
            parse_options = pajson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="infer"
            )
            try:
                table = pajson.read_json(
                    pa.py_buffer(data), read_options=read_options, parse_options=parse_options
                )
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None
            dtype = table.schema.field(0).type
            if table.num_rows != 1 or not (
                pa.types.is_list(dtype) and pa.types.is_struct(dtype.value_type)
            ):
                return None  # not objects, or no records
            records = table.column(0).chunk(0).flatten()
            try:
                names = [field.name for field in dtype.value_type]
            except UnicodeDecodeError:
                return None  # a key that is not UTF-8: orjson names it
            self.order.update(dict.fromkeys(names))
            dated = [f.name for f in dtype.value_type if pa.types.is_timestamp(f.type)]
            if not dated:
                break
            # Text Arrow would read as timestamps stays text (as on the row path).
            self.text_fields.update(dict.fromkeys(dated, pa.string()))
        else:
            return None
        if not names or records.null_count:
            return None
        batch = pa.RecordBatch.from_struct_array(records)
        if not all(self._kept(pa, column) for column in batch.columns):
            return None
        present = set(names)
        return batch.select([name for name in self.order if name in present])

    @staticmethod
    def _kept(pa: Any, column: Any) -> bool:
        """Whether a column holds what the row path would keep, value for value."""
        import pyarrow.compute as pc

        if not flat_type(pa, column.type):
            return False
        if pa.types.is_string(column.type):
            try:
                column.validate(full=True)  # the parser does not check UTF-8
            except pa.ArrowInvalid:
                return False
        elif pa.types.is_floating(column.type) and column.null_count < len(column):
            # NaN and Infinity are not JSON, and integers past 2**53 (which a double
            # does not hold exactly) stay integers on the row path: orjson decides.
            if not pc.all(pc.is_finite(column)).as_py():
                return False
            if pc.max(pc.abs(column)).as_py() >= EXACT_LIMIT:
                return False
        return True

    # -- the end of the document -----------------------------------------------------
    def _tail(self) -> None:
        """Check what follows the array: the rest of the objects around it, then only
        whitespace."""
        import ijson

        prefix = b'{"_":' * self.depth + b"[]"
        offset = self.stream.base + self.stream.pos

        class _Rest:
            def __init__(self, stream: _Buffer) -> None:
                self.first: bytes | None = prefix
                self.stream = stream

            def read(self, size: int = -1) -> bytes:
                if size == 0:  # ijson's look at the stream's type
                    return b""
                if self.first is not None:
                    first, self.first = self.first, None
                    return first
                return self.stream.read(size)

        try:
            for _ in ijson.basic_parse(_Rest(self.stream)):
                pass
        except ijson.JSONError as exc:
            where = f" (from byte offset {offset:,})" if self.offsets else ""
            raise ConnectorFatal(
                f"{self.label}: invalid JSON after the records{where}: {first_line(exc)}"
            ) from None

    # -- errors ----------------------------------------------------------------------
    def _where(self, offset: int) -> str:
        return f" (byte offset {offset:,})" if self.offsets else ""

    def _truncated(self) -> ConnectorFatal:
        stream = self.stream
        return ConnectorFatal(
            f"{self.label}: invalid JSON in record {self.records + 1:,}"
            f"{self._where(stream.base + stream.pos)}: the file ends before the records "
            "array is closed (truncated?)"
        )

    def _unexpected(self, what: str) -> ConnectorFatal:
        stream = self.stream
        return ConnectorFatal(
            f"{self.label}: invalid JSON after record {self.records:,}"
            f"{self._where(stream.base + stream.pos)}: {what}"
        )

    def _invalid(
        self,
        start: int,
        end: int,
        commas: list[int] | None,
        exc: orjson.JSONDecodeError | None = None,
    ) -> ConnectorFatal:
        """The error for records between ``start`` and ``end`` that orjson refuses,
        naming the record and the byte offset where decoding stopped."""
        buf = self.stream.buf
        if exc is None:
            try:
                orjson.loads(b"".join((b"[", buf[start:end], b"]")))
            except orjson.JSONDecodeError as error:
                exc = error
        if exc is not None and "not valid UTF-8" in exc.msg:
            from factorysync.connectors.file.base import undecodable

            return undecodable(self.label, "utf-8", self.path)
        at = end - 1
        if exc is not None:  # orjson counts characters from the '[' added before
            text = buf[start:end].decode("utf-8", "replace")
            at = start + len(text[: max(exc.pos - 1, 0)].encode("utf-8"))
        if commas is None:
            commas = scan(buf, start, end)[0]
        record = self.records + bisect.bisect_left(commas, at) + 1
        reason = exc.msg if exc is not None else "a closing bracket that closes nothing"
        return ConnectorFatal(
            f"{self.label}: invalid JSON in record {record:,}"
            f"{self._where(self.stream.base + min(at, end))}: {reason}"
        )


_NOT_FOUND = object()
