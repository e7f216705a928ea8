"""The plant -> central forwarding benchmark keeps working (tiny mode; timings are not
asserted, what arrived at the central store is)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import _pg_url, private_temp
from tests.conftest import need_service
from tests.forward.central_helpers import NATS_SERVER, require_nats_client

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "forward_central.py"


def test_forward_central_bench_tiny(tmp_path: Path) -> None:
    require_nats_client()
    if not Path(NATS_SERVER).exists():
        need_service("nats-server", f"{NATS_SERVER} not found")
    numbers = tmp_path / "numbers.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--rows",
            "5000",
            "--steady-s",
            "5",
            "--changes-per-min",
            "1200",
            "--pg-url",
            _pg_url(),
            "--json",
            str(numbers),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={
            **private_temp(tmp_path),
            "NATS_SERVER": NATS_SERVER,
            "FACTORYSYNC_BENCH_CONVERGE_S": "300",  # fail well before the timeout
        },
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    shown = {}
    for line in proc.stdout.splitlines():
        name, _, value = line.rpartition("  ")
        if name.strip():
            shown[name.strip()] = value.strip()
    assert shown["first load: plant rows"] == "5,000"
    assert shown["first load: central rows"] == "5,000"
    assert shown["first load: duplicated"] == "0"
    assert shown["steady: lost"] == "0"
    assert shown["steady: duplicated"] == "0"
    assert shown["steady: central rows"] == shown["steady: plant rows"]
    assert shown["steady: same checksum"] == "yes"

    result = json.loads(numbers.read_text())
    first, steady = result["first_load"], result["steady"]
    assert first["central_rows"] == first["plant_rows"] == 5000
    assert first["to_central_after_sync_s"] < first["to_central_from_start_s"]
    assert 0 < steady["changes"] <= 100  # 20 a second for 5 s (fewer when flushes lag)
    assert steady["lost"] == steady["duplicated"] == 0
    assert 0 < steady["lag_p50_s"] <= steady["lag_p99_s"] <= steady["lag_max_s"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith("fs-central-bench-")]
