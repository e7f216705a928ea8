"""What every file format shares: the options and config models, the table of formats,
the :class:`FileFormat` interface, and the one place where OS, decoding and parser
errors raised while reading a file become connector errors.

A format only says how one file becomes record batches; finding the files, keeping them
inside the data roots and change detection belong to the connector
(:mod:`.connector`, :mod:`.paths`).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factorysync.config.names import check_zone
from factorysync.connectors.base import Batch, ConnectorContext
from factorysync.errors import (
    ConnectorError,
    ConnectorFatal,
    ConnectorRetriable,
    full_traceback,
)

log = logging.getLogger("factorysync.connectors.file")

FileType = Literal["json", "ndjson", "csv", "excel"]
# Each format's class, imported when a source of that format is opened.
FORMATS: dict[str, str] = {
    "json": "factorysync.connectors.file.json:JsonFormat",
    "ndjson": "factorysync.connectors.file.json:NdjsonFormat",
    "csv": "factorysync.connectors.file.csv:CsvFormat",
    "excel": "factorysync.connectors.file.excel:ExcelFormat",
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

    encoding: str = Field(
        title="Text encoding",
        examples=["utf-8", "cp1252"],
        default="utf-8",
        description="Text encoding of the data: any Python codec name, e.g. utf-8, "
        "utf-8-sig, latin-1, cp1252. A UTF-8 byte order mark is skipped. Not used for "
        "Excel workbooks.",
    )
    records_path: str | None = Field(
        title="Records path",
        examples=["data.items"],
        default=None,
        description="JSON: dot path to the list of records in the document, e.g. data or "
        "result.items (default: the document itself is the list, or the one record). "
        "Excel: the sheet to read, instead of sheet. A mapping's records_path wins over "
        "this one. Not used for CSV and NDJSON.",
    )
    # Zone of timestamps without an offset (an IANA name; default UTC). The plant zone
    # (FACTORYSYNC_TIMEZONE) is for display only.
    timezone: str | None = Field(
        title="Time zone of naive timestamps",
        examples=["Asia/Jakarta"],
        default=None,
        description="IANA time zone, e.g. Asia/Jakarta, in which timestamps without a UTC "
        "offset are read: CSV dates (date_formats, column_types), Excel dates, and JSON "
        "text a mapping types as datetime. Default: the time zone of the source's site, "
        "else UTC. The plant zone (FACTORYSYNC_TIMEZONE) is for display only and does not "
        "apply here.",
    )

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

    file_path: str = Field(
        title="File path",
        examples=["line_counts.csv", "exports/*.csv"],
        json_schema_extra={"group": "connection"},
        min_length=1,
        description="The file to read: a path or a glob (imports/*.csv; ** for every "
        "sub-folder), inside a data root (FACTORYSYNC_DATA_ROOTS). A relative path is "
        "looked up under each root in turn. A glob reads every matching file, and a full "
        "sync treats them together as the snapshot.",
    )
    file_type: FileType = Field(
        title="File format",
        default="json",
        description="Format of the file: json (an array, an object holding the records, "
        "or one object), ndjson (one JSON record per line), csv or excel. Left out: from "
        "the extension of file_path (.json; .ndjson, .jsonl; .csv; .xlsx, .xlsm, .xlsb, "
        ".xls, .ods), json when the extension is none of these.",
    )
    auto_reload: bool = Field(
        title="Read again when the file changes",
        default=False,
        description="Also sync soon after the file changes, besides the schedule: "
        "factorysync run watches its folder (files replaced by rename are seen too), and "
        "a burst of writes makes one sync (FACTORYSYNC_FILE_WATCH_DEBOUNCE_MS).",
    )
    # Informational fields kept from imported front-end configs.
    file_name: str | None = Field(
        default=None,
        description="The front end's fileName, kept from an imported default_source_data "
        "list (import-legacy) and served again by /api/legacy/source_data. Not used to "
        "read the file.",
    )
    legacy_path: str | None = Field(
        default=None,
        description="The front end's filePath, kept from an imported default_source_data "
        "list (import-legacy) and served again by /api/legacy/source_data. Not used to "
        "read the file: file_path is.",
    )

    @model_validator(mode="before")
    @classmethod
    def _type_from_extension(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("file_type") is None and "file_path" in data:
            return {**data, "file_type": file_type_of(data)}
        return data

    def fingerprint(self, site_zone: str | None = None) -> str:
        """Changes when a setting that affects the records changes (markers then reset).
        ``site_zone``: the zone of the source's site, the default of ``timezone``."""
        relevant = self.model_dump(exclude={"auto_reload", "file_name", "legacy_path"})
        # The zone in effect, not the setting: naive timestamps read before UTC became
        # the default (in the plant zone) are read again.
        relevant["timezone"] = self.timezone or site_zone or "UTC"
        return hashlib.sha256(orjson.dumps(relevant, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def file_type_of(config: dict[str, Any]) -> str | None:
    """The format a raw ``connection_config`` asks for: ``file_type``, else the extension."""
    given = config.get("file_type")
    if given is not None:
        return given if isinstance(given, str) else None
    suffix = Path(str(config.get("file_path") or "")).suffix.lower()
    return EXTENSIONS.get(suffix, "json")


def format_class(file_type: str) -> type[FileFormat]:
    """The class of the format ``file_type`` (a key of FORMATS)."""
    module, _, name = FORMATS[file_type].partition(":")
    return getattr(import_module(module), name)  # type: ignore[no-any-return]


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
        """The zone of timestamps without an offset (``timezone``, else the site's zone,
        else UTC)."""
        return self.options.timezone or self.context.site_zone or "UTC"

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


def unique_names(names: list[str]) -> list[str]:
    """Header names made usable: blanks named by position, repeats numbered."""
    out: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(names):
        name = raw or f"column_{i + 1}"
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


# -- errors -------------------------------------------------------------------------------
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
