"""JSON documents and newline-delimited JSON.

    json    orjson on the whole document; past STREAM_THRESHOLD streamed: on columnar
            reads in chunks of whole records (:mod:`.json_columnar`), else with ijson
    ndjson  orjson line by line; pyarrow's JSON reader in chunks on columnar reads

On columnar reads both yield Arrow record batches where the records are flat objects
whose fields each hold one kind of scalar; anything else keeps the row path.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from factorysync.config.mapping import records_at
from factorysync.connectors.base import Batch
from factorysync.connectors.file import json_columnar
from factorysync.connectors.file.base import FileConfig, FileFormat, FileOptions, undecodable
from factorysync.connectors.file.json_columnar import ArrayReader, first_line, flat_type
from factorysync.errors import ConnectorFatal, MappingError

# Documents up to this size are parsed in one go (orjson is ~10x faster than streaming);
# larger ones are streamed.
STREAM_THRESHOLD = 32 * 1024 * 1024
ENVELOPE_LIMIT = 64 * 1024
# NDJSON bytes parsed at once on columnar reads (whole lines; one Arrow batch each).
NDJSON_CHUNK = 8 * 1024 * 1024


def envelope_of(document: Any, records_path: str | None) -> dict[str, Any]:
    """How the records sit in the document, with its other small top-level values."""
    if records_path is None:
        return {"shape": "list" if isinstance(document, list) else "object"}
    envelope: dict[str, Any] = {"shape": "wrapped", "records_key": records_path, "extra": {}}
    if isinstance(document, dict) and "." not in records_path:
        extra = {k: v for k, v in document.items() if k != records_path}
        if len(orjson.dumps(extra)) <= ENVELOPE_LIMIT:
            envelope["extra"] = extra
    return envelope


class _Utf8Reader:
    """A byte stream that re-encodes another encoding to UTF-8 (what ijson expects)."""

    def __init__(self, raw: IO[bytes], encoding: str) -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        self._raw = raw

    def read(self, size: int = 65536) -> bytes:
        # Bytes the decoder holds back (part of a character) are no end of the stream.
        while True:
            chunk = self._raw.read(size)
            text = self._decoder.decode(chunk, final=not chunk)
            if text or not chunk:
                return text.encode("utf-8")


class JsonFormat(FileFormat):
    """A JSON document: an array, or an object holding the records at ``records_path``.

    On columnar reads each batch of decoded records becomes one Arrow record batch when
    its records are flat objects whose fields each hold one kind of scalar; any other
    batch stays rows. A document past STREAM_THRESHOLD is then read in chunks of whole
    records that pyarrow parses without decoding each value (:mod:`.json_columnar`);
    on row reads it is streamed with ijson.
    """

    options_model = FileOptions
    config_model = FileConfig
    arrow_capable = True

    def batches(self, records: Any, origin: str) -> Iterator[Batch]:
        if not self.columnar:
            yield from super().batches(records, origin)
            return
        # Records become Arrow a few thousand at a time (decoded objects cost far more
        # memory than columns), gathered into batches of the columnar size.
        held: list[Any] = []
        rows = 0
        for part in super().batches(records, origin):
            arrow = records_to_arrow(part.records)
            if held and (
                arrow is None
                or arrow.schema != held[0].schema
                or rows + arrow.num_rows > self.context.columnar_batch_size
            ):
                yield Batch([], origin=origin, arrow=_joined(held))
                held, rows = [], 0
            if arrow is None:
                yield part
            else:
                held.append(arrow)
                rows += arrow.num_rows
        if held:
            yield Batch([], origin=origin, arrow=_joined(held))

    def read(self, path: Path, records_path: str | None, label: str) -> Iterator[Batch]:
        if path.stat().st_size <= STREAM_THRESHOLD:
            yield from self._read_whole(path, records_path, label)
        else:
            yield from self._read_stream(path, records_path, label)

    def _decode(self, data: bytes) -> bytes | str:
        if codecs.lookup(self.options.encoding).name == "utf-8":
            return data.removeprefix(codecs.BOM_UTF8)
        return data.decode(self.options.encoding)

    def _read_whole(self, path: Path, records_path: str | None, label: str) -> Iterator[Batch]:
        data = path.read_bytes()
        try:
            document = orjson.loads(self._decode(data))
        except orjson.JSONDecodeError as exc:
            if "not valid UTF-8" in exc.msg:  # orjson places these at line 1, column 1
                raise undecodable(label, "utf-8", path) from None
            raise ConnectorFatal(
                f"{label}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
                + (" (the file ends early: truncated?)" if exc.pos >= len(data) - 1 else "")
            ) from None
        del data
        try:
            records = records_at(document, records_path)
        except MappingError as exc:
            raise ConnectorFatal(f"{label}: {exc}") from None
        envelope: dict[str, Any] | None = envelope_of(document, records_path)
        for batch in self.batches(records, label):
            batch.envelope, envelope = envelope, None
            yield batch

    def _read_stream(self, path: Path, records_path: str | None, label: str) -> Iterator[Batch]:
        if self.columnar:
            utf8 = self.options.is_utf8()
            with path.open("rb") as raw:
                source = raw if utf8 else _Utf8Reader(raw, self.options.encoding)
                reader = ArrayReader(
                    source,
                    label,
                    chunk_size=json_columnar.ARRAY_CHUNK,
                    offsets=utf8,
                    path=path if utf8 else None,
                )
                if reader.open(records_path):
                    yield from self._array_batches(reader, records_path, label)
                    return
        yield from self._read_items(path, records_path, label)

    def _array_batches(
        self, reader: ArrayReader, records_path: str | None, label: str
    ) -> Iterator[Batch]:
        """Batches of the parts of a JSON array read in chunks (:mod:`.json_columnar`)."""
        size = self.context.columnar_batch_size
        for part in reader.parts():
            if isinstance(part, list):
                yield from self.batches(part, label)
                continue
            for offset in range(0, part.num_rows, size):
                yield Batch([], origin=label, arrow=part.slice(offset, size))
        if reader.records == 0:
            raise _no_records(label, records_path)

    def _read_items(self, path: Path, records_path: str | None, label: str) -> Iterator[Batch]:
        import ijson

        prefix = f"{records_path}.item" if records_path else "item"
        count = 0
        with path.open("rb") as raw:
            source: Any = raw
            if codecs.lookup(self.options.encoding).name != "utf-8":
                source = _Utf8Reader(raw, self.options.encoding)
            elif raw.read(3) != codecs.BOM_UTF8:
                raw.seek(0)
            try:
                items = ijson.items(source, prefix, use_float=True)
                for batch in self.batches(items, label):
                    count += len(batch.records) or (batch.arrow.num_rows if batch.arrow else 0)
                    yield batch
            except ijson.JSONError as exc:
                raise ConnectorFatal(
                    f"{label}: invalid JSON near byte {raw.tell():,}: {first_line(exc)} "
                    "(the file is truncated or malformed)"
                ) from None
        if count == 0:
            raise _no_records(label, records_path)


def _no_records(label: str, records_path: str | None) -> ConnectorFatal:
    return ConnectorFatal(
        f"{label}: no records at {records_path or 'the top-level array'!r} "
        "(set mapping_config.records_path)"
    )


def _joined(batches: list[Any]) -> Any:
    """Record batches of one schema as one record batch."""
    import pyarrow as pa

    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


class NdjsonFormat(FileFormat):
    """Newline-delimited JSON: one record per line; blank lines are skipped.

    Columnar reads parse UTF-8 files in chunks of whole lines with pyarrow's JSON reader
    (types inferred per chunk, as for CSV blocks). Arrow would read text that looks like a
    date as a timestamp, so such fields are read again as text (and stay text for the
    rest of the file), typed later like the row path types them. A chunk with nested
    values, a field of mixed kinds or a line that is not valid JSON is decoded line by
    line instead, which also names the bad line.
    """

    options_model = FileOptions
    config_model = FileConfig
    arrow_capable = True

    def read(self, path: Path, records_path: str | None, label: str) -> Iterator[Batch]:
        utf8 = codecs.lookup(self.options.encoding).name == "utf-8"
        if self.columnar and utf8:
            yield from self._read_arrow(path, label)
            return
        size = self.context.batch_size
        batch: list[Any] = []
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                if lineno == 1:
                    line = line.removeprefix(codecs.BOM_UTF8)
                if not line.strip():
                    continue
                batch.append(
                    self._decode(
                        line if utf8 else line.decode(self.options.encoding), line, lineno, label
                    )
                )
                if len(batch) >= size:
                    yield Batch(batch, origin=f"{label}:{lineno}")
                    batch = []
        if batch:
            yield Batch(batch, origin=label)

    @staticmethod
    def _decode(text: bytes | str, line: bytes, lineno: int, label: str) -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ConnectorFatal(
                f"{label}: line {lineno}: invalid JSON: {exc.msg}"
                + ("" if line.endswith(b"\n") else " (last line incomplete: truncated?)")
            ) from None

    def _read_arrow(self, path: Path, label: str) -> Iterator[Batch]:
        import pyarrow as pa
        import pyarrow.json as pajson

        text_fields: dict[str, Any] = {}  # fields read as text (see the class docstring)
        read_options = pajson.ReadOptions(use_threads=False, block_size=NDJSON_CHUNK + 1024)
        lineno = 1
        with path.open("rb") as fh:
            first = True
            while chunk := fh.read(NDJSON_CHUNK):
                if not chunk.endswith(b"\n"):
                    chunk += fh.readline()
                if first:
                    chunk, first = chunk.removeprefix(codecs.BOM_UTF8), False
                origin = f"{label}:{lineno}"
                table = None
                if chunk.strip():
                    table = _parse_ndjson(pa, pajson, chunk, read_options, text_fields)
                if table is not None:
                    for part in table.to_batches(max_chunksize=self.context.columnar_batch_size):
                        yield Batch([], origin=origin, arrow=part)
                else:
                    lines = chunk.split(b"\n")
                    last = len(lines) - 1  # the only piece that may lack its newline
                    records = [
                        self._decode(line, line + b"\n" if n < last else line, lineno + n, label)
                        for n, line in enumerate(lines)
                        if line.strip()
                    ]
                    if records:
                        yield Batch(records, origin=origin)
                lineno += chunk.count(b"\n")


def _parse_ndjson(
    pa: Any, pajson: Any, chunk: bytes, read_options: Any, text_fields: dict[str, Any]
) -> Any:
    """One chunk of NDJSON as a flat Arrow table, or None when it needs the row path."""
    for _ in range(2):
        parse = pajson.ParseOptions(
            explicit_schema=pa.schema(text_fields) if text_fields else None,
            unexpected_field_behavior="infer",
        )
        try:
            table = pajson.read_json(
                pa.py_buffer(chunk), read_options=read_options, parse_options=parse
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        dated = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
        if not dated:
            break
        text_fields.update(dict.fromkeys(dated, pa.string()))
    else:
        return None
    if not all(flat_type(pa, t) for t in table.schema.types):
        return None
    return table.combine_chunks()


def _arrow_type(pa: Any, kinds: set[type]) -> Any:
    """The Arrow type that holds values of these Python types exactly (None: none does).

    Checked on the Python types because Arrow would also turn ``True`` into ``1.0`` in a
    column of floats, where the row path sees text of mixed kinds.
    """
    kinds.discard(type(None))
    if not kinds:
        return pa.null()
    if kinds <= {int, float}:
        return pa.int64() if kinds == {int} else pa.float64()
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {str}:
        return pa.string()
    return None


def records_to_arrow(records: list[Any]) -> Any:
    """Decoded JSON records as one Arrow record batch; None when they are not flat objects
    whose fields each hold one kind of scalar (those keep the row path)."""
    import pyarrow as pa

    names: dict[str, None] = {}
    for record in records:
        if type(record) is not dict:
            return None
        names.update(dict.fromkeys(record))
    arrays = []
    for name in names:
        values = [record.get(name) for record in records]
        dtype = _arrow_type(pa, set(map(type, values)))
        if dtype is None:
            return None
        try:
            arrays.append(pa.array(values, type=dtype))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return None  # e.g. an integer beyond 64 bits
    return pa.RecordBatch.from_arrays(arrays, names=list(names))
