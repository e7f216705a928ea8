"""The spool benchmark keeps working (tiny mode, SQLite store; timings are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import private_temp

# A benchmark in its tiny mode: it runs in the slow group, beside the rest (scripts/test.sh).
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "spool_throughput.py"


def test_spool_bench_tiny(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--messages", "3000", "--single", "200", "--store", "sqlite"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=private_temp(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    phases = {line[:36].strip(): line.split() for line in proc.stdout.splitlines()[1:]}
    assert set(phases) == {
        "into the spool (500 per commit)",
        "into the spool (1 per commit)",
        "out of the spool (read + remove)",
        "drained into sqlite",
    }
    assert phases["drained into sqlite"][-3] == "3,000"
