"""The scale-out benchmark keeps working (tiny mode; timings are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bench.test_bench_smoke import private_temp
from tests.conftest import need_service

# A benchmark in its tiny mode: it runs in the slow group, beside the rest (scripts/test.sh).
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "workers_scaling.py"


def test_workers_bench_tiny(tmp_path: Path, pg_server: Any) -> None:
    if isinstance(pg_server, Exception):
        need_service("PostgreSQL", str(pg_server))
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--sources", "10", "--duration", "2", "--workers", "1,2"],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
        env=private_temp(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [line[0] for line in lines] == ["1", "2"]
