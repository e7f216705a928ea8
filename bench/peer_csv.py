"""Cases a, b and h: a CSV file into an empty SQLite / PostgreSQL target.

    a  CSV → SQLite       sqlite3 .import (native), factorysync, dlt (default row path and
                          Arrow + parquet), sling
    b  CSV → PostgreSQL   psql \\copy (native), factorysync, dlt (default row path and Arrow +
                          parquet loader through ADBC), sling, ingestr
    h  text-heavy wide CSV (24 columns, 19 of them free text with quoting, embedded
       delimiters, line breaks and empty values: bench/text_csv.py) into both stores,
       with the contenders of a and b

factorysync runs twice: as a one-off `factorysync source sync` process, and inside a
running service (`factorysync run`) asked over the API, where scheduled syncs run. With
--compare-with PATH[=LABEL] the factorysync of another source tree runs both ways too,
in the same alternating runs, and a table compares the two trees' ratios to the native
loader (bench/compare.py).

Every contender is a whole process, run alternately (--runs), from an empty target each
time; the target's rows are counted after every run.

    python bench/peer_csv.py [--cases a,b,h] [--rows 1000000] [--runs 3] [--peers auto]
                             [--compare-with PATH[=LABEL]]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PG_TABLE, Contender, PgDatabase, write_production
from compare import Tree, add_argument, others
from contenders import (
    FactorysyncService,
    FactorysyncStore,
    data_dir,
    file_source,
    psql_copy,
    side_by_side,
    sqlite_import,
)
from harness import add_arguments, run_case, session
from peers import PeerTools, Target, dlt_load, ingestr_load, sling_load
from text_csv import PG_TEXT_TABLE, write_text_heavy

TITLES = {
    "a": "CSV → SQLite, empty target",
    "b": "CSV → PostgreSQL, empty target",
    "h-sqlite": "Text-heavy wide CSV → SQLite, empty target",
    "h-postgresql": "Text-heavy wide CSV → PostgreSQL, empty target",
}


def factorysync(
    args: argparse.Namespace, work: Path, csv: Path, target: str, tag: str, trees: list[Tree]
) -> list[Contender]:
    """The one-off process and the running service, of this tree and of ``trees``."""

    def both(tree: Tree | None) -> list[Contender]:
        yaml = file_source(csv, "csv")
        return [
            FactorysyncStore(work, target, args.pg_url, yaml, tag=tag, tree=tree).contender(
                expected_rows=args.rows
            ),
            FactorysyncService(
                work, target, args.pg_url, yaml, tag=f"{tag}s", first_load=True, tree=tree
            ).contender("factorysync, running service", expected_rows=args.rows),
        ]

    return side_by_side(both, trees)


def csv_sqlite(
    args: argparse.Namespace,
    tools: PeerTools,
    work: Path,
    csv: Path,
    trees: list[Tree],
    case: str = "a",
) -> list[Contender]:
    rows = args.rows
    # dlt's reader is told the file's columns (case h: line breaks inside values too)
    layout = ["--layout", "text"] if case.startswith("h") else []
    source = ["--source", "csv", "--path", str(csv), *layout]
    return [
        sqlite_import(
            "sqlite3 .import (native)", work / f"native_{case}.db", csv, expected_rows=rows
        ),
        *factorysync(args, work, csv, "SQLite", case, trees),
        dlt_load(
            tools,
            "dlt default (rows)",
            Target(sqlite=work / f"dlt_rows_{case}.db"),
            work,
            source=source,
            expected_rows=rows,
        ),
        dlt_load(
            tools,
            "dlt Arrow + parquet",
            Target(sqlite=work / f"dlt_arrow_{case}.db"),
            work,
            source=source,
            path_kind="arrow",
            expected_rows=rows,
        ),
        sling_load(
            tools,
            "sling",
            Target(sqlite=work / f"sling_{case}.db"),
            work,
            stream=f"file://{csv}",
            expected_rows=rows,
        ),
    ]


def csv_postgresql(
    args: argparse.Namespace,
    tools: PeerTools,
    work: Path,
    csv: Path,
    trees: list[Tree],
    case: str = "b",
) -> list[Contender]:
    rows, tag = args.rows, work.name[-8:].lower().replace("-", "_")

    def db(name: str) -> PgDatabase:
        return PgDatabase(args.pg_url, f"fs_bench_{case}_{name}_{tag}")

    table = PG_TEXT_TABLE if case.startswith("h") else PG_TABLE
    # dlt's reader is told the file's columns (case h: line breaks inside values too)
    layout = ["--layout", "text"] if case.startswith("h") else []
    source = ["--source", "csv", "--path", str(csv), *layout]
    return [
        psql_copy("psql \\copy (native)", db("native"), csv, table, expected_rows=rows),
        *factorysync(args, work, csv, "PostgreSQL", case, trees),
        dlt_load(
            tools,
            "dlt default (rows)",
            Target(pg=db("dlt_rows")),
            work,
            source=source,
            expected_rows=rows,
        ),
        dlt_load(
            tools,
            "dlt Arrow + parquet (ADBC)",
            Target(pg=db("dlt_arrow")),
            work,
            source=source,
            path_kind="arrow",
            expected_rows=rows,
        ),
        sling_load(
            tools, "sling", Target(pg=db("sling")), work, stream=f"file://{csv}", expected_rows=rows
        ),
        ingestr_load(
            tools,
            "ingestr",
            Target(pg=db("ingestr")),
            work,
            source_uri=f"csv://{csv}",
            source_table="production",
            expected_rows=rows,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    parser.add_argument(
        "--cases", default="a,b,h", help="a (SQLite), b (PostgreSQL), h (text-heavy, both)"
    )
    add_argument(parser)
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - {"a", "b", "h"})
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}: a, b or h")
    trees = others(args)
    failed = 0
    with session(args, "csv") as (work, tools):
        runs: list[tuple[str, str, Path, int, str]] = []
        if {"a", "b"} & set(cases):
            csv = data_dir(work) / "production.csv"
            size = write_production(csv, args.rows, "csv")
            runs += [(c, n, csv, size, c) for c, n in (("a", "sqlite"), ("b", "postgresql"))]
        if "h" in cases:
            text = data_dir(work) / "production_text.csv"
            size = write_text_heavy(text, args.rows)
            runs += [("h", n, text, size, f"h-{n}") for n in ("sqlite", "postgresql")]
        for case, store, csv, size, title in runs:
            if case not in cases:
                continue
            builder = csv_sqlite if store == "sqlite" else csv_postgresql
            tag = case if case != "h" else f"h{store[0]}"
            failed |= run_case(
                f"{case}-{'text' if case == 'h' else 'csv'}-{store}",
                f"{TITLES[title]} ({args.rows:,} rows, {size / 1e6:.1f} MB)",
                builder(args, tools, work, csv, trees, tag),
                args,
                tools,
            )
    return failed


if __name__ == "__main__":
    sys.exit(main())
