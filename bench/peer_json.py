"""Case c: NDJSON and JSON-array files into empty SQLite and PostgreSQL targets.

Contenders: factorysync, dlt's default row path (json.loads per record), dlt's fastest
path (Arrow: pyarrow's NDJSON reader; for a JSON array the document parsed once and cut
into Arrow tables) with the parquet loader, and sling for NDJSON (``flatten: true``; sling
is left out for JSON arrays, which it does not stream). There is no native loader for
JSON; ratios are to factorysync.

    python bench/peer_json.py [--rows 1000000] [--runs 3] [--formats ndjson,json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Contender, PgDatabase, write_production
from contenders import FactorysyncStore, data_dir, file_source
from harness import add_arguments, run_case, session
from peers import PeerTools, Target, dlt_load, sling_load

LABEL = {"ndjson": "NDJSON", "json": "JSON array"}


def contenders_for(
    fmt: str, target: str, args: argparse.Namespace, tools: PeerTools, work: Path, path: Path
) -> list[Contender]:
    rows, group = args.rows, f"{LABEL[fmt]} → {target}"
    tag = f"c{fmt[:2]}{target[:2].lower()}"

    def where(name: str) -> Target:
        if target == "SQLite":
            return Target(sqlite=work / f"{tag}_{name}.db")
        suffix = work.name[-8:].lower().replace("-", "_")
        return Target(pg=PgDatabase(args.pg_url, f"fs_bench_{tag}_{name}_{suffix}"))

    source = ["--source", fmt, "--path", str(path)]
    found = [
        FactorysyncStore(work, target, args.pg_url, file_source(path, fmt), tag=tag).contender(
            expected_rows=rows, group=group
        ),
        dlt_load(
            tools,
            "dlt default (rows)",
            where("dlt_rows"),
            work,
            source=source,
            expected_rows=rows,
            group=group,
        ),
        dlt_load(
            tools,
            "dlt Arrow + parquet",
            where("dlt_arrow"),
            work,
            source=source,
            path_kind="arrow",
            expected_rows=rows,
            group=group,
        ),
    ]
    if fmt == "ndjson":
        found.append(
            sling_load(
                tools,
                "sling (flatten)",
                where("sling"),
                work,
                stream=f"file://{path}",
                src_options="{format: jsonlines, flatten: true}",
                expected_rows=rows,
                group=group,
            )
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    parser.add_argument("--formats", default="ndjson,json", help="ndjson, json or both")
    parser.add_argument("--targets", default="SQLite,PostgreSQL")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    with session(args, "json") as (work, tools):
        contenders: list[Contender] = []
        sizes = []
        for fmt in formats:
            path = data_dir(work) / f"production.{fmt}"
            sizes.append(f"{LABEL[fmt]} {write_production(path, args.rows, fmt) / 1e6:.0f} MB")
            for target in targets:
                contenders += contenders_for(fmt, target, args, tools, work, path)
        return run_case(
            "c-json",
            f"NDJSON and JSON-array files → SQLite and PostgreSQL ({', '.join(sizes)})",
            contenders,
            args,
            tools,
        )


if __name__ == "__main__":
    sys.exit(main())
