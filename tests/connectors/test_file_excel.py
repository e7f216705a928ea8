"""Excel workbooks (.xlsx written with openpyxl, .xls written with xlwt) with several sheets."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from factorysync.connectors.registry import validate_connection_config
from factorysync.engine.runner import Runner
from factorysync.errors import ConnectorFatal
from factorysync.store.store import Store
from tests.connectors.conftest import records
from tests.engine.test_runner import counts, register, table_rows

JAKARTA = ZoneInfo("Asia/Jakarta")
OUTPUT = [
    ["machine", "qty", "started", "code"],
    ["M-01", 120, datetime(2026, 1, 5, 6, 0), "007"],
    ["M-02", 97.5, datetime(2026, 1, 5, 14, 0), "010"],
    ["M-03", 0, None, None],
]
DOWNTIME = [["machine", "minutes", "reason"], ["M-01", 12, "tool change"], ["M-03", 45, "jam"]]


def write_xlsx(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    output = book.active
    assert output is not None
    output.title = "Output"
    for row in OUTPUT:
        output.append(row)
    downtime = book.create_sheet("Downtime")
    downtime["A1"] = "Downtime report, line A"  # a title above the table
    for r, row in enumerate(DOWNTIME, start=3):
        for c, value in enumerate(row, start=2):
            downtime.cell(row=r, column=c, value=value)
    downtime.cell(row=7, column=2, value="M-04")  # after an empty row
    downtime.cell(row=7, column=3, value=3)
    book.create_sheet("Empty")
    book.save(path)
    return path


def write_xls(path: Path) -> Path:
    import xlwt

    book = xlwt.Workbook()
    stamp = xlwt.easyxf(num_format_str="YYYY-MM-DD hh:mm")
    output = book.add_sheet("Output")
    for r, row in enumerate(OUTPUT):
        for c, value in enumerate(row):
            if value is not None:
                output.write(
                    r, c, value, stamp if isinstance(value, datetime) else xlwt.Style.default_style
                )
    downtime = book.add_sheet("Downtime")
    downtime.write(0, 0, "Downtime report, line A")
    for r, row in enumerate(DOWNTIME, start=2):
        for c, value in enumerate(row, start=1):
            downtime.write(r, c, value)
    downtime.write(6, 1, "M-04")
    downtime.write(6, 2, 3)
    book.save(str(path))
    return path


@pytest.fixture(params=["xlsx", "xls"])
def workbook(request: pytest.FixtureRequest, data_dir: Path) -> Path:
    path = data_dir / f"line_a.{request.param}"
    return write_xlsx(path) if request.param == "xlsx" else write_xls(path)


def test_first_sheet_with_types(workbook: Path, make: Any) -> None:
    # The workbook's dates are plant-local time: the connection says so.
    connector = make("file", {"file_path": workbook.name, "timezone": "Asia/Jakarta"})
    assert connector.check().message.startswith("1 excel file(s)")
    rows = records(connector)
    assert rows == [
        {
            "machine": "M-01",
            "qty": 120,
            "started": datetime(2026, 1, 5, 6, tzinfo=JAKARTA),
            "code": "007",
        },
        {
            "machine": "M-02",
            "qty": 97.5,
            "started": datetime(2026, 1, 5, 14, tzinfo=JAKARTA),
            "code": "010",
        },
        {"machine": "M-03", "qty": 0, "started": None, "code": None},
    ]


def test_sheet_by_name_index_and_records_path(workbook: Path, make: Any) -> None:
    expected = [
        {"machine": "M-01", "minutes": 12, "reason": "tool change"},
        {"machine": "M-03", "minutes": 45, "reason": "jam"},
        {"machine": "M-04", "minutes": 3, "reason": None},
    ]
    by_name = make("file", {"file_path": workbook.name, "sheet": "Downtime", "header_row": 3})
    assert records(by_name) == expected
    by_index = make("file", {"file_path": workbook.name, "sheet": 1, "cell_range": "B3:D7"})
    assert records(by_index) == expected
    # The mapping's records_path names the sheet, so one source can map several sheets.
    by_mapping = make("file", {"file_path": workbook.name, "header_row": 3})
    assert records(by_mapping, records_path="Downtime") == expected


def test_ranges_and_no_header(workbook: Path, make: Any) -> None:
    narrow = make("file", {"file_path": workbook.name, "cell_range": "A1:B3"})
    assert records(narrow) == [{"machine": "M-01", "qty": 120}, {"machine": "M-02", "qty": 97.5}]
    headless = make(
        "file",
        {
            "file_path": workbook.name,
            "sheet": "Downtime",
            "cell_range": "B4:C5",
            "has_header": False,
        },
    )
    assert records(headless) == [
        {"column_B": "M-01", "column_C": 12},
        {"column_B": "M-03", "column_C": 45},
    ]


def test_missing_sheet_and_broken_file(workbook: Path, data_dir: Path, make: Any) -> None:
    with pytest.raises(ConnectorFatal) as caught:
        records(make("file", {"file_path": workbook.name, "sheet": "Scrap"}))
    assert str(caught.value) == (
        f"{workbook}: no sheet named 'Scrap' (sheets: Output, Downtime"
        + (", Empty)" if workbook.suffix == ".xlsx" else ")")
    )
    with pytest.raises(ConnectorFatal, match="no sheet at index 9"):
        records(make("file", {"file_path": workbook.name, "sheet": 9}))
    (data_dir / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(ConnectorFatal, match=r"broken.xlsx: not a readable workbook"):
        records(make("file", {"file_path": "broken.xlsx"}))


def test_empty_sheet_has_no_records(data_dir: Path, make: Any) -> None:
    write_xlsx(data_dir / "book.xlsx")
    assert records(make("file", {"file_path": "book.xlsx", "sheet": "Empty"})) == []


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"cell_range": "1A:B"}, "is not like 'A1:F200'"),
        ({"sheet": -1}, "a sheet index starts at 0"),
        ({"header_row": 0}, "header_row: Input should be greater than or equal to 1"),
        ({"delimiter": ";"}, "delimiter: Extra inputs are not permitted"),
    ],
)
def test_config_is_validated(config: dict[str, Any], problem: str) -> None:
    problems = validate_connection_config("file", {"file_path": "x.xlsx", **config})
    assert any(problem in p for p in problems), problems


def test_two_sheets_into_two_tables(store: Store, data_dir: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    output = book.active
    assert output is not None
    output.title = "Output"
    for row in OUTPUT:
        output.append(row)
    downtime = book.create_sheet("Downtime")
    for row in DOWNTIME:
        downtime.append(row)
    book.save(data_dir / "line_a.xlsx")
    register(
        store,
        {
            "source_id": "line_a",
            "name": "Line A workbook",
            "source_type": "excel",
            "connections": [
                {"connection_config": {"file_path": "line_a.xlsx", "timezone": "Asia/Jakarta"}}
            ],
            "mappings": [
                {
                    "target_table": "line_a_output",
                    "mapping_config": {"primary_key": "machine", "records_path": "Output"},
                },
                {
                    "target_table": "line_a_downtime",
                    "mapping_config": {"primary_key": "machine", "records_path": "Downtime"},
                },
            ],
        },
    )
    result = Runner(store).sync("line_a")
    assert result.sync_status == "success", result.error_message
    assert counts(result) == (3 + 2, 0, 0)
    output_rows = {r["machine"]: r for r in table_rows(store, "line_a_output")}
    assert output_rows["M-01"]["started"] == datetime(2026, 1, 5, 6, tzinfo=JAKARTA)
    assert output_rows["M-02"]["qty"] == pytest.approx(97.5)
    assert output_rows["M-01"]["code"] == "007"
    downtime_rows = {r["machine"]: r["minutes"] for r in table_rows(store, "line_a_downtime")}
    assert downtime_rows == {"M-01": 12, "M-03": 45}
