"""The MQTT realtime benchmark keeps working (tiny mode; timings are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import private_temp
from tests.realtime.conftest import BROKER, reachable

# A benchmark in its tiny mode: it runs in the slow group, beside the rest (scripts/test.sh).
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "mqtt_realtime.py"


def test_mqtt_bench_tiny(tmp_path: Path) -> None:
    pytest.importorskip("paho.mqtt.client")
    if not reachable(*BROKER):
        from tests.conftest import need_service

        need_service("Mosquitto", f"{BROKER[0]}:{BROKER[1]}")
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--rate", "200", "--duration", "1", "--stores", "sqlite"],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
        env=private_temp(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert "factorysync → sqlite" in proc.stdout
    assert "mosquitto_sub (broker only)" in proc.stdout
    line = next(x for x in proc.stdout.splitlines() if x.startswith("factorysync → sqlite"))
    assert line.split()[3] == "200"  # every message written
    assert line.split()[-1] == "0"  # none lost
