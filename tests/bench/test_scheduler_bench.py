"""The scheduler benchmark keeps working (tiny mode; timings are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import private_temp

# A benchmark in its tiny mode: it runs in the slow group, beside the rest (scripts/test.sh).
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scheduler_500.py"


def test_scheduler_bench_tiny(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--sources", "12", "--duration", "2"],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
        env=private_temp(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert "capacity" in proc.stdout and "overload" in proc.stdout
    assert "lag by priority" in proc.stdout
