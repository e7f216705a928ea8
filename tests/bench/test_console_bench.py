"""The console page benchmark keeps working, in its tiny mode: it builds its store, serves
it over real HTTP, logs in and prints its table with every page answered 200 and sent
gzipped. Timings and the PASS/FAIL verdicts are never asserted (the machine is shared)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import private_temp

# A benchmark in its tiny mode: it runs in the slow group, beside the rest (scripts/test.sh).
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "console_pages.py"
PAGES = {
    "overview",
    "sources list",
    "sources, filtered",
    "source page (failing)",
    "source page (synced)",
    "alerts",
    "add form (pick)",
    "add form (csv)",
    "data browser",
    "data table",
}


def test_console_bench_tiny(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--sources", "20", "--rounds", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
        env=private_temp(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("console pages: 20 sources, 20 runs each, sqlite, 2 requests")
    assert lines[1] == "targets: at most 150 KB transferred, server p95 at most 100 ms"
    assert lines[2].split() == [
        *["page", "status", "gzip", "KB", "srv", "p50", "srv", "p95"],
        *["cli", "p50", "cli", "p95", "verdict"],
    ]
    rows = lines[3:-1]
    assert len(rows) == len(PAGES)
    for row in rows:
        assert " 200  yes " in row, row
        assert row.endswith(("PASS", "FAIL")), row
    results = json.loads(lines[-1])
    assert set(results) == PAGES  # the data browser included: no page left out as absent
    for name, r in results.items():
        assert r is not None, name
        assert r["status"] == 200 and r["gzip"] and r["samples"] == 2, (name, r)
        assert r["asset_bytes"] > 1000, name  # the page's CSS and script, counted once
        assert r["server_p95_ms"] is not None, name  # the Server-Timing header was there
    # The list page holds every source: more than the alerts page (one alert).
    assert results["sources list"]["page_bytes"] > results["alerts"]["page_bytes"]
