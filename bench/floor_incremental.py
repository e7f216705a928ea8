"""The least a Python process does for case f: the new rows of the source's
``production`` table upserted into the target's, with psycopg alone.

    python bench/floor_incremental.py SOURCE_URL TARGET_URL COLUMN,COLUMN,…

What a factorysync incremental run does with the store, without the rest: no
settings, registry, history, state or checks. The cursor is the target's largest id;
the new rows are copied out of the source in binary into a temporary table of the
target and merged with one ``INSERT … ON CONFLICT … DO UPDATE … WHERE <a value
differs>``, in one transaction. bench/peer_incremental.py times it beside factorysync's
incremental run as the floor of a one-off process on this machine, and passes the
table's columns (bench/common.COLUMNS: importing that module here would add to the
floor). It prints the rows it inserted or updated.
"""

import sys

import psycopg


def main(source_url: str, target_url: str, columns: list[str]) -> int:
    changed = ", ".join(f"{c} = excluded.{c}" for c in columns)
    differs = " OR ".join(f"production.{c} IS DISTINCT FROM excluded.{c}" for c in columns)
    with psycopg.connect(target_url) as target, psycopg.connect(source_url) as source:
        row = target.execute("SELECT coalesce(max(id), 0) FROM production").fetchone()
        last = row[0] if row else 0
        target.execute("CREATE TEMP TABLE stage (LIKE production) ON COMMIT DROP")
        with (
            source.cursor() as out_cursor,
            out_cursor.copy(
                "COPY (SELECT * FROM production WHERE id > %s) TO STDOUT (FORMAT binary)",
                (last,),
            ) as out,
            target.cursor() as in_cursor,
            in_cursor.copy("COPY stage FROM STDIN (FORMAT binary)") as into,
        ):
            for block in out:
                into.write(block)
        merged = target.execute(
            f"INSERT INTO production SELECT * FROM stage ON CONFLICT (id) "
            f"DO UPDATE SET {changed} WHERE {differs}"
        ).rowcount
    print(merged)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], [c for c in sys.argv[3].split(",") if c != "id"]))
