"""The Modbus polling benchmark keeps working (tiny mode; timings are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import private_temp

# A benchmark in its tiny mode: it runs in the slow group, beside the rest (scripts/test.sh).
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "modbus_poll.py"


def test_modbus_bench_tiny(tmp_path: Path) -> None:
    pytest.importorskip("pymodbus")
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--devices",
            "3",
            "--registers",
            "8",
            "--poll-ms",
            "200",
            "--warmup",
            "0.5",
            "--duration",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
        env=private_temp(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[2].split()[:3] == ["store", "devices", "req/poll"]
    (result,) = json.loads(lines[-1])
    assert result["store"] == "sqlite" and result["devices_seen"] == 3
    assert result["rows"] > 0 and result["requests_per_poll"] == 1
