"""Case d: a production table on PostgreSQL into an empty PostgreSQL target.

Contenders: `psql \\copy … TO STDOUT | psql \\copy … FROM STDIN` (native), factorysync
(a database source into a PostgreSQL store, as a one-off `factorysync source sync` and
inside a running service asked over the API), dlt ``sql_table`` on its fastest path
(connectorx backend, parquet loader through ADBC) and on its default (SQLAlchemy backend,
insert statements), sling and ingestr. The source table holds the same deterministic
rows as the CSV cases; every run starts from an empty target. With --compare-with
PATH[=LABEL] the factorysync of another source tree runs both ways too, in the same
alternating runs, and a table compares the two trees' ratios to the native loader
(bench/compare.py).

    python bench/peer_pg_table.py [--rows 1000000] [--runs 3] [--peers auto]
                                  [--compare-with PATH[=LABEL]]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Contender, PgDatabase, load_pg_from_csv, write_production
from compare import Tree, add_argument, others
from contenders import (
    FactorysyncService,
    FactorysyncStore,
    database_source,
    pg_copy_pipe,
    side_by_side,
)
from harness import add_arguments, run_case, session
from peers import PeerTools, Target, dlt_load, ingestr_load, sling_load


def table_contenders(
    args: argparse.Namespace,
    tools: PeerTools,
    work: Path,
    source: PgDatabase,
    tag: str,
    trees: list[Tree],
) -> list[Contender]:
    rows = args.rows
    yaml = database_source(args.pg_url, source.name)

    def factorysync(tree: Tree | None) -> list[Contender]:
        return [
            FactorysyncStore(work, "PostgreSQL", args.pg_url, yaml, tag="d", tree=tree).contender(
                expected_rows=rows
            ),
            FactorysyncService(
                work, "PostgreSQL", args.pg_url, yaml, tag="ds", first_load=True, tree=tree
            ).contender("factorysync, running service", expected_rows=rows),
        ]

    def target(name: str) -> Target:
        return Target(pg=PgDatabase(args.pg_url, f"fs_bench_d_{name}_{tag}"))

    dlt_source = ["--source", "postgres", "--source-url", source.url]
    return [
        pg_copy_pipe(
            "psql \\copy | psql \\copy (native)",
            source,
            PgDatabase(args.pg_url, f"fs_bench_d_native_{tag}"),
            expected_rows=rows,
        ),
        *side_by_side(factorysync, trees),
        dlt_load(
            tools,
            "dlt sql_table connectorx + parquet",
            target("dlt_cx"),
            work,
            source=dlt_source,
            path_kind="arrow",
            expected_rows=rows,
        ),
        dlt_load(
            tools,
            "dlt sql_table default (SQLAlchemy)",
            target("dlt_sa"),
            work,
            source=dlt_source,
            expected_rows=rows,
        ),
        sling_load(
            tools,
            "sling",
            target("sling"),
            work,
            stream="public.production",
            source_url=source.url,
            expected_rows=rows,
        ),
        ingestr_load(
            tools,
            "ingestr",
            target("ingestr"),
            work,
            source_uri=source.url,
            source_table="public.production",
            expected_rows=rows,
        ),
    ]


def create_source(args: argparse.Namespace, work: Path, tag: str, rows: int) -> PgDatabase:
    """A database whose ``production`` table holds ``rows`` deterministic rows."""
    source = PgDatabase(args.pg_url, f"fs_bench_src_{tag}")
    source.create()
    csv = work / "source.csv"
    write_production(csv, rows, "csv")
    load_pg_from_csv(source, csv)
    csv.unlink()
    return source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    add_argument(parser)
    args = parser.parse_args(argv)
    trees = others(args)
    with session(args, "pgtable") as (work, tools):
        tag = work.name[-8:].lower().replace("-", "_")
        source = create_source(args, work, tag, args.rows)
        try:
            return run_case(
                "d-pg-table",
                f"PostgreSQL table → PostgreSQL, empty target ({args.rows:,} rows)",
                table_contenders(args, tools, work, source, tag, trees),
                args,
                tools,
            )
        finally:
            source.drop()


if __name__ == "__main__":
    sys.exit(main())
