"""The console page benchmark keeps working (tiny mode; timings are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.bench.test_bench_smoke import private_temp

BENCH = Path(__file__).resolve().parents[2] / "bench" / "console_pages.py"


def test_console_bench_tiny(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--sources", "30", "--runs", "3", "--repeat", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
        env=private_temp(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("console pages: 30 sources, 3 runs each, sqlite")
    assert lines[1].split()[:3] == ["page", "median", "ms"]
    results = json.loads(lines[-1])
    pages = {r["page"] for r in results}
    assert {"overview /", "data resources /sources", "source detail", "alerts /alerts"} <= pages
    assert all(r["samples"] == 2 and r["median_ms"] > 0 and r["bytes"] > 1000 for r in results)
    # The list page holds every source.
    listed = next(r for r in results if r["page"] == "data resources /sources")
    assert listed["bytes"] > 30 * 300
