"""The data API load benchmark keeps working (tiny mode; timings are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import private_temp
from tests.conftest import PG_ADMIN_URL, need_service

# A benchmark in its tiny mode: it runs in the slow group, beside the rest (scripts/test.sh).
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "api_load.py"


def _stores() -> str:
    import psycopg

    url = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        need_service("PostgreSQL", f"{url}: {exc}")
    return "sqlite,postgresql"


def tiny(bench: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """The API benchmark ``bench`` in its tiny mode on both stores, with ``extra`` options."""
    args = ["--stores", _stores(), "--clients", "4", "--duration", "1", "--warmup", "0.3"]
    args += [*extra, "--size-mb", "0.2", "--workers", "1", "--json"]
    return subprocess.run(
        [sys.executable, str(bench), *args],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
        env=private_temp(tmp_path),
    )


@pytest.mark.postgres
def test_api_bench_tiny(tmp_path: Path) -> None:
    proc = tiny(BENCH, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert "clients" in lines[0] and lines[1].split()[:3] == ["store", "table", "clients"]
    results = json.loads(lines[-1])
    assert [r["store"] for r in results] == ["sqlite", "postgresql"]
    assert all(r["requests"] > 0 and r["errors"] == 0 and r["p99_ms"] > 0 for r in results)


MIXED = BENCH.with_name("api_mixed.py")


@pytest.mark.postgres
def test_api_mixed_bench_tiny(tmp_path: Path) -> None:
    """Every endpoint of the mixed read load answers on both stores, in both modes."""
    proc = tiny(MIXED, tmp_path, "--think-ms", "20")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert any(line.startswith("target (paced): p99 <= 100 ms") for line in lines), lines
    results = json.loads(lines[-1])
    seen = {(r["store"], r["mode"], r["endpoint"]) for r in results}
    for store in ("sqlite", "postgresql"):
        for mode in ("paced", "closed"):
            for endpoint in ("sources", "history", "status", "runs", "data"):
                assert (store, mode, endpoint) in seen
    for r in results:
        assert r["requests"] > 0 and r["errors"] == 0, r
        assert r["p50_ms"] <= r["p99_ms"] <= r["max_ms"], r
    data = [r for r in results if r["endpoint"] == "data"]
    # Filters, sorts and offsets are drawn at random: most data pages miss the cache.
    assert all(r["data_miss_share"] > 0 for r in data), data
