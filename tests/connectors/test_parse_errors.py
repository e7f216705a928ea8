"""Files that are not what their source says they are (random bytes, a 200 KiB header
field, truncated or binary JSON): the error is one line naming the file, and the line
where it is known, in the connector, the CLI, the run history and the API; never a
traceback, unless asked for with ``factorysync --debug``."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from factorysync.connectors.file import json as file_module
from factorysync.errors import ConnectorFatal
from factorysync.settings import Settings
from factorysync.store.store import Store
from tests.api.conftest import Api, make_api
from tests.conftest import run_cli
from tests.connectors.conftest import batches
from tests.engine.test_runner import table_rows

GOOD_CSV = b"machine,qty\nM-01,5\nM-02,7\n"


def random_bytes(size: int, seed: int = 17) -> bytes:
    return random.Random(seed).randbytes(size)


def wide_header() -> bytes:
    """A header of 12 fields of 100 KiB: each within Python's field limit, together
    longer than a CSV block."""
    names = [f"c{i}".encode() + b"x" * (100 * 1024) for i in range(12)]
    return b",".join(names) + b"\n" + b",".join([b"1"] * 12) + b"\n"


# (file name, content, connection_config, what the message says after "<path>: ")
CASES = {
    "random csv": (
        "random.csv",
        random_bytes(64 * 1024),
        {},
        r"line 1 \(byte offset 0\): not valid utf-8 text; set connection_config.encoding",
    ),
    "200 KiB header field": (
        "header.csv",
        b"id," + b"h" * (200 * 1024) + b"\n1,2\n",
        {},
        r"line 1: a field is longer than 131,072 characters, the most a CSV field may take "
        r"here: not CSV text, or a quote that is never closed\?",
    ),
    "header over the block size": (
        "wide.csv",
        wide_header(),
        {},
        r"the header is longer than 1 MiB, the most a CSV row may take",
    ),
    "row over the block size": (
        "long_row.csv",
        b'a,b\n1,"' + b"x" * (2 * 1024 * 1024) + b'"\n',
        {},
        r"a row is longer than 1 MiB, the most a CSV row may take",
    ),
    "invalid utf-8 late in a csv": (
        "late.csv",
        b"a,b\n" + b"x,y\n" * 5000 + b"\xff,z\n",
        {},
        r"line 5002 \(byte offset 20,004\): not valid utf-8 text",
    ),
    "invalid cp1252 text": (
        "cp.csv",
        b"a,b\n" + b"x,y\n" * 10 + b"\x81,z\n",
        {"encoding": "cp1252"},
        r"line 12 \(byte offset 44\): not valid cp1252 text",
    ),
    "truncated json": (
        "trunc.json",
        b'[{"a": 1}, {"a": 2}, {"a"',
        {},
        r"invalid JSON at line 1, column 26: unexpected end of data \(the file ends early",
    ),
    "binary json": (
        "random.json",
        random_bytes(4096),
        {},
        r"line 1 \(byte offset 0\): not valid utf-8 text",
    ),
    "binary ndjson": (
        "random.ndjson",
        b'{"a": 1}\n' + random_bytes(4096),
        {},
        r"line 2: invalid JSON: ",
    ),
    "ndjson in latin-1 with a bad line": (
        "latin.ndjson",
        b'{"a": "\xe9"}\n{"a": \n{"a": 3}\n',
        {"encoding": "latin-1"},
        r"line 2: invalid JSON: ",
    ),
}


def check_message(message: str, path: Path, expected: str) -> None:
    assert "\n" not in message, message
    assert re.match(re.escape(f"{path}: ") + expected, message), message


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("columnar", [False, True], ids=["rows", "arrow"])
def test_parse_errors_are_one_line_naming_the_file(
    data_dir: Path, make: Any, case: str, columnar: bool
) -> None:
    name, content, config, expected = CASES[case]
    path = data_dir / name
    path.write_bytes(content)
    with pytest.raises(ConnectorFatal) as caught:
        batches(make("file", {"file_path": name, **config}), columnar=columnar)
    check_message(str(caught.value), path, expected)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'[{"a": 1}, {"a": 2}, {"a"', r"invalid JSON near byte 25: parse error: premature EOF"),
        (random_bytes(4096), r"invalid JSON near byte [\d,]+: (lexical|parse) error: "),
    ],
    ids=["truncated", "binary"],
)
def test_streamed_json_errors_are_one_line(
    data_dir: Path, make: Any, monkeypatch: pytest.MonkeyPatch, content: bytes, expected: str
) -> None:
    # Documents past the threshold are streamed with ijson, whose messages span lines.
    monkeypatch.setattr(file_module, "STREAM_THRESHOLD", 16)
    path = data_dir / "big.json"
    path.write_bytes(content)
    with pytest.raises(ConnectorFatal) as caught:
        batches(make("file", {"file_path": "big.json"}))
    check_message(str(caught.value), path, expected)


def test_random_latin1_text_is_read_as_ragged_rows(data_dir: Path, make: Any) -> None:
    # Every byte is a latin-1 character: the file reads, its odd rows reported, not fatal.
    (data_dir / "noise.csv").write_bytes(random_bytes(256 * 1024))
    rows = [
        r
        for b in batches(make("file", {"file_path": "noise.csv", "encoding": "latin-1"}))
        for r in b.records
    ]
    assert rows and all(isinstance(r, dict) for r in rows)


# -- through the command line, the history and the API ---------------------------------------
SOURCES = """\
sources:
  - source_id: counts
    name: Counts
    source_type: csv
    connections:
      - connection_config: {file_path: counts.csv}
    mappings:
      - target_table: counts
        mapping_config: {primary_key: [machine]}
"""

BAD = {
    "random csv": random_bytes(64 * 1024),
    "200 KiB header field": b"machine," + b"q" * (200 * 1024) + b"\nM-01,5\n",
}


def stored_rows() -> list[tuple[str, int]]:
    store = Store(Settings())
    try:
        return sorted((r["machine"], r["qty"]) for r in table_rows(store, "counts"))
    finally:
        store.dispose()


@pytest.mark.parametrize("case", BAD)
def test_cli_prints_one_line_and_keeps_the_synced_rows(
    env: dict[str, str], tmp_path: Path, data_dir: Path, case: str
) -> None:
    path = data_dir / "counts.csv"
    path.write_bytes(GOOD_CSV)
    (tmp_path / "sources.yaml").write_text(SOURCES)
    run_cli("init", check=True)
    run_cli("apply", "sources.yaml", check=True)
    run_cli("source", "sync", "counts", check=True)
    synced = stored_rows()
    assert synced == [("M-01", 5), ("M-02", 7)]
    path.write_bytes(BAD[case])

    proc = run_cli("source", "sync", "counts")

    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"error: 1 sync(s) failed: counts: connection 'primary' failed: {path}")
    assert [x for x in output.splitlines() if str(path) in x] == [line]

    debug = run_cli("--debug", "source", "sync", "counts")
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.splitlines()[-1].startswith("error: 1 sync(s) failed: counts: ")

    discover = run_cli("source", "discover", "counts")
    assert discover.returncode == 1 and discover.stdout == ""
    (found,) = discover.stderr.splitlines()
    assert found.startswith(f"error: {path}: ")

    runs = orjson.loads(run_cli("history", "counts", "--json", check=True).stdout)
    assert [r["sync_status"] for r in runs] == ["failed", "failed", "success"]
    for run in runs[:2]:
        assert run["error_message"] == line.removeprefix("error: 1 sync(s) failed: counts: ")
    assert stored_rows() == synced


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    yield from make_api(store)


def test_api_run_names_the_file(api: Api, data_dir: Path) -> None:
    path = data_dir / "counts.csv"
    path.write_bytes(BAD["200 KiB header field"])
    body = {
        "source_id": "counts",
        "name": "Counts",
        "source_type": "csv",
        "connections": [{"connection_config": {"file_path": "counts.csv"}}],
        "mappings": [{"target_table": "counts"}],
    }
    assert api.post("/api/sources", json=body).status_code == 201

    answer = api.post("/api/sources/counts/sync?wait_s=120")

    run = answer.json() if answer.status_code == 200 else api.wait_run(answer.json()["run_id"])
    assert run["sync_status"] == "failed"
    assert run["error_message"] == (
        f"connection 'primary' failed: {path}: line 1: a field is longer than 131,072 "
        "characters, the most a CSV field may take here: not CSV text, or a quote that is "
        "never closed?"
    )


def test_a_failure_nothing_maps_is_still_one_line(env: dict[str, str], tmp_path: Path) -> None:
    # A front end's list nested far past any parser's recursion: whatever the error is
    # called, the command says it in one line, and --debug adds the traceback.
    legacy = tmp_path / "constant.js"
    legacy.write_text("export const default_source_data = " + "[" * 50_000 + "]" * 50_000)

    proc = run_cli("import-legacy", str(legacy))

    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: ")
    debug = run_cli("--debug", "import-legacy", str(legacy))
    assert debug.returncode == proc.returncode
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.splitlines()[-1] == line
