"""Every row a data query matches, as CSV or XLSX, streamed: rows are read from the
store in chunks (:meth:`PageQuery.rows`), so memory does not grow with the table.

CSV is UTF-8 with a byte-order mark (so Excel reads Bahasa Indonesia text right), one
header line of column names, times in the plant's time zone with their offset
(ISO 8601), booleans as ``true``/``false``, JSON as JSON, NULL as an empty field. A text
value that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading ``'``, so a spreadsheet shows it instead of running it as a formula (OWASP's
advice for CSV injection); numbers are never touched.

XLSX needs openpyxl (``pip install 'factorysync[xlsx]'``; :func:`xlsx_missing` says so
before a download starts). Its write-only workbook keeps rows in a temporary file, so
memory stays bounded; the finished file is streamed in chunks. Times are written in the
plant's zone (Excel has no time zones; the "about" sheet names the zone), text is always
text (never a formula), and a sheet holds at most Excel's 1,048,576 rows: the about sheet
says when the export was cut there (CSV has no such limit).
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator, Sequence
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any

import orjson

from factorysync.services.dataquery import PageQuery
from factorysync.store.store import Store

CHUNK_ROWS = 1000
XLSX_MAX_ROWS = 1_048_576 - 1  # Excel's limit, less the header
XLSX_MAX_TEXT = 32_767
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
XLSX_INSTALL = "pip install 'factorysync[xlsx]'"


def _text(kind: str, value: Any, tz: tzinfo) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(tz).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind == "json" or isinstance(value, dict | list):
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    if isinstance(value, Decimal | int | float):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_chunks(
    store: Store, query: PageQuery, tz: tzinfo, source_id: str | None = None
) -> Iterator[bytes]:
    """The CSV file, a chunk of :data:`CHUNK_ROWS` rows at a time."""
    columns = query.info.columns
    kinds = [query.info.kinds[c] for c in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    yield ("\ufeff" + buffer.getvalue()).encode()
    with store.connect() as conn:
        batch = 0
        for row in query.rows(conn, source_id, CHUNK_ROWS):
            if batch == 0:
                buffer.seek(0)
                buffer.truncate()
            writer.writerow([_text(k, v, tz) for k, v in zip(kinds, row, strict=True)])
            batch += 1
            if batch == CHUNK_ROWS:
                yield buffer.getvalue().encode()
                batch = 0
        if batch:
            yield buffer.getvalue().encode()


def xlsx_missing() -> str | None:
    """The install command when openpyxl is missing, else None."""
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        return XLSX_INSTALL
    return None


def _cell_value(kind: str, value: Any, tz: tzinfo) -> Any:
    if value is None or isinstance(value, bool | int | float | Decimal):
        return value
    if isinstance(value, datetime):
        return value.astimezone(tz).replace(tzinfo=None)
    if isinstance(value, date):
        return value
    if kind == "json" or isinstance(value, dict | list):
        value = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    return str(value)


def xlsx_chunks(
    store: Store,
    query: PageQuery,
    tz: tzinfo,
    about: Sequence[tuple[str, str]] = (),
    source_id: str | None = None,
    chunk_bytes: int = 64 * 1024,
) -> Iterator[bytes]:
    """The XLSX file in chunks: a sheet named after the table, then an "about" sheet with
    ``about``'s (label, value) lines, the time zone and whether the rows were cut."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    columns = query.info.columns
    kinds = [query.info.kinds[c] for c in columns]
    book = Workbook(write_only=True)
    sheet = book.create_sheet(query.info.name[:31])
    sheet.append(list(columns))
    written = 0
    cut = False

    def cell(kind: str, value: Any) -> Any:
        plain = _cell_value(kind, value, tz)
        if isinstance(plain, str):
            plain = ILLEGAL_CHARACTERS_RE.sub("", plain)[:XLSX_MAX_TEXT]
        made = WriteOnlyCell(sheet, plain)
        if isinstance(plain, str):
            made.data_type = "s"  # text stays text: "=…" is never a formula
        elif isinstance(plain, datetime):
            made.number_format = "yyyy-mm-dd hh:mm:ss"
        elif isinstance(plain, date):
            made.number_format = "yyyy-mm-dd"
        return made

    with store.connect() as conn:
        for row in query.rows(conn, source_id, CHUNK_ROWS):
            if written == XLSX_MAX_ROWS:
                cut = True
                break
            sheet.append([cell(k, v) for k, v in zip(kinds, row, strict=True)])
            written += 1
    info = book.create_sheet("about")
    for label, value in [*about, ("time zone", str(tz)), ("rows", str(written))]:
        info.append([label, value])
    if cut:
        info.append(["cut", f"Excel holds {XLSX_MAX_ROWS:,} rows per sheet: export CSV for all"])
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as out:
        book.save(out)
        out.seek(0)
        while piece := out.read(chunk_bytes):
            yield piece
