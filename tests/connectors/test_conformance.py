"""One set of tests every connection type passes: check, discover, full read, incremental
resume and bad config. Each case puts the same production rows into its own medium."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from factorysync.connectors.base import Connector, ReadRequest
from factorysync.connectors.registry import validate_connection_config
from tests.connectors.conftest import SourceServer

ROWS = [{"id": i, "machine": f"M-{i % 4:02d}", "qty": i * 3, "lot": i // 2} for i in range(1, 41)]
NEW = [{"id": i, "machine": "M-09", "qty": i, "lot": 100} for i in range(41, 46)]
_tables = itertools.count()


@dataclass
class Medium:
    """Where a case keeps its rows: ``write(rows)`` replaces or extends them."""

    connection_type: str
    config: dict[str, Any]
    auth: dict[str, Any]
    write: Callable[[list[dict[str, Any]]], None]


def _file(data_dir: Path, name: str, render: Callable[[list[dict[str, Any]]], bytes]) -> Medium:
    path = data_dir / name
    rows: list[dict[str, Any]] = []

    def write(new: list[dict[str, Any]]) -> None:
        rows.extend(new)
        path.write_bytes(render(rows))

    return Medium("file", {"file_path": name}, {}, write)


def _csv(rows: list[dict[str, Any]]) -> bytes:
    lines = ["id;machine;qty;lot"] + [
        f"{r['id']};{r['machine']};{r['qty']};{r['lot']}" for r in rows
    ]
    return ("\n".join(lines) + "\n").encode()


def _xlsx(path: Path) -> Callable[[list[dict[str, Any]]], bytes]:
    def render(rows: list[dict[str, Any]]) -> bytes:
        import openpyxl

        book = openpyxl.Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.append(list(ROWS[0]))
        for r in rows:
            sheet.append(list(r.values()))
        book.save(path)
        return path.read_bytes()

    return render


def _database(db: SourceServer) -> Medium:
    table = f"conformance_{next(_tables)}"
    db.execute(
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, machine VARCHAR(8), qty INTEGER, "
        "lot INTEGER)"
    )

    def write(new: list[dict[str, Any]]) -> None:
        values = ", ".join(f"({r['id']}, '{r['machine']}', {r['qty']}, {r['lot']})" for r in new)
        db.execute(f"INSERT INTO {table} (id, machine, qty, lot) VALUES {values}")

    return Medium("database", db.source(table=table), db.auth, write)


def _command(data_dir: Path) -> Medium:
    script = data_dir / "rows_tool.py"
    script.write_text("import sys\nsys.stdout.write(open(sys.argv[1], encoding='utf-8').read())\n")
    inner = _file(data_dir, "tool_rows.json", orjson.dumps)
    config = {
        "command": sys.executable,
        "parameters": [str(script), str(data_dir / "tool_rows.json")],
    }
    return Medium("command", config, {}, inner.write)


CASES: dict[str, Callable[[pytest.FixtureRequest, Path], Medium]] = {
    "json": lambda r, d: _file(d, "rows.json", orjson.dumps),
    "ndjson": lambda r, d: _file(
        d, "rows.ndjson", lambda rows: b"".join(orjson.dumps(x) + b"\n" for x in rows)
    ),
    "csv": lambda r, d: _medium_with(_file(d, "rows.csv", _csv), delimiter=";"),
    "excel": lambda r, d: _file(d, "rows.xlsx", _xlsx(d / "rows.xlsx")),
    "sqlite": lambda r, d: _database(r.getfixturevalue("sqlite_source")),
    "postgresql": lambda r, d: _database(r.getfixturevalue("pg_source")),
    "mariadb": lambda r, d: _database(r.getfixturevalue("maria_source")),
    "command": lambda r, d: _command(d),
}


def _medium_with(medium: Medium, **config: Any) -> Medium:
    medium.config.update(config)
    return medium


@pytest.fixture(params=list(CASES))
def medium(request: pytest.FixtureRequest, data_dir: Path) -> Medium:
    if request.param in ("postgresql", "mariadb"):
        request.applymarker(
            getattr(pytest.mark, "postgres" if request.param == "postgresql" else "mariadb")
        )
    made = CASES[request.param](request, data_dir)
    made.write(ROWS)
    return made


@pytest.fixture
def connector(medium: Medium, make: Any) -> Connector:
    return make(medium.connection_type, medium.config, medium.auth, 7)  # type: ignore[no-any-return]


def _ids(connector: Connector, request: ReadRequest) -> tuple[list[int], dict[str, Any] | None]:
    ids: list[int] = []
    state = None
    for batch in connector.read(request):
        assert len(batch.records) <= 7
        ids += [r["id"] for r in batch.records]
        if batch.state is not None:
            state = batch.state
    return ids, state


def test_check(connector: Connector) -> None:
    result = connector.check()
    assert result.ok and result.message and result.latency_ms >= 0


def test_discover(connector: Connector) -> None:
    fields = {f.name: f for f in connector.discover(limit=10)}
    assert set(fields) == {"id", "machine", "qty", "lot"}
    assert fields["id"].kind == "integer" and fields["machine"].kind == "string"
    assert fields["machine"].samples[:2] == ["M-01", "M-02"]


def test_full_read(connector: Connector) -> None:
    ids, _ = _ids(connector, ReadRequest())
    assert sorted(ids) == [r["id"] for r in ROWS]


def test_incremental_resume(connector: Connector, medium: Medium) -> None:
    first = ReadRequest(strategy="incremental", cursor_path="lot")
    ids, state = _ids(connector, first)
    assert sorted(ids) == [r["id"] for r in ROWS]
    medium.write(NEW)
    resumed = ReadRequest(
        strategy="incremental",
        cursor_path="lot",
        cursor_value=max(r["lot"] for r in ROWS),
        state=state or {},
    )
    again, _ = _ids(connector, resumed)
    everything = {r["id"] for r in ROWS + NEW}
    # Every new row comes back; a connector that can narrow the read (cursor pushed into
    # SQL) reads only what is at or after the cursor, the others may re-read the rest.
    assert {r["id"] for r in NEW} <= set(again) <= everything
    if medium.connection_type == "database":
        assert sorted(again) == [40, *(r["id"] for r in NEW)]


def test_bad_config(medium: Medium) -> None:
    problems = validate_connection_config(
        medium.connection_type, {**medium.config, "no_such_setting": 1}
    )
    assert problems == ["no_such_setting: Extra inputs are not permitted"]
