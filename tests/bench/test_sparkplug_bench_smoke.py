"""The Sparkplug B ingest benchmark keeps working (tiny mode; timings are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import private_temp
from tests.realtime.conftest import BROKER, reachable

# A benchmark in its tiny mode: it runs in the slow group, beside the rest (scripts/test.sh).
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "sparkplug_ingest.py"


def test_sparkplug_bench_tiny(tmp_path: Path) -> None:
    pytest.importorskip("paho.mqtt.client")
    pytest.importorskip("factorysync.connectors.sparkplug_b_pb2")
    if not reachable(*BROKER):
        from tests.conftest import need_service

        need_service("Mosquitto", f"{BROKER[0]}:{BROKER[1]}")
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            *("--rate", "200", "--duration", "1", "--store", "sqlite"),
            *("--nodes", "1", "--devices", "2", "--metrics", "5"),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
        env=private_temp(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("sqlite"))
    written, _, _, _, lost, quarantined, gaps, _ = line.split()[1:]
    assert (written, lost, quarantined, gaps) == ("200", "0", "0", "0")
