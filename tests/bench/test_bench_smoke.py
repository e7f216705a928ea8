"""The load benchmarks keep working (tiny mode; timings are not asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL, need_service

# A benchmark in its tiny mode: it runs in the slow group, beside the rest (scripts/test.sh).
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench"
CONTENDERS = ("(native)", "factorysync source sync")


def private_temp(tmp_path: Path) -> dict[str, str]:
    """The environment for a benchmark run: its temporary files under ``tmp_path``."""
    return {**os.environ, "TMPDIR": str(tmp_path)}


def unique_workdir(tmp_path: Path) -> Path:
    """A work folder whose name ends in 8 characters of its own: the benchmarks name
    their PostgreSQL databases after it, on a server other test runs share."""
    return tmp_path / f"work-{uuid.uuid4().hex[:8]}"


def _pg_url() -> str:
    import psycopg

    url = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        need_service("PostgreSQL", f"{url}: {exc}")
    return url


@pytest.mark.postgres
@pytest.mark.parametrize("script", ["load_csv.py", "load_pg_table.py"])
def test_load_benchmark_tiny(script: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / script),
            "--rows",
            "2000",
            "--runs",
            "1",
            "--pg-url",
            _pg_url(),
            "--workdir",
            str(unique_workdir(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
        env=private_temp(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = proc.stdout
    assert "2,000" in table and "peak RSS MB" in table and "× native" in table
    for target in ("SQLite", "PostgreSQL"):
        rows = [line for line in table.splitlines() if line.split()[-6:-5] == [target]]
        assert len(rows) == 2 and all(any(c in r for c in CONTENDERS) for r in rows), table
    assert "2,000 rows" in proc.stderr  # each run's target holds every row
