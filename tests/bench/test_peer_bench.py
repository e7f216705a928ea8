"""The peer comparison benchmarks keep working (tiny mode; timings are not asserted).

The peer tools live in a separate environment (`make bench-venv`), so here every case
runs with ``--peers none``: factorysync and the native loaders only, each target's rows
counted after the run, then the report gathers the results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import _pg_url, private_temp, unique_workdir

# A benchmark in its tiny mode: it runs in the slow group, beside the rest (scripts/test.sh).
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench"
ROWS = 3000

CASES = [
    (
        "peer_csv.py",
        ["--rows", str(ROWS)],
        ["a-csv-sqlite", "b-csv-postgresql", "h-text-sqlite", "h-text-postgresql"],
    ),
    ("peer_json.py", ["--rows", str(ROWS)], ["c-json"]),
    ("peer_pg_table.py", ["--rows", str(ROWS)], ["d-pg-table"]),
    ("peer_resync.py", ["--rows", str(ROWS)], ["e-resync"]),
    ("peer_incremental.py", ["--rows", str(ROWS), "--new", "300"], ["f-incremental"]),
    ("peer_memory.py", ["--size-mb", "0.5", "--targets", "SQLite,PostgreSQL"], ["g-memory"]),
]


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=cwd,
        env=private_temp(cwd),
    )


@pytest.mark.postgres
@pytest.mark.parametrize(("script", "args", "cases"), CASES, ids=[c[0] for c in CASES])
def test_peer_case_tiny(script: str, args: list[str], cases: list[str], tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = run(
        script,
        *args,
        "--runs",
        "1",
        "--peers",
        "none",
        "--pg-url",
        _pg_url(),
        "--workdir",
        str(unique_workdir(tmp_path)),
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "peak RSS MB" in proc.stdout and "× factorysync" in proc.stdout
    for case in cases:
        result = json.loads((out / f"{case}.json").read_text())
        ran = [e for e in result["contenders"] if not e["skipped"]]
        assert {e["role"] for e in ran} >= {"factorysync"}, result
        for e in ran:
            # each run completed and its target held exactly the expected rows
            assert not e["failure"] and not e["problems"], e
            if e["role"] == "floor" and e["expected_rows"] is None:
                continue  # the interpreter's start-up only: no rows move
            assert [r["rows"] for r in e["runs"]] == [e["expected_rows"]], e
        skipped = [e for e in result["contenders"] if e["skipped"]]
        assert all(e["role"] == "peer" for e in skipped)
        assert (out / f"{case}.svg").read_text().startswith("<svg")
        assert "| contender |" in (out / f"{case}.md").read_text()
    report = run("peer_report.py", "--out", str(out), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "## Peer comparison" in (out / "peer-comparison.md").read_text()


def test_dlt_runner_parses_without_dlt(tmp_path: Path) -> None:
    """The dlt runner imports dlt lazily: its usage shows in an environment without it."""
    proc = run("peer_dlt.py", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "--path-kind" in proc.stdout, proc.stderr
