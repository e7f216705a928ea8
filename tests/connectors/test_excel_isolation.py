"""Workbooks are parsed in a child process with limits: a hostile file fails its own run
with one clear line, while the process, the other sources and the API go on."""

from __future__ import annotations

import os
import signal
import time
import zipfile
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import select

from factorysync.connectors.file.workbook_process import (
    Limits,
    ReaderStopped,
    decode_cell,
    encode,
    open_sheet,
)
from factorysync.engine.discovery import discover_source
from factorysync.engine.runner import Runner
from factorysync.intake import parse_sources
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from tests.api.conftest import role_tokens, start_server
from tests.connectors.conftest import records
from tests.engine.test_runner import register, table_rows


def far_cell_workbook(path: Path) -> Path:
    """1.5 KB on disk; one cell at XFD1048576 spans a dense range of 17 billion cells."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet["A1"] = "machine"
    sheet["A2"] = "M-01"
    sheet["XFD1048576"] = 1
    book.save(path)
    return path


_PARTS = {
    "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
    "_rels/.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
    "xl/workbook.xml": '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
}


def big_workbook(path: Path, rows: int, cols: int) -> Path:
    """A sheet of ``rows`` x ``cols`` numbers, its XML written straight into the zip."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in _PARTS.items():
            z.writestr(name, text)
        with z.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(
                b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas'
                b'.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
            )
            cells = "".join(f'<c t="n"><v>{c}</v></c>' for c in range(cols)).encode()
            for r in range(1, rows + 1):
                sheet.write(b'<row r="%d">' % r + cells + b"</row>")
            sheet.write(b"</sheetData></worksheet>")
    return path


def excel_source(source_id: str, path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": source_id.title(),
        "source_type": "excel",
        "refresh_interval": 60,
        "connections": [{"connection_config": {"file_path": str(path)}}],
        "mappings": [{"target_table": source_id, "mapping_config": {"primary_key": "machine"}}],
        **extra,
    }


def csv_source(source_id: str, path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": source_id.title(),
        "source_type": "csv",
        "refresh_interval": 60,
        "connections": [{"connection_config": {"file_path": str(path)}}],
        "mappings": [{"target_table": source_id, "mapping_config": {"primary_key": "machine"}}],
        **extra,
    }


def write_counts(path: Path) -> Path:
    path.write_text("machine,qty\nM-01,10\nM-02,20\n")
    return path


def test_far_cell_fails_its_run_with_one_line(store: Store, data_dir: Path) -> None:
    register(store, csv_source("counts", write_counts(data_dir / "counts.csv")))
    runner = Runner(store)
    assert runner.sync("counts").sync_status == "success"
    before = table_rows(store, "counts")
    far = far_cell_workbook(data_dir / "far.xlsx")
    assert far.stat().st_size < 8 * 1024
    register(store, excel_source("far", far))

    result = runner.sync("far")

    assert result.sync_status == "failed"
    message = result.error_message or ""
    assert "\n" not in message
    assert f"{far}: the workbook reader was stopped: it needed more than 1024 MB" in message
    assert "limit FACTORYSYNC_PARSER_MAX_MB" in message
    with store.connect() as conn:
        status, stored = conn.execute(
            select(hist_t.c.sync_status, hist_t.c.error_message).where(hist_t.c.id == result.run_id)
        ).one()
    assert (status, stored) == ("failed", message)
    # This process survived the parser, and the other source's rows are untouched.
    assert table_rows(store, "counts") == before
    assert runner.sync("counts").sync_status == "success"
    # Discovery and the console's probes read through the same child process.
    with pytest.raises(ReaderStopped, match=r"far\.xlsx: the workbook reader was stopped"):
        discover_source(store, "far")
    from factorysync.web import probe  # after factorysync.api, which it imports in turn

    [decl] = parse_sources({"sources": [excel_source("far", far)]})
    for probe_with in (probe.discover, probe.preview):
        answer = probe_with(store, decl)
        assert answer["ok"] is False
        assert f"{far}: the workbook reader was stopped" in answer["message"]


def test_far_cell_through_a_real_server(store: Store, env: dict[str, str], data_dir: Path) -> None:
    token = role_tokens(store)["operator"]
    register(store, excel_source("far", far_cell_workbook(data_dir / "far.xlsx")))
    register(store, csv_source("counts", write_counts(data_dir / "counts.csv")))
    server = start_server("serve", env=env)
    try:
        with httpx2.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            good = client.post("/api/sources/counts/sync", params={"wait_s": 60})
            assert good.status_code == 200 and good.json()["sync_status"] == "success", good.text
            bad = client.post("/api/sources/far/sync", params={"wait_s": 60})
            assert bad.status_code == 200, bad.text
            run = bad.json()
            assert run["sync_status"] == "failed"
            assert "far.xlsx: the workbook reader was stopped" in run["error_message"]
            assert "\n" not in run["error_message"]
            assert server.process.poll() is None
            assert client.get("/api/health").status_code == 200
            page = client.get("/api/data/counts")
            assert page.status_code == 200
            assert sorted(r["machine"] for r in page.json()["items"]) == ["M-01", "M-02"]
    finally:
        code, _, err = server.stop(signal.SIGTERM)
    assert code == 0, err


def test_cpu_limit_stops_the_reader(data_dir: Path, make: Any, settings: Any) -> None:
    # 10 million cells take several seconds of CPU to parse and stream; the limit is 1 s.
    path = big_workbook(data_dir / "big.xlsx", rows=400_000, cols=25)
    settings.parser_cpu_s = 1
    settings.parser_max_mb = 4096
    started = time.monotonic()
    with pytest.raises(ReaderStopped) as caught:
        records(make("file", {"file_path": path.name}))
    assert str(caught.value) == (
        f"{path}: the workbook reader was stopped: it used more than 1 s of CPU time "
        "(limit FACTORYSYNC_PARSER_CPU_S)"
    )
    assert time.monotonic() - started < 120


def test_memory_limit_is_a_setting(data_dir: Path, make: Any, settings: Any) -> None:
    # 2 million cells fit in 1 GB but not in 64 MB.
    path = big_workbook(data_dir / "wide.xlsx", rows=80_000, cols=25)
    settings.parser_max_mb = 64
    with pytest.raises(ReaderStopped, match=r"it needed more than 64 MB \(limit FACTORYSYNC_"):
        records(make("file", {"file_path": path.name}))


def test_values_keep_their_types_across_the_pipe() -> None:
    cells = [
        "M-01",
        "",
        12,
        97.5,
        1e-300,
        True,
        False,
        None,
        datetime(2026, 1, 5, 6, 30, 15, 250),
        date(2026, 1, 5),
        clock(14, 5, 9),
        timedelta(hours=1, minutes=30),
    ]
    line = encode({"rows": [[7, cells]]})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    import orjson

    [[number, decoded]] = orjson.loads(line)["rows"]
    back = [decode_cell(v) for v in decoded]
    assert number == 7
    assert back == cells
    assert [type(v) for v in back] == [type(v) for v in cells]


def test_types_read_from_a_workbook(data_dir: Path, make: Any) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["machine", "running", "shift_start", "ratio", "day"])
    sheet.append(["M-01", True, clock(6, 0), 0.25, date(2026, 1, 5)])
    sheet.append(["M-02", False, clock(14, 30), 1.5, date(2026, 1, 6)])
    book.save(data_dir / "types.xlsx")
    rows = records(make("file", {"file_path": "types.xlsx"}))
    assert [r["running"] for r in rows] == [True, False]
    assert [r["shift_start"] for r in rows] == ["06:00:00", "14:30:00"]
    assert [r["ratio"] for r in rows] == [0.25, 1.5]
    days = [r["day"] for r in rows]
    assert [d.date() if isinstance(d, datetime) else d for d in days] == [
        date(2026, 1, 5),
        date(2026, 1, 6),
    ]


def test_the_reader_gets_no_secrets_and_stops_with_its_consumer(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTORYSYNC_SECRET_KEY", "not-for-parsers")
    path = big_workbook(data_dir / "big.xlsx", rows=50_000, cols=5)
    with open_sheet(path, 0, str(path), Limits(1024, 60)) as sheet:
        pid = sheet.pid
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not [v for v in environ if v.startswith(b"FACTORYSYNC_")]
        assert sheet.name == "Data"
        first = next(iter(sheet.rows()))
        assert first == (0, [0, 1, 2, 3, 4])
    # Leaving early stops the child: it is gone, not left parsing.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_file_errors_keep_their_meaning(data_dir: Path) -> None:
    # A file that goes away between listing and reading is reported like any other.
    gone = data_dir / "gone.xlsx"
    with pytest.raises(FileNotFoundError), open_sheet(gone, 0, str(gone), Limits(1024, 60)):
        pass


def test_file_names_that_are_not_utf8(data_dir: Path) -> None:
    # A Latin-1 name from an old file share: valid on Linux, not valid UTF-8.
    path = data_dir / os.fsdecode(b"produksi_\xe9.xlsx")
    big_workbook(path, rows=3, cols=2)
    with open_sheet(path, "Data", "produksi", Limits(1024, 60)) as sheet:
        assert list(sheet.rows()) == [(0, [0, 1]), (1, [0, 1]), (2, [0, 1])]
