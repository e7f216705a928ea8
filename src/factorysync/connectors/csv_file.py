"""CSV files (and CSV command output), parsed block by block with pyarrow.

Every column is first read as text; each block then converts its columns to the
narrowest type all of its values fit: integer (not with leading zeros, so codes like
``007`` stay text), float (with the configured ``decimal`` and ``thousands`` marks),
boolean (``true``/``false``), a date or timestamp in one of ``date_formats`` (those
without an offset are in ``timezone``, default UTC), else text. ``column_types`` fixes a
column's type instead, and a value that does not fit it is an error naming the file,
column and row.

Rows with more or fewer fields than the header (ragged rows) are skipped and reported
with their line numbers (``ragged_rows: report``), or fail the read (``ragged_rows: fail``).
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from factorysync.connectors.base import Batch
from factorysync.connectors.file import FileConfig, FileFormat, FileOptions, undecodable
from factorysync.errors import ConnectorFatal

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("factorysync.connectors.csv")
# Bytes parsed per pyarrow block. The streaming reader reads a few dozen blocks ahead of
# the consumer, so this bounds the memory a read holds (about 40 MB at 1 MB).
BLOCK_SIZE = 1024 * 1024
RAGGED_SHOWN = 10  # ragged rows named in a report; the rest are counted
ColumnType = Literal["string", "integer", "float", "boolean", "date", "datetime"]
_TIME_DIRECTIVES = re.compile(r"%[HIMSfpTXcRrsz]")
_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_LEADING_ZERO = r"^\s*[+-]?0\d"
NULL_VALUES = ("", "NULL", "null", "NA", "N/A", "#N/A")
_TRUE = ("true", "1", "yes", "y", "t", "on")
_FALSE = ("false", "0", "no", "n", "f", "off")


class CsvOptions(FileOptions):
    """How CSV text is parsed (file sources and command output)."""

    delimiter: str = ","
    quotechar: str | None = '"'
    escapechar: str | None = None
    has_header: bool = True
    # Names for the columns (instead of the header row, or when there is none).
    column_names: list[str] | None = None
    # Lines before the header (or the first data row), e.g. a report title.
    skip_rows: int = Field(default=0, ge=0)
    decimal: Literal[".", ","] = "."
    thousands: Literal[".", ",", " ", "'", "_"] | None = None
    date_formats: list[str] = Field(default_factory=list)
    null_values: list[str] = Field(default_factory=lambda: list(NULL_VALUES))
    column_types: dict[str, ColumnType] = Field(default_factory=dict)
    infer_types: bool = True
    ragged_rows: Literal["report", "fail"] = "report"

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
    file_type: Literal["csv"] = "csv"  # type: ignore[assignment]


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
        converter = _Converter(o, self.zone, label, self.naive_columns)
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
    """(first row, batch) of about ``size`` rows, consecutive blocks of one schema joined.
    The first block goes alone, so the store starts writing while the rest is parsed."""
    import pyarrow as pa

    held: list[pa.RecordBatch] = []
    first = rows = 0
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
        if held and (block.schema != held[0].schema or rows + block.num_rows > size):
            yield first, joined()
            first, rows, held = first + rows, 0, []
        held.append(block)
        rows += block.num_rows
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


class _Converter:
    """Converts the text columns of one block to typed columns."""

    def __init__(self, options: CsvOptions, zone: str, label: str, naive: set[str]) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.pa, self.pc = pa, pc
        self.options = options
        self.zone = zone
        self.label = label
        self.naive = naive  # columns of timestamps read without an offset
        # The kind each column took in earlier blocks: tried first, since a column keeps
        # its kind through a file; a text column stays text (its values are kept as is).
        self.kinds: dict[str, str] = {}

    def convert(self, block: pa.RecordBatch, first_row: int) -> pa.RecordBatch:
        columns = []
        for name, column in zip(block.schema.names, block.columns, strict=True):
            declared = self.options.column_types.get(name)
            if declared is not None:
                columns.append(self._declared(name, column, declared, first_row))
            elif self.options.infer_types and column.null_count < len(column):
                columns.append(self._inferred(name, column))
            else:
                columns.append(column)
        return self.pa.RecordBatch.from_arrays(columns, names=block.schema.names)

    # -- conversions (each raises ArrowInvalid/ValueError when a value does not fit) --
    def _integer(self, column: Any) -> Any:
        return self.pc.cast(self.pc.utf8_trim_whitespace(column), self.pa.int64())

    def _float(self, column: Any) -> Any:
        pc = self.pc
        text = pc.utf8_trim_whitespace(column)
        if self.options.thousands:
            text = pc.replace_substring(text, self.options.thousands, "")
        if self.options.decimal == ",":
            text = pc.replace_substring(text, ",", ".")
        # The regex only runs when a value has an "n": Arrow also reads "nan" and
        # "inf(inity)", which are text here; anything else it reads is a number.
        if (
            pc.any(pc.match_substring(text, "n", ignore_case=True)).as_py()
            and pc.any(pc.invert(pc.match_substring_regex(text, _NUMBER))).as_py()
        ):
            raise ValueError("not a number")
        return pc.cast(text, self.pa.float64())

    def _number(self, column: Any, kind: str) -> Any:
        """An integer or float column, unless a value is a code with leading zeros (007)."""
        pc = self.pc
        if kind == "integer":
            try:  # plain digits need no trimming
                converted = pc.cast(column, self.pa.int64())
            except self.pa.ArrowInvalid:
                converted = self._integer(column)
            canonical = pc.all(pc.equal(pc.cast(converted, self.pa.string()), column)).as_py()
        else:
            converted = self._float(column)
            trimmed = pc.utf8_ltrim_whitespace(column)
            canonical = not any(
                pc.any(pc.starts_with(trimmed, prefix)).as_py() for prefix in ("0", "-0", "+0")
            )
        if (
            canonical is not False
            or not pc.any(pc.match_substring_regex(column, _LEADING_ZERO)).as_py()
        ):
            return converted
        raise ValueError("a code with leading zeros")

    def _boolean(self, column: Any, *, strict_words: bool) -> Any:
        pc = self.pc
        lower = pc.utf8_lower(pc.utf8_trim_whitespace(column))
        truthy, falsy = (("true",), ("false",)) if strict_words else (_TRUE, _FALSE)
        is_true = pc.is_in(lower, value_set=self.pa.array(truthy))
        is_false = pc.is_in(lower, value_set=self.pa.array(falsy))
        if pc.any(pc.and_(pc.invert(is_true), pc.invert(is_false))).as_py():
            raise ValueError("not a boolean")
        return pc.if_else(pc.is_null(lower), self.pa.scalar(None, self.pa.bool_()), is_true)

    def _temporal(self, column: Any, want: str | None, name: str) -> Any:
        pa, pc = self.pa, self.pc
        text = pc.utf8_trim_whitespace(column)
        formats = self.options.date_formats
        if not formats:
            # ISO 8601 text is typed by the engine (timestamps need an explicit offset).
            if want == "date":
                return pc.cast(text, pa.date32())
            if want == "datetime":
                return self._localize(pc.cast(text, pa.timestamp("us")), name)
            raise ValueError("no date formats")
        for fmt in formats:
            timed = bool(_TIME_DIRECTIVES.search(fmt))
            if (want == "date" and timed) or (want == "datetime" and not timed):
                continue
            try:
                parsed = pc.strptime(text, format=fmt, unit="us", error_is_null=False)
            except (pa.ArrowInvalid, ValueError):
                continue
            return self._localize(parsed, name) if timed else pc.cast(parsed, pa.date32())
        raise ValueError("no date format fits")

    def _localize(self, column: Any, name: str) -> Any:
        if getattr(column.type, "tz", None):
            return column
        self.naive.add(name)
        return self.pc.assume_timezone(
            column, timezone=self.zone, ambiguous="earliest", nonexistent="earliest"
        )

    def _inferred(self, name: str, column: Any) -> Any:
        attempts = {
            "integer": lambda c: self._number(c, "integer"),
            "float": lambda c: self._number(c, "float"),
            "boolean": lambda c: self._boolean(c, strict_words=True),
            "datetime": lambda c: self._temporal(c, None, name),
        }
        previous = self.kinds.get(name)
        if previous == "string":
            return column
        order = list(attempts)
        if previous is not None:
            order.remove(previous)
            order.insert(0, previous)
        for kind in order:
            try:
                converted = attempts[kind](column)
            except (self.pa.ArrowInvalid, ValueError):
                continue
            self.kinds[name] = kind
            return converted
        self.kinds[name] = "string"
        return column

    def _declared(self, name: str, column: Any, kind: str, first_row: int) -> Any:
        convert = {
            "string": lambda c: c,
            "integer": self._integer,
            "float": self._float,
            "boolean": lambda c: self._boolean(c, strict_words=False),
            "date": lambda c: self._temporal(c, "date", name),
            "datetime": lambda c: self._temporal(c, "datetime", name),
        }[kind]
        try:
            return convert(column)
        except (self.pa.ArrowInvalid, ValueError):
            pass
        # Name the first value that does not fit.
        for index, value in enumerate(column.to_pylist()):
            if value is None:
                continue
            try:
                convert(self.pa.array([value], self.pa.string()))
            except (self.pa.ArrowInvalid, ValueError):
                formats = self.options.date_formats if kind in ("date", "datetime") else []
                article = "an" if kind == "integer" else "a"
                raise ConnectorFatal(
                    f"{self.label}: data row {first_row + index + 1}, column {name!r}: "
                    f"{value!r} is not {article} {kind}"
                    + (f" in the formats {formats}" if formats else "")
                ) from None
        raise ConnectorFatal(f"{self.label}: column {name!r} does not fit the type {kind}")
