"""Case f: incremental sync of 10,000 new rows on top of a table already loaded.

The source is a PostgreSQL table of --rows rows; each incremental contender's target is
first loaded from it (not timed), then --new rows (ids after the last) are added to the
source and the timed run picks them up:

    factorysync full load     the reference: a fresh store's first sync of the table
    factorysync incremental   an incremental source (cursor_field id): must insert exactly
                              the new rows
    … running service         the same sync inside a running `factorysync run`, asked for
                              over the API (curl, or bench/trigger_sync.py), where
                              scheduled syncs run in production
    COPY of the new rows      `psql \\copy (SELECT … WHERE id > last) | psql \\copy` (native)
    dlt                       sql_table(incremental=dlt.sources.incremental("id")),
                              connectorx + parquet, append
    sling                     --mode incremental --primary-key id --update-key id
    floor: …                  what no one-off Python process here goes below: the
                              interpreter importing psycopg, and bench/floor_incremental.py
                              (the run's database work with psycopg alone)

ingestr is left out: its `append` keeps no cursor of its own (the caller passes the
interval), so run again it re-appends every row. The done-when target is factorysync's
incremental run ≤ 5 % of its full first load (the × factorysync column).

    python bench/peer_incremental.py [--rows 1000000] [--new 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import COLUMNS, PG_TABLE, Contender, PgDatabase, load_pg_from_csv, write_production
from contenders import FactorysyncService, FactorysyncStore, database_source, expect_counts
from harness import add_arguments, run_case, session
from peer_pg_table import create_source
from peers import PeerTools, Target, dlt_load, sling_load


class GrowingSource:
    """The source table, put back to its first rows, then given the new rows."""

    def __init__(self, db: PgDatabase, rows: int, new_csv: Path) -> None:
        self.db, self.rows, self.new_csv = db, rows, new_csv

    def reset(self, run: int = 0) -> None:
        self.db.execute(f"DELETE FROM production WHERE id > {self.rows}")

    def grow(self, run: int = 0) -> None:
        load_pg_from_csv(self.db, self.new_csv, create=False)


def native_new_rows(
    name: str, source: GrowingSource, target: PgDatabase, **extra: object
) -> Contender:
    """The native reference: the target holds the first rows; copy only the new ones."""
    psql = shutil.which("psql") or "psql"

    def command(run: int) -> list[list[str]]:
        query = f"SELECT * FROM production WHERE id > {source.rows}"
        return [
            [
                psql,
                source.db.url,
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                f"\\copy ({query}) TO STDOUT WITH (FORMAT csv)",
            ],
            [
                psql,
                target.url,
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "\\copy production FROM STDIN WITH (FORMAT csv)",
            ],
        ]

    return new_rows_contender(name, source, target, command, native=True, **extra)


def floor_contenders(source: GrowingSource, target: PgDatabase, **same: object) -> list[Contender]:
    """What a one-off Python process cannot go below here: the interpreter with the
    PostgreSQL driver imported (start-up only: no rows move), and
    bench/floor_incremental.py, the run's database work with psycopg alone."""
    script = str(Path(__file__).resolve().parent / "floor_incremental.py")
    group, new = same.get("group", ""), same.get("rows_processed")
    return [
        Contender(
            "floor: python + import psycopg",
            "PostgreSQL",
            False,
            lambda run: None,
            lambda run: [[sys.executable, "-c", "import psycopg"]],
            lambda run: 0,
            group=str(group),
            rows_processed=0,
            floor=True,
        ),
        new_rows_contender(
            "floor: psycopg-only incremental script",
            source,
            target,
            lambda run: [[sys.executable, script, source.db.url, target.url, ",".join(COLUMNS)]],
            floor=True,
            check=lambda run, out: (
                None if out.strip() == str(new) else f"merged {out.strip()!r}, expected {new}"
            ),
            **same,
        ),
    ]


def new_rows_contender(
    name: str,
    source: GrowingSource,
    target: PgDatabase,
    command: Callable[[int], list[list[str]]],
    *,
    native: bool = False,
    floor: bool = False,
    **extra: object,
) -> Contender:
    """The target holds the first rows (copied with psql, not timed); ``command`` brings
    the new ones over."""
    psql = shutil.which("psql") or "psql"

    def prepare(run: int) -> None:
        source.reset()
        target.create()
        target.execute(PG_TABLE)
        out = [psql, source.db.url, "-c", "\\copy production TO STDOUT WITH (FORMAT csv)"]
        into = [psql, target.url, "-c", "\\copy production FROM STDIN WITH (FORMAT csv)"]
        dump = subprocess.run(out, check=True, capture_output=True)
        subprocess.run(into, input=dump.stdout, check=True, capture_output=True)
        source.grow()

    return Contender(
        name,
        "PostgreSQL",
        native,
        prepare,
        command,
        lambda run: target.count(),
        cleanup=lambda run: target.drop(),
        floor=floor,
        **extra,  # type: ignore[arg-type]
    )


def incremental_contenders(
    args: argparse.Namespace, tools: PeerTools, work: Path, source: GrowingSource, tag: str
) -> list[Contender]:
    total, new = args.rows + args.new, args.new
    group = f"PostgreSQL table → PostgreSQL, +{new:,} rows"
    same = {"group": group, "rows_processed": new, "expected_rows": total}

    def target(name: str) -> Target:
        return Target(pg=PgDatabase(args.pg_url, f"fs_bench_f_{name}_{tag}"))

    declaration = database_source(args.pg_url, source.db.name, incremental=True)
    dlt_source = ["--source", "postgres", "--source-url", source.db.url]
    return [
        FactorysyncStore(
            work, "PostgreSQL", args.pg_url, declaration, tag="ff", before_warm=source.reset
        ).contender("factorysync full load (reference)", group=group, expected_rows=args.rows),
        native_new_rows(
            "COPY of the new rows (native)",
            source,
            PgDatabase(args.pg_url, f"fs_bench_f_native_{tag}"),
            **same,
        ),
        *floor_contenders(source, PgDatabase(args.pg_url, f"fs_bench_f_floor_{tag}"), **same),
        FactorysyncStore(
            work,
            "PostgreSQL",
            args.pg_url,
            declaration,
            tag="fi",
            warm_syncs=1,
            before_warm=source.reset,
            before_timed=source.grow,
        ).contender(
            "factorysync incremental",
            check=expect_counts(inserted=new, updated=0, deleted=0),
            **same,
        ),
        FactorysyncService(
            work,
            "PostgreSQL",
            args.pg_url,
            declaration,
            tag="fs",
            before_warm=source.reset,
            before_timed=source.grow,
        ).contender(
            "factorysync incremental, running service",
            check=expect_counts(inserted=new, updated=0, deleted=0),
            **same,
        ),
        dlt_load(
            tools,
            "dlt incremental, connectorx + parquet",
            target("dlt"),
            work,
            source=dlt_source,
            path_kind="arrow",
            disposition="append",
            incremental=True,
            warm=1,
            before_warm=source.reset,
            before_timed=source.grow,
            **same,
        ),
        sling_load(
            tools,
            "sling incremental, update key",
            target("sling"),
            work,
            stream="public.production",
            source_url=source.db.url,
            mode="incremental",
            primary_key="id",
            update_key="id",
            warm=1,
            before_warm=source.reset,
            before_timed=source.grow,
            **same,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    parser.add_argument("--new", type=int, default=10_000, help="rows added before the timed run")
    args = parser.parse_args(argv)
    with session(args, "incr") as (work, tools):
        tag = work.name[-8:].lower().replace("-", "_")
        db = create_source(args, work, tag, args.rows)
        new_csv = work / "new.csv"
        write_production(new_csv, args.new, "csv", seed=7, first_id=args.rows + 1)
        try:
            return run_case(
                "f-incremental",
                f"Incremental: {args.new:,} new rows on top of {args.rows:,}",
                incremental_contenders(
                    args, tools, work, GrowingSource(db, args.rows, new_csv), tag
                ),
                args,
                tools,
            )
        finally:
            db.drop()


if __name__ == "__main__":
    sys.exit(main())
