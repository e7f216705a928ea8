"""Database source benchmark: a production table on PostgreSQL into a fresh store.

Contenders, run alternately (--runs times each), each timed as a whole process (start-up
included) with its peak resident memory:

    psql \\copy | sqlite3 .import     the table out as CSV, into a typed SQLite table
    factorysync → SQLite              `factorysync source sync` of a database source
    psql \\copy | psql \\copy          the table out and into another PostgreSQL database
    factorysync → PostgreSQL          the same sync into a PostgreSQL store

The source table holds the same deterministic rows as bench/load_csv.py. Every run starts
from an empty target (set-up is not timed). The PostgreSQL server's own CPU and memory are
not in a client process's figures.

    python bench/load_pg_table.py [--rows 1000000] [--runs 3] [--pg-url URL] [--timeout 900]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PgDatabase, load_pg_from_csv
from contenders import database_source
from load_csv import (
    DEFAULT_PG,
    PG_TABLE,
    SQLITE_TABLE,
    Contender,
    FactorysyncStore,
    pg_admin,
    print_table,
    run_all,
    sqlite_count,
    write_production_csv,
)


def load_source_table(pg_url: str, database: str, csv_path: Path) -> None:
    db = PgDatabase(pg_url, database)
    db.create()
    load_pg_from_csv(db, csv_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-url", default=os.environ.get("FACTORYSYNC_BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fs-bench-pg-"))
    workdir.mkdir(parents=True, exist_ok=True)
    source_db = f"fs_bench_src_{os.getpid()}"
    target_db = f"fs_bench_native_{os.getpid()}"
    source_url = args.pg_url.rsplit("/", 1)[0] + "/" + source_db
    native_pg = args.pg_url.rsplit("/", 1)[0] + "/" + target_db
    csv_path = workdir / "production.csv"
    write_production_csv(csv_path, args.rows)
    load_source_table(args.pg_url, source_db, csv_path)
    csv_path.unlink()
    pg_admin(
        args.pg_url,
        f'DROP DATABASE IF EXISTS "{target_db}" WITH (FORCE)',
        f'CREATE DATABASE "{target_db}"',
    )
    declaration = database_source(args.pg_url, source_db)
    psql = shutil.which("psql") or "psql"
    sqlite3 = shutil.which("sqlite3") or "sqlite3"
    sqlite_db = workdir / "native.db"
    copy_out = [
        psql,
        source_url,
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "\\copy production TO STDOUT WITH (FORMAT csv)",
    ]

    def sqlite_prepare(run: int) -> None:
        sqlite_db.unlink(missing_ok=True)
        subprocess.run([sqlite3, str(sqlite_db), SQLITE_TABLE], check=True)

    def pg_prepare(run: int) -> None:
        pg_admin(native_pg, "DROP TABLE IF EXISTS production", PG_TABLE)

    def pg_count(run: int) -> int:
        row = pg_admin(native_pg, "SELECT count(*) FROM production")
        return int(row[0]) if row else 0

    contenders = [
        Contender(
            "psql \\copy | sqlite3 (native)",
            "SQLite",
            True,
            sqlite_prepare,
            lambda run: [
                copy_out,
                [sqlite3, str(sqlite_db), ".import --csv /dev/stdin production"],
            ],
            lambda run: sqlite_count(sqlite_db),
        ),
        FactorysyncStore(workdir, "SQLite", args.pg_url, declaration).contender(),
        Contender(
            "psql \\copy | psql (native)",
            "PostgreSQL",
            True,
            pg_prepare,
            lambda run: [
                copy_out,
                [
                    psql,
                    native_pg,
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    "\\copy production FROM STDIN WITH (FORMAT csv)",
                ],
            ],
            pg_count,
        ),
        FactorysyncStore(workdir, "PostgreSQL", args.pg_url, declaration).contender(),
    ]
    for c in contenders:
        if c.native and not (shutil.which("psql") and shutil.which("sqlite3")):
            c.failure = "psql or sqlite3 not installed"
    try:
        run_all(contenders, args.runs, args.timeout)
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        print_table(
            f"load_pg_table: {args.rows:,}-row PostgreSQL table into an empty target; "
            f"{args.runs} alternating run(s) each; {os.cpu_count()} CPUs; {when}\n"
            "wall = whole process (start-up included); PostgreSQL server CPU/memory not "
            "included",
            contenders,
            args.rows,
        )
    finally:
        for database in (source_db, target_db):
            pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(c.results for c in contenders) else 1


if __name__ == "__main__":
    sys.exit(main())
