"""Start-up of a one-off command: ``factorysync source sync ID`` of an unchanged small
source, as a whole process, wall time.

Makes a store in a temporary folder with a 2-row CSV file source, syncs it once, then
runs ``factorysync source sync small`` ``--runs`` times (every one finds the source
unchanged) and prints min / median / max; for reference the same for ``factorysync
version`` and ``python -c pass``. The target (issue #25): a median of at most 0.15 s.

    python bench/startup.py [--runs 20] [--store sqlite|postgresql] [--pg-url URL] [--json PATH]

``FACTORYSYNC_FAST_PATH=off`` in the environment measures the normal path instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_PG, PgDatabase

VENV_BIN = Path(sys.executable).parent
DECLARATION = """\
sources:
  - source_id: small
    name: Small
    source_type: csv
    connections:
      - connection_name: primary
        connection_type: file
        connection_config: {file_path: small.csv, file_type: csv}
    mappings:
      - target_table: small_t
        sync_strategy: full
        mapping_config: {primary_key: [id]}
"""
TARGET_S = 0.15


def factorysync() -> str:
    found = VENV_BIN / "factorysync"
    return str(found) if found.exists() else shutil.which("factorysync") or "factorysync"


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of one whole process; raises when it fails."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return wall


def prepare(workdir: Path, env: dict[str, str]) -> None:
    (workdir / "data").mkdir(parents=True)
    (workdir / "data" / "small.csv").write_text("id,qty\n1,5\n2,7\n")
    (workdir / "sources.yaml").write_text(DECLARATION)
    for argv in (["init"], ["apply", "sources.yaml"], ["source", "sync", "small"]):
        run([factorysync(), *argv], workdir, env)


def series(argv: list[str], runs: int, cwd: Path, env: dict[str, str]) -> dict[str, float]:
    times = [run(argv, cwd, env) for _ in range(runs)]
    return {
        "min_s": round(min(times), 4),
        "median_s": round(statistics.median(times), 4),
        "max_s": round(max(times), 4),
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="admin URL of the server")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="fs-startup-"))
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FACTORYSYNC_")}
    if "FACTORYSYNC_FAST_PATH" in os.environ:
        env["FACTORYSYNC_FAST_PATH"] = os.environ["FACTORYSYNC_FAST_PATH"]
    database = None
    if args.store == "postgresql":
        database = PgDatabase(args.pg_url, f"fs_startup_{uuid.uuid4().hex[:8]}")
        database.create()
        env["FACTORYSYNC_DATABASE_URL"] = database.url
    try:
        prepare(workdir, env)
        cases = {
            "factorysync source sync small": [factorysync(), "source", "sync", "small"],
            "factorysync version": [factorysync(), "version"],
            "python -c pass": [sys.executable, "-c", "pass"],
        }
        results = {name: series(argv, args.runs, workdir, env) for name, argv in cases.items()}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if database is not None:
            database.drop()

    print(f"start-up, {args.store} store, {args.runs} runs each (wall seconds)")
    print(f"{'command':<32} {'min':>8} {'median':>8} {'max':>8}")
    for name, r in results.items():
        print(f"{name:<32} {r['min_s']:>8.3f} {r['median_s']:>8.3f} {r['max_s']:>8.3f}")
    sync = results["factorysync source sync small"]["median_s"]
    verdict = "met" if sync <= TARGET_S else "not met"
    print(f"target: source sync median <= {TARGET_S} s: {verdict}")
    if args.json is not None:
        report = {"store": args.store, "target_s": TARGET_S, "results": results}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
