"""Excel workbooks (.xlsx, .xlsm, .xlsb, .xls) and OpenDocument sheets (.ods), read with
python-calamine.

One sheet per read: ``sheet`` (a name, or a 0-based index), or the mapping's
``records_path`` when it is set, so the mappings of one source can each read their own
sheet of the same workbook. ``cell_range`` (``B3:H500``, ``A:F``) limits the rows and
columns; the header is the first non-empty row of that area, or ``header_row`` (the row
number Excel shows), or there is none (``has_header: false``: columns are named by
letter). Cells become plain values: whole numbers are integers, dates and times (which a
workbook keeps without a time zone) are placed in ``timezone`` (default UTC), blank cells
are null, empty rows are skipped.

The workbook itself is parsed in a child process with memory and CPU limits
(:mod:`factorysync.connectors.file.workbook_process`): a hostile file stops that process,
not the service.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from factorysync.connectors.base import Batch
from factorysync.connectors.file.base import FileConfig, FileFormat, FileOptions, unique_names
from factorysync.connectors.file.workbook_process import Limits, open_sheet

_RANGE = re.compile(r"^([A-Z]{1,3})(\d*)(?::([A-Z]{1,3})(\d*))?$")
_MAX_EXACT_FLOAT = 2**53


class ExcelOptions(FileOptions):
    sheet: str | int = Field(
        title="Sheet",
        examples=["Sheet1"],
        json_schema_extra={"group": "connection"},
        default=0,
        description="Sheet to read: its name (Produksi) or its position, 0 for the first. "
        "A mapping's records_path, when set, names the sheet instead, so that each "
        "mapping of a source can read its own sheet of one workbook.",
    )
    has_header: bool = Field(
        title="First row holds the column names",
        default=True,
        description="Whether the table has a header row (header_row, else the first "
        "non-empty row of cell_range). false: every row is data, and the columns are "
        "column_A, column_B, … unless column_names names them.",
    )
    # Row number (1 = the first row, as Excel shows it) of the header; default: the first
    # non-empty row of the range.
    header_row: int | None = Field(
        default=None,
        ge=1,
        description="Row number of the header as Excel shows it (1 = the first row); "
        "rows above it are skipped. Default: the first non-empty row of cell_range.",
    )
    cell_range: str | None = Field(
        default=None,
        description="The part of the sheet to read: A1:F200, B3:H (from row 3 to the "
        "last) or A:F (whole columns). Default: the whole sheet.",
    )
    column_names: list[str] | None = Field(
        default=None,
        description="Names for the columns, in order: instead of the header row's names, "
        "or of the column letters without a header.",
    )

    @field_validator("sheet")
    @classmethod
    def _sheet(cls, v: str | int) -> str | int:
        if isinstance(v, int) and v < 0:
            raise ValueError("a sheet index starts at 0 (the first sheet)")
        return v

    @field_validator("cell_range")
    @classmethod
    def _range(cls, v: str | None) -> str | None:
        if v is not None:
            v = v.strip().upper().replace("$", "")
            if not _RANGE.match(v):
                raise ValueError(f"cell_range {v!r} is not like 'A1:F200', 'B3:H' or 'A:F'")
        return v


class ExcelFileConfig(FileConfig, ExcelOptions):
    file_type: Literal["excel"] = Field(
        default="excel",
        description="Format of the file: excel (.xlsx, .xlsm, .xlsb, .xls or .ods).",
    )


def column_index(letters: str) -> int:
    """0-based index of a column: A → 0, Z → 25, AA → 26."""
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def parse_range(text: str | None) -> tuple[int, int, int | None, int | None]:
    """0-based (first row, first column, last row, last column); None: open-ended."""
    if text is None:
        return 0, 0, None, None
    m = _RANGE.match(text)
    assert m is not None  # validated by the config model
    c1, r1, c2, r2 = m.groups()
    first_row = int(r1) - 1 if r1 else 0
    if c2 is None:  # one reference: from that cell on (a bare column: that column only)
        return first_row, column_index(c1), None, None if r1 else column_index(c1)
    return first_row, column_index(c1), int(r2) - 1 if r2 else None, column_index(c2)


class ExcelFormat(FileFormat):
    options_model = ExcelOptions
    config_model = ExcelFileConfig
    options: ExcelOptions
    naive_datetimes = True

    def read(self, path: Path, records_path: str | None, label: str) -> Iterator[Batch]:
        settings = self.context.settings
        limits = Limits(settings.parser_max_mb, settings.parser_cpu_s)
        wanted: str | int = records_path if records_path is not None else self.options.sheet
        with open_sheet(path, wanted, label, limits) as sheet:
            yield from self.batches(
                self._records(sheet.rows(), sheet.start), f"{label} [{sheet.name}]"
            )

    def _records(
        self, rows: Iterable[tuple[int, list[Any]]], start: tuple[int, int]
    ) -> Iterator[dict[str, Any]]:
        """Rows (0-based row number in the sheet, cells from column ``start[1]`` on) as
        records. Columns without a header name (named by letter) appear in a record only
        where they hold a value, so a title or note beside the table does not add an empty
        column to every row."""
        o = self.options
        zone = ZoneInfo(self.zone)
        row0, col0, row1, col1 = parse_range(o.cell_range)
        start_col = start[1]
        first = max(col0 - start_col, 0)
        last = None if col1 is None else max(col1 - start_col + 1, 0)
        names: list[str] | None = None
        unnamed: set[int] = set()
        if not o.has_header:
            names = list(o.column_names or [])
        for row_number, raw in rows:
            if row_number < row0:
                continue
            if row1 is not None and row_number > row1:
                break
            cells = [cell_value(v, zone) for v in raw[first:last]]
            if all(v is None for v in cells):
                continue
            if names is None:
                if o.header_row is not None and row_number < o.header_row - 1:
                    continue
                names, unnamed = header_names(cells, start_col + first, o.column_names)
                continue
            while len(names) < len(cells):
                if o.has_header:
                    unnamed.add(len(names))
                names.append(f"column_{column_letters(start_col + first + len(names))}")
            yield {
                name: value
                for i, (name, value) in enumerate(zip(names, cells, strict=False))
                if value is not None or i not in unnamed
            }


def header_names(
    cells: list[Any], first_col: int, given: list[str] | None
) -> tuple[list[str], set[int]]:
    """Column names from a header row, and the positions that had no name."""
    if given:
        return unique_names(list(given)), set()
    raw = [
        "" if v is None else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
        for v in cells
    ]
    unnamed = {i for i, name in enumerate(raw) if not name.strip()}
    names = [
        name.strip() or f"column_{column_letters(first_col + i)}" for i, name in enumerate(raw)
    ]
    return unique_names(names), unnamed


def cell_value(value: Any, zone: ZoneInfo) -> Any:
    """A calamine cell as a plain value."""
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _MAX_EXACT_FLOAT:
            return int(value)
        return value
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return value
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value
