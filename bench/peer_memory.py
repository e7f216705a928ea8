"""Case g: peak memory of factorysync loading a 1 GB CSV and a 1 GB NDJSON file.

The files are generated deterministically in a temporary folder (removed afterwards) at
--size-mb each; factorysync syncs each into an empty store. `sqlite3 .import` of the CSV
is there for scale. The done-when target is a peak RSS ≤ 300 MB for factorysync.

    python bench/peer_memory.py [--size-mb 1024] [--runs 1] [--targets SQLite]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Contender, rows_for_size, write_production
from contenders import FactorysyncStore, data_dir, file_source, sqlite_import
from harness import add_arguments, run_case, session

LIMIT_MB = 300


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    parser.set_defaults(runs=1)
    parser.add_argument("--size-mb", type=float, default=1024.0, help="size of each file")
    parser.add_argument(
        "--targets", default="SQLite", help="SQLite, PostgreSQL or both (comma separated)"
    )
    args = parser.parse_args(argv)
    with session(args, "memory") as (work, tools):
        contenders: list[Contender] = []
        sizes = {}
        files = []
        for fmt in ("csv", "ndjson"):
            rows = rows_for_size(int(args.size_mb * 1e6), fmt)
            path = data_dir(work) / f"big.{fmt}"
            files.append(path)
            size = write_production(path, rows, fmt)
            sizes[fmt] = (rows, size)
            print(f"  {path.name}: {rows:,} rows, {size / 1e6:.0f} MB", file=sys.stderr)
            for target in [t.strip() for t in args.targets.split(",") if t.strip()]:
                group = f"{fmt.upper()} {size / 1e6:,.0f} MB → {target}"
                same = {"expected_rows": rows, "rows_processed": rows, "group": group}
                if fmt == "csv" and target == "SQLite":
                    contenders.append(
                        sqlite_import(
                            "sqlite3 .import (native)", work / "g_native.db", path, **same
                        )
                    )
                contenders.append(
                    FactorysyncStore(
                        work, target, args.pg_url, file_source(path, fmt), tag=f"g{fmt}{target[:2]}"
                    ).contender(**same)
                )
        args.rows = sizes["csv"][0]
        try:
            code = run_case(
                "g-memory",
                f"Memory: {sizes['csv'][1] / 1e9:.2f} GB CSV ({sizes['csv'][0]:,} rows) and "
                f"{sizes['ndjson'][1] / 1e9:.2f} GB NDJSON ({sizes['ndjson'][0]:,} rows) "
                "→ factorysync",
                contenders,
                args,
                tools,
                extra={"limit_mb": LIMIT_MB},
            )
        finally:
            for path in files:
                path.unlink(missing_ok=True)
    over = [
        c.name + " " + c.key
        for c in contenders
        if c.factorysync and c.results and max(m.peak_rss_mb for m in c.results) > LIMIT_MB
    ]
    if over:
        print(f"peak RSS over {LIMIT_MB} MB: {', '.join(over)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
