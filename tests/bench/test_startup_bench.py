"""The start-up benchmark keeps working (3 runs; timings are not asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_startup_bench_prints_its_table(tmp_path: Path) -> None:
    report = tmp_path / "startup.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "startup.py"), "--runs", "3", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].split() == ["command", "min", "median", "max"]
    for name in ("factorysync source sync small", "factorysync version", "python -c pass"):
        row = next(line for line in lines if line.startswith(name))
        assert len(row[len(name) :].split()) == 3
    assert "target: source sync median <= 0.15 s:" in lines[-1]
    results = json.loads(report.read_text())["results"]
    assert results["factorysync source sync small"]["runs"] == 3
