"""CSV files (and CSV command output), parsed block by block with pyarrow.

Every column is first read as text; each block then converts its columns to the
narrowest type all of its values fit (:mod:`.csv_types`): integer (not with leading
zeros, so codes like ``007`` stay text), float (with the configured ``decimal`` and
``thousands`` marks), boolean (``true``/``false``), a date or timestamp in one of
``date_formats`` (those without an offset are in ``timezone``, default UTC), else text.
``column_types`` fixes a column's type instead, and a value that does not fit it is an
error naming the file, column and row.

Rows with more or fewer fields than the header (ragged rows) are skipped and reported
with their line numbers (``ragged_rows: report``), or fail the read (``ragged_rows: fail``).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from factorysync.connectors.base import Batch
from factorysync.connectors.file.base import (
    FileConfig,
    FileFormat,
    FileOptions,
    undecodable,
    unique_names,
)
from factorysync.connectors.file.csv_types import Converter
from factorysync.errors import ConnectorFatal

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("factorysync.connectors.csv")
# Bytes parsed per pyarrow block. The streaming reader reads a few dozen blocks ahead of
# the consumer, so this bounds the memory a read holds (about 40 MB at 1 MB).
BLOCK_SIZE = 1024 * 1024
# A batch of wide text rows stops growing at this size, well before its row count: a
# few batches are in flight at once (parsed, mapped, written), and memory stays flat.
GATHER_BYTES = 8 * 1024 * 1024
RAGGED_SHOWN = 10  # ragged rows named in a report; the rest are counted
ColumnType = Literal["string", "integer", "float", "boolean", "date", "datetime"]
NULL_VALUES = ("", "NULL", "null", "NA", "N/A", "#N/A")


class CsvOptions(FileOptions):
    """How CSV text is parsed (file sources and command output)."""

    delimiter: str = Field(
        title="Column separator",
        examples=[",", ";"],
        default=",",
        description="Field separator, one character, e.g. ; (common in exports that "
        "write decimal commas); tab (or \\t) for tab-separated text.",
    )
    quotechar: str | None = Field(
        default='"',
        description="Character around fields that hold the delimiter or line breaks (a "
        "quote inside is doubled); null: fields are never quoted.",
    )
    escapechar: str | None = Field(
        default=None,
        description="Character that makes the next one literal inside a field, e.g. a "
        "backslash; default: none.",
    )
    has_header: bool = Field(
        title="First row holds the column names",
        default=True,
        description="Whether the first line (after skip_rows) names the columns. false: "
        "every line is data, and the columns are column_1, column_2, … unless "
        "column_names names them.",
    )
    # Names for the columns (instead of the header row, or when there is none).
    column_names: list[str] | None = Field(
        default=None,
        description="Names for the columns, in order: instead of the header row's names, "
        "or for a file without a header.",
    )
    # Lines before the header (or the first data row), e.g. a report title.
    skip_rows: int = Field(
        default=0,
        ge=0,
        description="Lines to skip before the header (or before the first data row "
        "without one), e.g. 1 for a report title above the header.",
    )
    decimal: Literal[".", ","] = Field(
        title="Decimal mark",
        default=".",
        description="Decimal mark of numbers: . or , (for 1.234,5 set decimal , and thousands .).",
    )
    thousands: Literal[".", ",", " ", "'", "_"] | None = Field(
        default=None,
        description="Thousands separator, removed before numbers are read: . , space ' "
        "or _; default: none. It must differ from decimal.",
    )
    date_formats: list[str] = Field(
        title="Date formats",
        examples=["%d/%m/%Y %H:%M"],
        default_factory=list,
        description="strptime formats tried in order for dates and timestamps, e.g. "
        "%d.%m.%Y %H:%M or %d/%m/%Y (a format without a time gives dates). Empty: "
        "columns typed date or datetime in column_types take ISO 8601 text, and other "
        "columns stay text (a mapping can still type them).",
    )
    null_values: list[str] = Field(
        default_factory=lambda: list(NULL_VALUES),
        description="Cell texts read as empty (null). The list replaces the default, "
        "which is the empty text, NULL, null, NA, N/A and #N/A.",
    )
    column_types: dict[str, ColumnType] = Field(
        default_factory=dict,
        description="Fixed types for named columns: string, integer, float, boolean, date "
        "or datetime, e.g. {order_no: string, qty: integer}. A value that does not fit "
        "fails the read, naming the file, row and column.",
    )
    infer_types: bool = Field(
        default=True,
        description="Type the columns not in column_types by their values: integer, "
        "float, boolean (true/false), a date in date_formats, else text. Numbers with "
        "leading zeros, codes such as 007, stay text. false: those columns stay text.",
    )
    ragged_rows: Literal["report", "fail"] = Field(
        default="report",
        description="Rows with more or fewer fields than the header: report skips them "
        "(each is quarantined with its line number, and a warning is logged); fail fails "
        "the read.",
    )

    @field_validator("delimiter", "quotechar", "escapechar", mode="before")
    @classmethod
    def _one_char(cls, v: Any) -> Any:
        if v == "\\t" or v == "tab":
            return "\t"
        if isinstance(v, str) and (len(v) != 1 or v in "\r\n"):
            raise ValueError(f"must be one character (got {v!r})")
        return v

    @field_validator("date_formats")
    @classmethod
    def _formats(cls, v: list[str]) -> list[str]:
        for fmt in v:
            if "%" not in fmt:
                raise ValueError(f"date format {fmt!r} has no %-directive (e.g. '%d.%m.%Y %H:%M')")
        return v

    @model_validator(mode="after")
    def _distinct_marks(self) -> CsvOptions:
        if self.thousands is not None and self.thousands == self.decimal:
            raise ValueError("thousands and decimal must be different characters")
        if self.decimal == self.delimiter:
            raise ValueError("decimal and delimiter must be different characters")
        if self.quotechar is not None and self.quotechar == self.delimiter:
            raise ValueError("quotechar and delimiter must be different characters")
        return self


class CsvFileConfig(FileConfig, CsvOptions):
    file_type: Literal["csv"] = Field(
        default="csv", description="Format of the file: csv (comma-separated text)."
    )


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.csv
    except ImportError:  # pragma: no cover - a dependency of the package
        raise ConnectorFatal("reading CSV needs pyarrow: pip install 'pyarrow>=15'") from None
    return pyarrow


class CsvFormat(FileFormat):
    arrow_capable = True

    options_model = CsvOptions
    config_model = CsvFileConfig
    options: CsvOptions

    # -- layout --------------------------------------------------------------------
    def _python_encoding(self) -> str:
        return "utf-8-sig" if self.options.is_utf8() else self.options.encoding

    def _dialect(self) -> dict[str, Any]:
        o = self.options
        return {
            "delimiter": o.delimiter,
            "quotechar": o.quotechar or '"',
            "quoting": csv.QUOTE_MINIMAL if o.quotechar else csv.QUOTE_NONE,
            "escapechar": o.escapechar,
            "doublequote": True,
            "strict": False,
        }

    def _columns(self, path: Path, label: str) -> list[str] | None:
        """Column names (from the header, ``column_names`` or the first row's width)."""
        o = self.options
        with path.open(encoding=self._python_encoding(), newline="") as fh:
            rows = csv.reader(fh, **self._dialect())
            try:
                for _ in range(o.skip_rows):
                    if next(rows, None) is None:
                        return None
                first = next(rows, None)
            except csv.Error as exc:
                raise ConnectorFatal(
                    f"{label}: line {rows.line_num or 1}: {_csv_problem(exc)}"
                ) from None
        if first is None:
            return None
        if o.column_names:
            return unique_names(o.column_names)
        if o.has_header:
            return unique_names([str(name).strip().lstrip("\ufeff") for name in first])
        return [f"column_{i + 1}" for i in range(len(first))]

    # -- reading -------------------------------------------------------------------
    def read(self, path: Path, records_path: str | None, label: str) -> Iterator[Batch]:
        pa = _pyarrow()
        o = self.options
        names = self._columns(path, label)
        if names is None:
            return
        ragged: list[Any] = []
        pending: list[tuple[Any, list[str]]] = []  # quarantined with the next batch

        def on_invalid_row(row: Any) -> str:
            ragged.append(row.text)
            where = f"line {row.number}: " if row.number is not None else ""
            pending.append(
                (
                    {"line": row.number, "text": row.text},
                    [
                        f"{where}{row.actual_columns} field(s), "
                        f"the header has {row.expected_columns}"
                    ],
                )
            )
            return "skip"

        # The reader parses its first block when it opens, so opening fails like reading.
        reader = self._arrow_call(
            pa.csv.open_csv,
            path,
            label,
            str(path),
            read_options=pa.csv.ReadOptions(
                column_names=names,
                skip_rows=o.skip_rows + (1 if o.has_header else 0),
                block_size=BLOCK_SIZE,
                use_threads=False,
                encoding="utf8" if o.is_utf8() else o.encoding,
            ),
            parse_options=pa.csv.ParseOptions(
                delimiter=o.delimiter,
                quote_char=o.quotechar or False,
                escape_char=o.escapechar or False,
                newlines_in_values=True,
                ignore_empty_lines=True,
                invalid_row_handler=on_invalid_row,
            ),
            convert_options=pa.csv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                null_values=o.null_values,
                strings_can_be_null=True,
            ),
        )
        converter = Converter(o, self.zone, label, self.naive_columns)
        blocks = (
            converter.convert(block, seen) for block, seen in self._numbered(reader, path, label)
        )
        if self.columnar:
            # Arrow batches gather blocks up to the columnar batch size.
            parts = _gathered(blocks, self.context.columnar_batch_size)
        else:
            parts = _sliced(blocks, self.context.batch_size)
        try:
            with reader:
                for first, part in parts:
                    if ragged and o.ragged_rows == "fail":
                        break
                    origin = f"{label} (row {first + 1})"
                    batch = (
                        Batch([], origin=origin, arrow=part)
                        if self.columnar
                        else Batch(part.to_pylist(), origin=origin)
                    )
                    batch.rejected, pending[:] = list(pending), []
                    yield batch
                if pending:
                    yield Batch([], origin=label, rejected=list(pending))
        finally:
            if ragged:
                self._report_ragged(path, label, len(names), len(ragged))

    def _numbered(
        self, reader: Any, path: Path, label: str
    ) -> Iterator[tuple[pa.RecordBatch, int]]:
        """Each block with the number of data rows before it."""
        seen = 0
        while True:
            try:
                block = self._arrow_call(reader.read_next_batch, path, label)
            except StopIteration:
                return
            yield block, seen
            seen += block.num_rows

    @staticmethod
    def _arrow_call(call: Any, path: Path, label: str, *args: Any, **kwargs: Any) -> Any:
        """``call(*args, **kwargs)`` with Arrow's parse errors as one-line errors naming
        the file (and the line, where it can be found)."""
        import pyarrow as pa

        try:
            return call(*args, **kwargs)
        except pa.ArrowInvalid as exc:
            raise _arrow_problem(exc, path, label) from None

    def _report_ragged(self, path: Path, label: str, expected: int, count: int) -> None:
        where = ragged_lines(path, self._python_encoding(), self._dialect(), expected, self.options)
        shown = ", ".join(f"line {line} has {n}" for line, n in where[:RAGGED_SHOWN])
        more = f" and {count - RAGGED_SHOWN} more" if count > RAGGED_SHOWN else ""
        message = (
            f"{label}: {count} row(s) do not have the header's {expected} fields ({shown}{more})"
        )
        if self.options.ragged_rows == "fail":
            raise ConnectorFatal(message + "; set ragged_rows: report to skip them")
        log.warning("%s; skipped", message)


def _arrow_problem(exc: Exception, path: Path, label: str) -> ConnectorFatal:
    """An Arrow CSV parse error, said for a user."""
    text = " ".join(str(exc).split()).removeprefix("CSV parse error: ")
    if "UTF8" in text or "UTF-8" in text:
        return undecodable(label, "utf-8", path)
    if "straddling object" in text or "Could not skip initial" in text:
        first = "the header" if "Could not skip" in text else "a row"
        return ConnectorFatal(
            f"{label}: {first} is longer than {BLOCK_SIZE // (1024 * 1024)} MiB, the most a "
            "CSV row may take: not CSV text, or a quote that is never closed?"
        )
    return ConnectorFatal(f"{label}: {text}")


def _sliced(blocks: Iterator[pa.RecordBatch], size: int) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(first row, part) of at most ``size`` rows, each from one block."""
    seen = 0
    for block in blocks:
        for start in range(0, block.num_rows, size):
            yield seen + start, block.slice(start, size)
        seen += block.num_rows


def _gathered(blocks: Iterator[pa.RecordBatch], size: int) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(first row, batch) of about ``size`` rows and at most about
    :data:`GATHER_BYTES`, consecutive blocks of one schema joined. The first block goes
    alone, so the store starts writing while the rest is parsed."""
    import pyarrow as pa

    held: list[pa.RecordBatch] = []
    first = rows = nbytes = 0
    blocks = iter(blocks)
    for block in blocks:
        if block.num_rows:
            yield 0, block
            first = block.num_rows
            break

    def joined() -> pa.RecordBatch:
        if len(held) == 1:
            return held[0]
        return pa.Table.from_batches(held).combine_chunks().to_batches()[0]

    for block in blocks:
        if block.num_rows == 0:
            continue
        full = rows + block.num_rows > size or nbytes + block.nbytes > GATHER_BYTES
        if held and (block.schema != held[0].schema or full):
            yield first, joined()
            first, rows, nbytes, held = first + rows, 0, 0, []
        held.append(block)
        rows += block.num_rows
        nbytes += block.nbytes
    if held:
        yield first, joined()


def _csv_problem(exc: csv.Error) -> str:
    """What Python's csv module reports, said for a user."""
    text = str(exc)
    if "field larger than field limit" in text:
        return (
            f"a field is longer than {csv.field_size_limit():,} characters, the most a CSV "
            "field may take here: not CSV text, or a quote that is never closed?"
        )
    return f"not readable as CSV: {text}"


def ragged_lines(
    path: Path, encoding: str, dialect: dict[str, Any], expected: int, options: CsvOptions
) -> list[tuple[int, int]]:
    """(line number, field count) of rows whose width is not ``expected`` (first few)."""
    found: list[tuple[int, int]] = []
    with path.open(encoding=encoding, newline="", errors="replace") as fh:
        rows = csv.reader(fh, **dialect)
        skip = options.skip_rows + (1 if options.has_header else 0)
        line = 0
        # A field Arrow read but Python's csv module refuses (over its field size limit)
        # ends the search: the rows found so far are named, the count stays exact.
        with suppress(csv.Error):
            for index, row in enumerate(rows):
                start, line = line + 1, rows.line_num
                if index < skip or not row:
                    continue
                if len(row) != expected:
                    found.append((start, len(row)))
                    if len(found) >= RAGGED_SHOWN:
                        break
    return found
