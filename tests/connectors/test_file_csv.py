"""CSV file sources: encodings, delimiters, decimal commas, quoting, ragged rows, types."""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from factorysync.connectors.base import ReadRequest
from factorysync.connectors.file import csv as csv_file
from factorysync.connectors.registry import validate_connection_config
from factorysync.engine.runner import Runner
from factorysync.errors import ConnectorFatal
from factorysync.store.store import Store
from tests.connectors.conftest import batches, records
from tests.engine.test_runner import counts, register, table_rows

JAKARTA = ZoneInfo("Asia/Jakarta")


def write(path: Path, text: str, encoding: str = "utf-8", bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    return path


def test_bom_semicolons_and_decimal_commas(data_dir: Path, make: Any) -> None:
    write(
        data_dir / "export.csv",
        "Maschine;Menge;Temperatur;Gewicht\r\nM-01;12;21,5;1.234,75\r\nM-02;7;-3,25;980,00\r\n",
        bom=True,
    )
    connector = make(
        "file", {"file_path": "export.csv", "delimiter": ";", "decimal": ",", "thousands": "."}
    )
    assert records(connector) == [
        {"Maschine": "M-01", "Menge": 12, "Temperatur": 21.5, "Gewicht": 1234.75},
        {"Maschine": "M-02", "Menge": 7, "Temperatur": -3.25, "Gewicht": 980.0},
    ]


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_legacy_encodings(data_dir: Path, make: Any, encoding: str) -> None:
    text = "operator,note\nMüller,Température élevée\nGarçon,5 % über Soll\n"
    if encoding == "cp1252":
        text += "Kasse,Preis 5 €\n"
    write(data_dir / "ops.csv", text, encoding)
    rows = records(make("file", {"file_path": "ops.csv", "encoding": encoding}))
    assert rows[0] == {"operator": "Müller", "note": "Température élevée"}
    assert rows[1]["note"] == "5 % über Soll"
    if encoding == "cp1252":
        assert rows[2]["note"] == "Preis 5 €"
    with pytest.raises(ConnectorFatal) as caught:
        records(make("file", {"file_path": "ops.csv"}))
    message = str(caught.value)
    assert str(data_dir / "ops.csv") in message and "set connection_config.encoding" in message


def test_quoted_newlines_and_delimiters(data_dir: Path, make: Any) -> None:
    write(
        data_dir / "notes.csv",
        'id,comment,qty\n1,"first line\nsecond line",5\n2,"a, b and ""c""",6\n3,plain,7\n',
    )
    rows = records(make("file", {"file_path": "notes.csv"}))
    assert [r["comment"] for r in rows] == ["first line\nsecond line", 'a, b and "c"', "plain"]
    assert [r["qty"] for r in rows] == [5, 6, 7]


def test_ragged_rows_are_reported_not_fatal(
    data_dir: Path, make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    write(
        data_dir / "ragged.csv",
        'id,machine,qty\n1,M-01,5\n2,M-02\n3,"M-03\nsecond line",7\n4,M-04,8,extra\n5,M-05,9\n',
    )
    with caplog.at_level(logging.WARNING, logger="factorysync.connectors.csv"):
        rows = records(make("file", {"file_path": "ragged.csv"}))
    assert [r["id"] for r in rows] == [1, 3, 5]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert str(data_dir / "ragged.csv") in warning
    assert "2 row(s) do not have the header's 3 fields" in warning
    assert "line 3 has 2" in warning and "line 6 has 4" in warning

    strict = make("file", {"file_path": "ragged.csv", "ragged_rows": "fail"})
    with pytest.raises(ConnectorFatal, match=r"line 3 has 2, line 6 has 4"):
        records(strict)


def test_ragged_report_past_a_field_pythons_csv_refuses(
    data_dir: Path, make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrow reads a 200 KiB field; the report of ragged rows (Python's csv module, with its
    # 128 KiB field limit) names the rows before it and still counts them all.
    big = "n" * (200 * 1024)
    write(data_dir / "notes.csv", f"id,note\n1,a\n2\n3,{big}\n4\n5,e\n")
    with caplog.at_level(logging.WARNING, logger="factorysync.connectors.csv"):
        rows = records(make("file", {"file_path": "notes.csv"}))
    assert [r["id"] for r in rows] == [1, 3, 5] and rows[1]["note"] == big
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "2 row(s) do not have the header's 2 fields (line 3 has 1)" in warning


def test_preamble_dates_and_time_zone(data_dir: Path, make: Any) -> None:
    write(
        data_dir / "shift.csv",
        "Shift report line A\nexported 05.01.2026\n"
        "day,start,qty\n05.01.2026,05.01.2026 06:00,10\n06.01.2026,06.01.2026 14:30,12\n",
    )
    connector = make(
        "file",
        {
            "file_path": "shift.csv",
            "skip_rows": 2,
            "timezone": "Asia/Jakarta",
            "date_formats": ["%d.%m.%Y %H:%M", "%d.%m.%Y"],
        },
    )
    first, second = records(connector)
    assert first == {
        "day": date(2026, 1, 5),
        "start": datetime(2026, 1, 5, 6, tzinfo=JAKARTA),
        "qty": 10,
    }
    assert second["start"] == datetime(2026, 1, 6, 14, 30, tzinfo=JAKARTA)
    # Without a timezone, naive timestamps are UTC (the plant zone is for display only).
    utc = make(
        "file",
        {"file_path": "shift.csv", "skip_rows": 2, "date_formats": ["%d.%m.%Y %H:%M"]},
    )
    assert records(utc)[0]["start"] == datetime(2026, 1, 5, 6, tzinfo=ZoneInfo("UTC"))


def test_float_columns_codes_blanks_and_words(data_dir: Path, make: Any) -> None:
    write(
        data_dir / "gauges.csv",
        "plain,signed,padded,code,word,huge\n"
        "0.5,-0.25, 1.5 ,007.5,1.0,1e999\n"
        "12.75,+0.5,2.0,0.5,nan,2.5\n"
        "3,-1.5,  0.75,1.5,3.0,3.5\n",
    )
    rows = records(make("file", {"file_path": "gauges.csv"}))
    assert [r["plain"] for r in rows] == [0.5, 12.75, 3.0]
    assert [r["signed"] for r in rows] == [-0.25, 0.5, -1.5]
    assert [r["padded"] for r in rows] == [1.5, 2.0, 0.75]  # blanks around numbers
    assert [r["code"] for r in rows] == ["007.5", "0.5", "1.5"]  # a leading-zero code: text
    assert [r["word"] for r in rows] == ["1.0", "nan", "3.0"]  # "nan" is a word: text
    assert [r["huge"] for r in rows] == [float("inf"), 2.5, 3.5]  # a number, too large


def test_types_codes_nulls_and_declared_columns(data_dir: Path, make: Any) -> None:
    write(
        data_dir / "parts.csv",
        "code,qty,ok,rate,note\n007,5,true,0.5,NA\n010,,false,1,\n120,7,TRUE,2.25,x\n",
    )
    rows = records(make("file", {"file_path": "parts.csv"}))
    assert [r["code"] for r in rows] == ["007", "010", "120"]  # leading zeros stay text
    assert [r["qty"] for r in rows] == [5, None, 7]
    assert [r["ok"] for r in rows] == [True, False, True]
    assert [r["rate"] for r in rows] == [0.5, 1.0, 2.25]
    assert [r["note"] for r in rows] == [None, None, "x"]

    declared = make(
        "file", {"file_path": "parts.csv", "column_types": {"code": "integer", "rate": "string"}}
    )
    row = records(declared)[0]
    assert row["code"] == 7 and row["rate"] == "0.5"
    bad = make("file", {"file_path": "parts.csv", "column_types": {"note": "integer"}})
    with pytest.raises(ConnectorFatal) as caught:
        records(bad)
    assert (
        str(caught.value)
        == f"{data_dir / 'parts.csv'}: data row 3, column 'note': 'x' is not an integer"
    )


def test_no_header_and_given_names(data_dir: Path, make: Any) -> None:
    write(data_dir / "raw.csv", "M-01\t5\nM-02\t6\n")
    plain = records(make("file", {"file_path": "raw.csv", "delimiter": "\\t", "has_header": False}))
    assert plain == [{"column_1": "M-01", "column_2": 5}, {"column_1": "M-02", "column_2": 6}]
    named = make(
        "file",
        {
            "file_path": "raw.csv",
            "delimiter": "tab",
            "has_header": False,
            "column_names": ["machine", "qty"],
        },
    )
    assert records(named)[1] == {"machine": "M-02", "qty": 6}


def test_large_file_in_blocks(data_dir: Path, make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_file, "BLOCK_SIZE", 4096)
    lines = ["id,machine,qty,temp"] + [
        f"{i},M-{i % 7},{i % 100},{20 + i / 8}" for i in range(20_000)
    ]
    write(data_dir / "big.csv", "\n".join(lines) + "\n")
    got = batches(make("file", {"file_path": "big.csv"}, batch_size=3000))
    assert max(len(b.records) for b in got) <= 3000 and len(got) > 7
    rows = [r for b in got for r in b.records]
    assert [r["id"] for r in rows] == list(range(20_000))
    assert rows[-1] == {"id": 19_999, "machine": "M-0", "qty": 99, "temp": 20 + 19_999 / 8}


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"delimiter": ";;"}, "delimiter: must be one character"),
        ({"decimal": ",", "delimiter": ","}, "decimal and delimiter must be different"),
        ({"date_formats": ["dd.mm.yyyy"]}, "has no %-directive"),
        ({"timezone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
        ({"sheet": 1}, "sheet: Extra inputs are not permitted"),
        ({"encoding": "klingon"}, "unknown encoding 'klingon'"),
    ],
)
def test_config_is_validated(config: dict[str, Any], problem: str) -> None:
    problems = validate_connection_config("file", {"file_path": "x.csv", **config})
    assert any(problem in p for p in problems), problems


def test_sync_into_the_store(store: Store, data_dir: Path) -> None:
    path = write(
        data_dir / "oee.csv",
        "\ufeffmachine;oee;at\nM-01;0,81;2026-01-05T06:00:00+07:00\nM-02;0,77;2026-01-05T06:00:00+07:00\n",
    )
    register(
        store,
        {
            "source_id": "oee_csv",
            "name": "OEE",
            "source_type": "csv",
            "connections": [
                {"connection_config": {"file_path": "oee.csv", "delimiter": ";", "decimal": ","}}
            ],
            "mappings": [{"target_table": "oee_csv", "mapping_config": {"primary_key": "machine"}}],
        },
    )
    runner = Runner(store)
    first = runner.sync("oee_csv")
    assert first.sync_status == "success", first.error_message
    assert counts(first) == (2, 0, 0)
    rows = {r["machine"]: r for r in table_rows(store, "oee_csv")}
    assert rows["M-01"]["oee"] == pytest.approx(0.81)
    assert rows["M-02"]["at"] == datetime(2026, 1, 5, 6, tzinfo=JAKARTA)
    write(path, "machine;oee;at\nM-01;0,85;2026-01-05T07:00:00+07:00\n")
    assert counts(runner.sync("oee_csv")) == (0, 1, 1)


def test_memory_stays_bounded(data_dir: Path, make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa

    monkeypatch.setattr(csv_file, "BLOCK_SIZE", 64 * 1024)
    path = data_dir / "large.csv"
    with path.open("w") as fh:
        fh.write("id,machine,line,qty,temp,status,note\n")
        for i in range(150_000):
            fh.write(f"{i},M-{i % 40:03d},LINE-{i % 4},{i % 97},{20 + i % 13 / 4},RUN,ok\n")
    assert path.stat().st_size > 5_000_000
    peak = 0
    seen = 0
    for batch in make("file", {"file_path": "large.csv"}, batch_size=2000).read(ReadRequest()):
        seen += len(batch.records)
        peak = max(peak, pa.total_allocated_bytes())
    assert seen == 150_000
    # Arrow holds a few dozen blocks ahead of the reader, never the whole file.
    assert peak < 4_000_000, f"{peak / 1e6:.1f} MB held by pyarrow"
