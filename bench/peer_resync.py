"""Case e: re-sync of the unchanged rows (the upsert path: nothing inserted, updated or deleted).

Each contender's target is first loaded with the CSV's rows (not timed); the timed run
loads the same unchanged file again in the tool's merge/upsert mode:

    factorysync   the second `source sync` of the same full source (must report 0 changes)
    dlt           Arrow + parquet with write_disposition="merge", primary key id
    sling         --mode incremental --primary-key id (no update key: a full upsert)
    ingestr       --incremental-strategy merge --primary-key id (PostgreSQL)

The native reference is the native loader's time for the same rows into an empty table
(`psql \\copy`, `sqlite3 .import`); the done-when target is factorysync ≤ 3× of it.
With --compare-with PATH[=LABEL] the factorysync of another source tree re-syncs too, in
the same alternating runs, and a table compares the two trees' ratios to the native
loader (bench/compare.py).

    python bench/peer_resync.py [--rows 1000000] [--runs 3] [--targets SQLite,PostgreSQL]
                                [--compare-with PATH[=LABEL]]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Contender, PgDatabase, write_production
from compare import Tree, add_argument, others
from contenders import (
    FactorysyncStore,
    data_dir,
    expect_counts,
    file_source,
    psql_copy,
    side_by_side,
    sqlite_import,
)
from harness import add_arguments, run_case, session
from peers import PeerTools, Target, dlt_load, ingestr_load, sling_load


def resync_contenders(
    target: str,
    args: argparse.Namespace,
    tools: PeerTools,
    work: Path,
    csv: Path,
    trees: list[Tree],
) -> list[Contender]:
    rows, group = args.rows, f"CSV → {target}, unchanged re-sync"
    suffix = work.name[-8:].lower().replace("-", "_")
    sqlite = target == "SQLite"

    def where(name: str) -> Target:
        if sqlite:
            return Target(sqlite=work / f"e_{name}.db")
        return Target(pg=PgDatabase(args.pg_url, f"fs_bench_e_{name}_{suffix}"))

    same = {"expected_rows": rows, "group": group}
    if sqlite:
        native = sqlite_import(
            "sqlite3 .import, empty table (native)", work / "e_native.db", csv, **same
        )
    else:
        native = psql_copy(
            "psql \\copy, empty table (native)",
            PgDatabase(args.pg_url, f"fs_bench_e_native_{suffix}"),
            csv,
            **same,
        )

    def factorysync(tree: Tree | None) -> list[Contender]:
        store = FactorysyncStore(
            work,
            target,
            args.pg_url,
            file_source(csv, "csv"),
            tag=f"e{target[:2].lower()}",
            warm_syncs=1,
            tree=tree,
        )
        unchanged = expect_counts(inserted=0, updated=0, deleted=0)
        return [store.contender("factorysync re-sync", check=unchanged, **same)]

    found = [
        native,
        *side_by_side(factorysync, trees),
        dlt_load(
            tools,
            "dlt Arrow + parquet, merge",
            where("dlt"),
            work,
            source=["--source", "csv", "--path", str(csv)],
            path_kind="arrow",
            disposition="merge",
            warm=1,
            **same,
        ),
        sling_load(
            tools,
            "sling incremental, primary key",
            where("sling"),
            work,
            stream=f"file://{csv}",
            mode="incremental",
            primary_key="id",
            warm=1,
            **same,
        ),
    ]
    if not sqlite:
        found.append(
            ingestr_load(
                tools,
                "ingestr merge",
                where("ingestr"),
                work,
                source_uri=f"csv://{csv}",
                source_table="production",
                strategy="merge",
                primary_key="id",
                warm=1,
                **same,
            )
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    parser.add_argument("--targets", default="SQLite,PostgreSQL")
    add_argument(parser)
    args = parser.parse_args(argv)
    trees = others(args)
    with session(args, "resync") as (work, tools):
        csv = data_dir(work) / "production.csv"
        write_production(csv, args.rows, "csv")
        contenders: list[Contender] = []
        for target in [t.strip() for t in args.targets.split(",") if t.strip()]:
            contenders += resync_contenders(target, args, tools, work, csv, trees)
        return run_case(
            "e-resync",
            f"Re-sync of {args.rows:,} unchanged CSV rows (merge/upsert modes)",
            contenders,
            args,
            tools,
        )


if __name__ == "__main__":
    sys.exit(main())
