"""The service memory benchmark keeps working (tiny mode; the memory figures are measured,
not asserted: the target is checked on the full run, docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import private_temp
from tests.realtime.conftest import BROKER, reachable

# A benchmark in its tiny mode: it runs in the slow group, beside the rest (scripts/test.sh).
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "service_memory.py"


def test_service_memory_bench_tiny(tmp_path: Path) -> None:
    if not reachable(*BROKER):
        from tests.conftest import need_service

        need_service("Mosquitto", f"{BROKER[0]}:{BROKER[1]}")
    result = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            *("--sources", "8", "--subscriptions", "2", "--rate", "5"),
            *("--duration", "20", "--json", str(result)),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env=private_temp(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "peak RSS (VmHWM)" in proc.stdout
    found = json.loads(result.read_text())
    # What the subscriptions were sent after they were up is all written, and the
    # polled sources ran: the service did its work while it was measured.
    assert found["realtime_rows"] == found["messages_published"] == 2 * 5 * 20
    assert found["runs_success"] >= 8
    assert found["runs_failed"] == 0
    assert 50 < found["peak_rss_mb"] < 2000
