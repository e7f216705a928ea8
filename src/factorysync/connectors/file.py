"""File sources: one path or a glob, confined to the configured data roots.

:class:`FileConnector` owns what every format shares: finding the files, keeping them
inside the data roots, change detection for incremental reads and turning OS errors into
connector errors. A format (:class:`FileFormat`) only says how one file becomes record
batches:

    file_type  reader                                    module
    json       orjson (ijson past STREAM_THRESHOLD)      here
    ndjson     orjson line by line; pyarrow in chunks    here
               on columnar reads
    csv        pyarrow, block by block                   csv_file
    excel      python-calamine (.xlsx .xlsm .xlsb .xls .ods)  excel_file

Without ``file_type`` the format follows the file extension (json when unknown).

Incremental reads skip files that did not change since the last successful run: each
file's marker (size, modification time, SHA-256 of the content) is kept in the connector
state. A full read treats the union of all matching files as the snapshot.

Timestamps without an offset (CSV text in ``date_formats``, Excel dates, JSON text that
a mapping types as ``datetime``) are read in the connection's ``timezone`` (default UTC).
"""

from __future__ import annotations

import codecs
import csv
import glob
import hashlib
import logging
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factorysync.config.mapping import check_zone, records_at
from factorysync.connectors.base import (
    Batch,
    Connector,
    ConnectorContext,
    FieldInfo,
    ReadRequest,
    SourceKind,
)
from factorysync.errors import (
    ConnectorError,
    ConnectorFatal,
    ConnectorRetriable,
    MappingError,
    full_traceback,
)
from factorysync.settings import Settings

log = logging.getLogger("factorysync.connectors.file")

# Documents up to this size are parsed in one go (orjson is ~10x faster than streaming);
# larger ones are streamed.
STREAM_THRESHOLD = 32 * 1024 * 1024
ENVELOPE_LIMIT = 64 * 1024
# NDJSON bytes parsed at once on columnar reads (whole lines; one Arrow batch each).
NDJSON_CHUNK = 8 * 1024 * 1024
# A file whose modification time is this close to the moment its marker was taken may
# have changed again within the file system's timestamp granularity: hash it again.
RACY_NS = 2_000_000_000

FileType = Literal["json", "ndjson", "csv", "excel"]
FORMATS: dict[str, str] = {
    "json": "factorysync.connectors.file:JsonFormat",
    "ndjson": "factorysync.connectors.file:NdjsonFormat",
    "csv": "factorysync.connectors.csv_file:CsvFormat",
    "excel": "factorysync.connectors.excel_file:ExcelFormat",
}
EXTENSIONS = {
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".csv": "csv",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xlsb": "excel",
    ".xls": "excel",
    ".ods": "excel",
}


# -- configuration ------------------------------------------------------------------------
class FileOptions(BaseModel):
    """How a file's bytes are read: shared by file sources and command output."""

    model_config = ConfigDict(extra="forbid")

    encoding: str = "utf-8"
    records_path: str | None = None
    # Zone of timestamps without an offset (an IANA name; default UTC). The plant zone
    # (FACTORYSYNC_TIMEZONE) is for display only.
    timezone: str | None = None

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r} (e.g. utf-8, utf-8-sig, latin-1)") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return check_zone(v)

    def is_utf8(self) -> bool:
        return codecs.lookup(self.encoding).name in ("utf-8", "utf-8-sig")


class FileConfig(FileOptions):
    """``connection_config`` of a file source (JSON and NDJSON; other formats extend it)."""

    file_path: str = Field(min_length=1)
    file_type: FileType = "json"
    auto_reload: bool = False
    # Informational fields kept from imported front-end configs.
    file_name: str | None = None
    legacy_path: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _type_from_extension(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("file_type") is None and "file_path" in data:
            return {**data, "file_type": file_type_of(data)}
        return data

    def fingerprint(self) -> str:
        """Changes when a setting that affects the records changes (markers then reset)."""
        relevant = self.model_dump(exclude={"auto_reload", "file_name", "legacy_path"})
        # The zone in effect, not the setting: naive timestamps read before UTC became
        # the default (in the plant zone) are read again.
        relevant["timezone"] = self.timezone or "UTC"
        return hashlib.sha256(orjson.dumps(relevant, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def file_type_of(config: dict[str, Any]) -> str | None:
    """The format a raw ``connection_config`` asks for: ``file_type``, else the extension."""
    given = config.get("file_type")
    if given is not None:
        return given if isinstance(given, str) else None
    suffix = Path(str(config.get("file_path") or "")).suffix.lower()
    return EXTENSIONS.get(suffix, "json")


def format_class(file_type: str) -> type[FileFormat]:
    module, _, name = FORMATS[file_type].partition(":")
    return getattr(import_module(module), name)  # type: ignore[no-any-return]


class OwnFiles:
    """factorysync's own files (:meth:`Settings.protected_files`: the SQLite store, its
    side files and the key file), known by resolved path and by file identity, so that
    neither a symbolic link nor a hard link inside a data root leads a source to them."""

    def __init__(self, settings: Settings) -> None:
        self.by_path = {path: (path, what) for path, what in settings.protected_files()}
        self.by_id: dict[tuple[int, int], tuple[Path, str]] = {}
        for path, what in self.by_path.values():
            try:
                st = path.stat()
            except OSError:
                continue
            self.by_id[(st.st_dev, st.st_ino)] = (path, what)

    def refuse(self, resolved: Path, shown: str) -> None:
        """Raise when ``resolved`` (a resolved path, given as ``shown``) is one of them."""
        hit = self.by_path.get(resolved)
        if hit is None and self.by_id:
            try:
                st = resolved.stat()
            except OSError:
                st = None
            if st is not None:
                hit = self.by_id.get((st.st_dev, st.st_ino))
        if hit is not None:
            path, what = hit
            raise ConnectorFatal(
                f"path {shown!r} leads to {what} {path}: sources may not read factorysync's "
                "own files"
            )


def resolve_in_roots(path_text: str, settings: Settings, own: OwnFiles | None = None) -> Path:
    """The absolute path for ``path_text``, refused when it is outside every data root
    or is one of factorysync's own files (``own``, computed when not given).

    A relative path is looked up under each root in order (the first that exists wins).
    Symbolic links and ``..`` are resolved first, so neither leads out of a root.
    """
    roots = settings.data_root_paths()
    if not roots:
        raise ConnectorFatal("no data roots configured (FACTORYSYNC_DATA_ROOTS is empty)")
    raw = Path(path_text).expanduser()
    candidates = [raw] if raw.is_absolute() else [root / raw for root in roots]
    chosen = next((c for c in candidates if c.exists()), candidates[0])
    resolved = chosen.resolve()
    (own or OwnFiles(settings)).refuse(resolved, path_text)
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise ConnectorFatal(
            f"file path {path_text!r} is outside the data roots "
            f"({os.pathsep.join(str(r) for r in roots)}); add its folder to FACTORYSYNC_DATA_ROOTS"
        )
    return resolved


# -- formats ------------------------------------------------------------------------------
class FileFormat(ABC):
    """How one file becomes record batches. ``label`` names the file in messages."""

    options_model: ClassVar[type[FileOptions]]
    config_model: ClassVar[type[FileConfig]]
    # Formats that can yield Arrow batches say so; ``columnar`` is set per read.
    arrow_capable: ClassVar[bool] = False
    # Formats whose every timestamp is without a time zone (a workbook's dates).
    naive_datetimes: ClassVar[bool] = False

    def __init__(self, options: FileOptions, context: ConnectorContext) -> None:
        self.options = options
        self.context = context
        self.columnar = False
        # Columns the reads so far typed as timestamps from values without an offset.
        self.naive_columns: set[str] = set()

    @property
    def zone(self) -> str:
        """The zone of timestamps without an offset (``timezone``, default UTC)."""
        return self.options.timezone or "UTC"

    @abstractmethod
    def read(self, path: Path, records_path: str | None, label: str) -> Iterator[Batch]:
        """Yield the records of the file at ``path`` in batches of ``context.batch_size``."""

    def batches(self, records: Any, origin: str) -> Iterator[Batch]:
        size = self.context.batch_size
        batch: list[Any] = []
        for record in records:
            batch.append(record)
            if len(batch) >= size:
                yield Batch(batch, origin=origin)
                batch = []
        if batch:
            yield Batch(batch, origin=origin)


def parse_error(exc: BaseException, label: str) -> ConnectorFatal | None:
    """A parser's own exception (a malformed, truncated or binary file) as a one-line
    error naming the file; None for any other exception.

    Readers name the line where they know it; this is the net under them, so that no
    parser's exception reaches the user as a traceback without the file's name.
    """
    parsers: list[type[BaseException]] = [csv.Error, orjson.JSONDecodeError, RecursionError]
    # Only loaded modules can have raised their exceptions.
    if (pyarrow := sys.modules.get("pyarrow")) is not None:
        parsers.append(pyarrow.ArrowException)
    if (ijson := sys.modules.get("ijson")) is not None:
        parsers.append(ijson.JSONError)
    if not isinstance(exc, tuple(parsers)):
        return None
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > 300:
        text = text[:299] + "…"
    return ConnectorFatal(f"{label}: cannot be parsed: {text}")


def first_undecodable(path: Path, encoding: str) -> tuple[int, int] | None:
    """(line, byte offset) of the first byte of ``path`` that is not valid ``encoding``
    text, or None when all of it is. Streams the file; meant for the error path."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset, line = 0, 1
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(1024 * 1024)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.object is the bytes the decoder held back from the last chunk + this one.
                held = len(exc.object) - len(chunk)
                before = max(exc.start - held, 0)
                return line + chunk.count(b"\n", 0, before), offset + exc.start - held
            if not chunk:
                return None
            offset += len(chunk)
            line += chunk.count(b"\n")


def undecodable(
    label: str, encoding: str, path: Path | None = None, byte: int | None = None
) -> ConnectorFatal:
    """The error for text that is not valid ``encoding``, naming the line and byte of the
    first bad byte when ``path`` is given (else ``byte``, when known)."""
    where = f" at byte offset {byte:,}" if byte is not None else ""
    found = first_undecodable(path, encoding) if path is not None else None
    if found is not None:
        where = f": line {found[0]} (byte offset {found[1]:,})"
    return ConnectorFatal(
        f"{label}{where}: not valid {encoding} text; set connection_config.encoding "
        "(e.g. utf-8, latin-1, cp1252)"
    )


@contextmanager
def file_errors(label: str, encoding: str, path: Path | None = None) -> Iterator[None]:
    """Turn OS, decoding and parser errors raised while reading ``label`` into connector
    errors; ``path``, when given, is the file, looked at again to name the line of a
    decoding error. The traceback behind each error is logged at debug level
    (``factorysync --debug``)."""
    try:
        yield
    except ConnectorError as exc:
        _log_failure(label, exc)
        raise
    except Exception as exc:
        mapped = _file_error(exc, label, encoding, path)
        if mapped is None:
            raise
        _log_failure(label, exc)
        raise mapped from None


def _log_failure(label: str, exc: BaseException) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug("reading %s failed:\n%s", label, full_traceback(exc))


def _file_error(
    exc: Exception, label: str, encoding: str, path: Path | None
) -> ConnectorError | None:
    """The connector error for an exception raised while reading ``label``; None for an
    exception of no known kind (a bug, which keeps its traceback)."""
    if isinstance(exc, FileNotFoundError):
        return ConnectorFatal(f"file not found: {label}")
    if isinstance(exc, PermissionError):
        return ConnectorFatal(f"file not readable (permission denied): {label}")
    if isinstance(exc, UnicodeDecodeError):
        # Without the file, the decoder's offset is the best there is (exact for a text
        # decoded whole, relative to its chunk for a stream).
        return undecodable(label, encoding, path, exc.start if path is None else None)
    if isinstance(exc, OSError):
        return ConnectorRetriable(f"{label}: {exc.strerror or exc}")
    return parse_error(exc, label)


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
        chunk = self._raw.read(size)
        return self._decoder.decode(chunk, final=not chunk).encode("utf-8")


class JsonFormat(FileFormat):
    """A JSON document: an array, or an object holding the records at ``records_path``.

    On columnar reads each batch of decoded records becomes one Arrow record batch when
    its records are flat objects whose fields each hold one kind of scalar; any other
    batch stays rows.
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
                    f"{label}: invalid JSON near byte {raw.tell():,}: {_first_line(exc)} "
                    "(the file is truncated or malformed)"
                ) from None
        if count == 0:
            raise ConnectorFatal(
                f"{label}: no records at {records_path or 'the top-level array'!r} "
                "(set mapping_config.records_path)"
            )


def _first_line(exc: Exception) -> str:
    """The first line of a parser's message (yajl's go on over lines of the bad bytes)."""
    message = exc.args[0] if exc.args else ""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return str(message).strip().partition("\n")[0] or type(exc).__name__


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
    if not all(_flat(pa, t) for t in table.schema.types):
        return None
    return table.combine_chunks()


def _flat(pa: Any, dtype: Any) -> bool:
    return bool(
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_null(dtype)
    )


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


# -- the connector ------------------------------------------------------------------------
def content_hash(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class FileConnector(Connector):
    type_name = "file"
    config_model = FileConfig
    source_types = (
        SourceKind("json", "JSON", "{ }", "teal", preset={"file_type": "json"}),
        SourceKind("csv", "CSV", "CSV", "green", preset={"file_type": "csv"}),
        SourceKind("excel", "Excel", "XLS", "forest", preset={"file_type": "excel"}),
    )
    config: FileConfig

    def __init__(self, config: FileConfig, auth: dict[str, Any], context: ConnectorContext):
        super().__init__(config, auth, context)
        self.format = format_class(config.file_type)(config, context)

    @classmethod
    def config_model_for(cls, config: dict[str, Any]) -> type[BaseModel]:
        """The config model of the format ``config`` asks for (FileConfig if unknown)."""
        file_type = file_type_of(config)
        if file_type not in FORMATS:
            return FileConfig
        return format_class(file_type).config_model

    # -- files ---------------------------------------------------------------------
    def is_glob(self) -> bool:
        return glob.has_magic(self.config.file_path)

    def files(self) -> list[Path]:
        pattern = self.config.file_path
        settings = self.context.settings
        if self.is_glob():
            roots = settings.data_root_paths()
            base = Path(pattern).expanduser()
            patterns = [str(base)] if base.is_absolute() else [str(r / base) for r in roots]
            found = sorted({Path(p) for pat in patterns for p in glob.glob(pat, recursive=True)})
            own = OwnFiles(settings)
            return [resolve_in_roots(str(p), settings, own) for p in found if p.is_file()]
        path = resolve_in_roots(pattern, settings)
        if not path.exists():
            raise ConnectorFatal(f"file not found: {path}")
        if not path.is_file():
            raise ConnectorFatal(f"not a file: {path}")
        return [path]

    def _check(self) -> str:
        files = self.files()
        if not files:
            raise ConnectorFatal(
                f"no file matches {self.config.file_path!r} in the data roots "
                f"({os.pathsep.join(str(r) for r in self.context.settings.data_root_paths())})"
            )
        for path in files:
            with file_errors(str(path), self.config.encoding), path.open("rb") as fh:
                fh.read(1)
        size = sum(p.stat().st_size for p in files)
        return f"{len(files)} {self.config.file_type} file(s), {size:,} bytes"

    # -- reading -------------------------------------------------------------------
    @property
    def columnar(self) -> bool:  # type: ignore[override]
        return self.format.arrow_capable

    def discover(self, *, records_path: str | None = None, limit: int = 200) -> list[FieldInfo]:
        """Fields of the first records; timestamps the format read without an offset
        (and so in ``timezone``) are marked ``naive``."""
        self.format.naive_columns = set()
        fields = super().discover(records_path=records_path, limit=limit)
        every = self.format.naive_datetimes
        for info in fields:
            info.naive = info.name in self.format.naive_columns or (
                every and info.kind == "datetime"
            )
        return fields

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        records_path = request.records_path or self.config.records_path
        self.format.columnar = request.columnar and self.format.arrow_capable
        if request.strategy != "incremental":
            for path in self.files():
                yield from self._read_file(path, records_path)
            return
        yield from self._read_changed(request.state, records_path)

    def _read_file(self, path: Path, records_path: str | None) -> Iterator[Batch]:
        label = str(path)
        with file_errors(label, self.config.encoding, path):
            yield from self.format.read(path, records_path, label)

    def _read_changed(self, state: dict[str, Any], records_path: str | None) -> Iterator[Batch]:
        """Read only files that are new or changed; the state carries their markers.

        A file's marker rides on its last batch, so it is stored with that batch's rows:
        a run that stops half-way reads the file again (its rows are upserted again, not
        duplicated). Markers of files that are gone are dropped.
        """
        fingerprint = self.config.fingerprint()
        known: dict[str, Any] = state.get("files", {}) if state.get("config") == fingerprint else {}
        files = self.files()
        present = {str(p) for p in files}
        markers = {k: v for k, v in known.items() if k in present}
        for path in files:
            key = str(path)
            with file_errors(key, self.config.encoding):
                marker, changed = self._marker(path, known.get(key))
            if not changed:
                markers[key] = marker
                continue
            last: Batch | None = None
            for batch in self._read_file(path, records_path):
                if last is not None:
                    yield last
                last = batch
            markers[key] = marker
            if last is not None:
                last.state = {"config": fingerprint, "files": dict(markers)}
                yield last

    @staticmethod
    def _marker(path: Path, old: dict[str, Any] | None) -> tuple[dict[str, Any], bool]:
        """The file's current marker, and whether it changed since ``old``."""
        stat = path.stat()
        if (
            old is not None
            and old.get("size") == stat.st_size
            and old.get("mtime_ns") == stat.st_mtime_ns
            and stat.st_mtime_ns < old.get("checked_ns", 0) - RACY_NS
        ):
            return old, False
        marker = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": content_hash(path),
            "checked_ns": time.time_ns(),
        }
        return marker, old is None or old.get("sha256") != marker["sha256"]
