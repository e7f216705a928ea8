"""CSV load benchmark: a production-data CSV into a fresh store, beside the native loaders.

Contenders, run alternately (--runs times each), each timed as a whole process (start-up
and imports included) with its peak resident memory:

    sqlite3 .import          the CSV into a pre-created, typed SQLite table
    factorysync → SQLite     `factorysync source sync` of a CSV source into a SQLite store
    psql \\copy               the CSV into a pre-created, typed PostgreSQL table
    factorysync → PostgreSQL the same sync into a PostgreSQL store

Every run starts from an empty target (store set-up is not timed). The PostgreSQL server's
own CPU and memory are not in a client process's figures.

    python bench/load_csv.py [--rows 1000000] [--runs 3] [--pg-url URL] [--timeout 900]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: F401 - re-exported for the other load benchmarks
    COLUMNS,
    DEFAULT_PG,
    PG_TABLE,
    SQLITE_TABLE,
    Contender,
    Measurement,
    PgDatabase,
    measure,
    pg_admin,
    run_alternately,
    sqlite_count,
    write_production_csv,
)
from contenders import CSV_SOURCE, FactorysyncStore, data_dir, psql_copy, sqlite_import


def run_all(contenders: list[Contender], runs: int, timeout: float) -> None:
    run_alternately(contenders, runs, timeout, max_slow_runs=runs)


def print_table(title: str, contenders: list[Contender], rows: int) -> None:
    native = {c.target: c for c in contenders if c.native and c.results}
    print(title)
    header = (
        f"{'contender':<31} {'target':<11} {'wall s median (min–max)':>24} {'rows/s':>11} "
        f"{'peak RSS MB':>12} {'× native':>9}"
    )
    print(header)
    print("-" * len(header))
    for c in contenders:
        if not c.results:
            print(f"{c.name:<31} {c.target:<11} {'failed: ' + (c.failure or 'no run'):>24}")
            continue
        walls = [m.wall_s for m in c.results]
        median = statistics.median(walls)
        spread = f"{median:.2f} ({min(walls):.2f}–{max(walls):.2f})"
        peak = max(m.peak_rss_mb for m in c.results)
        base = native.get(c.target)
        ratio = median / statistics.median(m.wall_s for m in base.results) if base else None
        print(
            f"{c.name:<31} {c.target:<11} {spread:>24} {rows / median:>11,.0f} {peak:>12.0f} "
            f"{'' if ratio is None else f'{ratio:.2f}':>9}"
        )
    if any(c.failure for c in contenders):
        print(
            "failures: "
            + "; ".join(f"{c.name} → {c.target}: {c.failure}" for c in contenders if c.failure)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-url", default=os.environ.get("FACTORYSYNC_BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fs-bench-csv-"))
    workdir.mkdir(parents=True, exist_ok=True)
    csv_path = data_dir(workdir) / "production.csv"
    size = write_production_csv(csv_path, args.rows)
    bench_db = f"fs_bench_native_{os.getpid()}"
    pg_admin(
        args.pg_url,
        f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)',
        f'CREATE DATABASE "{bench_db}"',
    )
    native_pg = args.pg_url.rsplit("/", 1)[0] + "/" + bench_db
    try:
        contenders = csv_contenders(workdir, csv_path, args.pg_url, native_pg)
        run_all(contenders, args.runs, args.timeout)
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        print_table(
            f"load_csv: {args.rows:,} rows ({size / 1e6:.1f} MB CSV) into an empty target; "
            f"{args.runs} alternating run(s) each; {os.cpu_count()} CPUs; {when}\n"
            "wall = whole process (start-up included); PostgreSQL server CPU/memory not "
            "included",
            contenders,
            args.rows,
        )
    finally:
        pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(c.results for c in contenders) else 1


def csv_contenders(workdir: Path, csv_path: Path, pg_url: str, native_pg: str) -> list[Contender]:
    native_db = PgDatabase(pg_url, native_pg.rsplit("/", 1)[1])
    return [
        sqlite_import("sqlite3 .import (native)", workdir / "native.db", csv_path),
        FactorysyncStore(workdir, "SQLite", pg_url, CSV_SOURCE.format(path=csv_path)).contender(),
        psql_copy("psql \\copy (native)", native_db, csv_path),
        FactorysyncStore(
            workdir, "PostgreSQL", pg_url, CSV_SOURCE.format(path=csv_path)
        ).contender(),
    ]


if __name__ == "__main__":
    sys.exit(main())
