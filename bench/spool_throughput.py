"""Spool benchmark: messages into the local spool, back out, and a backlog drained into
the store.

The spool (:mod:`factorysync.realtime.spool`) holds what realtime and push sources
receive while the store is unreachable; every append has reached the disk
(``synchronous=FULL``) before the messages are acknowledged. Measured in one run:

* into the spool: ``--messages`` MQTT-like messages appended in commits of
  ``--batch-rows`` (a writer's micro-batch), and ``--single`` more one per commit (a
  source whose messages trickle in one at a time: one disk sync each);
* out of the spool: a copy of it read back and emptied in batches, without a store;
* drained: the whole backlog written into the store by the writer's own drain path
  (mapping, validation, merge by key, the exactly-once mark, removal from the spool),
  as a restarted process does it — the drain time of the backlog.

The store is the PostgreSQL database ``--pg-url`` (the local ``test`` database by
default): the run registers a source and a target table of its own and removes both at
the end. ``--store sqlite`` uses a throw-away SQLite file instead.

    python bench/spool_throughput.py [--messages 1000000] [--batch-rows 500]
        [--single 20000] [--store postgresql|sqlite] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PG_URL = os.environ.get(
    "FACTORYSYNC_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
READ_BATCH = 5000


@dataclass
class Message:
    records: list[Any]
    raw: Any = None
    error: str | None = None
    state: dict[str, Any] | None = None
    received_at: float = field(default_factory=time.time)


def messages(first: int, count: int) -> list[Message]:
    """MQTT-like machine messages: one record each, ~150 bytes of JSON."""
    return [
        Message(
            [
                {
                    "machine_id": f"M-{n % 200:03d}",
                    "seq": n,
                    "ts": f"2026-12-06T06:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}."
                    f"{n % 1000:03d}+00:00",
                    "speed_rpm": 1200.0 + n % 97,
                    "temperature_c": 60.0 + n % 31 / 10,
                    "state": "run" if n % 11 else "idle",
                }
            ]
        )
        for n in range(first, first + count)
    ]


def source(source_id: str, table: str, batch_rows: int) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": "Spool benchmark",
        "source_type": "push",
        "connections": [{"connection_config": {"batch_rows": batch_rows}}],
        "mappings": [
            {
                "target_table": table,
                "sync_strategy": "realtime",
                "mapping_config": {
                    "primary_key": ["machine_id", "seq"],
                    "fields": {
                        "machine_id": "machine_id",
                        "seq": {"from": "seq", "type": "integer"},
                        "ts": {"from": "ts", "type": "datetime"},
                        "speed_rpm": {"from": "speed_rpm", "type": "float"},
                        "temperature_c": {"from": "temperature_c", "type": "float"},
                        "state": "state",
                    },
                },
            }
        ],
    }


def fill(spool: Any, source_id: str, total: int, batch: int) -> float:
    """Append ``total`` messages in commits of ``batch``; the seconds it took."""
    took = 0.0
    for first in range(0, total, 50_000):  # made in slices, so memory stays small
        chunk = messages(first, min(50_000, total - first))
        started = time.perf_counter()
        for i in range(0, len(chunk), batch):
            part = chunk[i : i + batch]
            if spool.append(source_id, part) != len(part):
                raise SystemExit(f"the spool filled up at {spool.used_bytes} bytes")
        took += time.perf_counter() - started
    return took


def empty(spool: Any, source_id: str) -> float:
    """Read back and remove every message of ``source_id``; the seconds it took."""
    started = time.perf_counter()
    while True:
        batch = spool.read(source_id, READ_BATCH)
        if not batch:
            return time.perf_counter() - started
        spool.remove_through(source_id, batch[-1].seq)


def run(args: argparse.Namespace) -> list[tuple[str, int, float]]:
    from factorysync import services
    from factorysync.realtime.spool import Spool
    from factorysync.realtime.spools import close_process_spools, process_spool
    from factorysync.realtime.writer import MicroBatchWriter
    from factorysync.settings import reset_settings
    from factorysync.store.store import Store

    workdir = Path(tempfile.mkdtemp(prefix="fs-bench-spool-"))
    run_id = uuid.uuid4().hex[:8]
    source_id, table = f"bench-spool-{run_id}", f"bench_spool_{run_id}"
    url = args.pg_url if args.store == "postgresql" else f"sqlite:///{workdir / 'bench.db'}"
    (workdir / "data").mkdir()
    os.environ.update(
        {
            "FACTORYSYNC_DATABASE_URL": url,
            "FACTORYSYNC_DATA_ROOTS": str(workdir / "data"),
            "FACTORYSYNC_SECRET_KEY_FILE": str(workdir / "bench.key"),
            "FACTORYSYNC_SECRET_KEY": "",
            "FACTORYSYNC_SPOOL_DIR": str(workdir / "spool"),
            "FACTORYSYNC_SPOOL_MAX_MB": str(64 * 1024),
            "FACTORYSYNC_LOG_LEVEL": "WARNING",
        }
    )
    reset_settings()
    store = Store()
    results: list[tuple[str, int, float]] = []
    try:
        services.init_store(store)
        services.create_source(store, source(source_id, table, args.batch_rows))
        held = process_spool(store.settings)
        spool = held.get(create=True)
        assert spool is not None
        took = fill(spool, source_id, args.messages, args.batch_rows)
        results.append((f"into the spool ({args.batch_rows} per commit)", args.messages, took))
        single = Spool(workdir / "single.sqlite", 2**40)
        took = fill(single, "single", args.single, 1)
        results.append(("into the spool (1 per commit)", args.single, took))
        single.close()

        # A copy, read back and emptied without a store.
        with sqlite3.connect(spool.path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy(spool.path, workdir / "copy.sqlite")
        copy = Spool(workdir / "copy.sqlite", 2**40)
        results.append(("out of the spool (read + remove)", args.messages, empty(copy, source_id)))
        copy.close()
        size_mb = (workdir / "copy.sqlite").stat().st_size / 2**20

        # The backlog drained into the store, as a restarted process writes it.
        writer = MicroBatchWriter(store, source_id, max_rows=args.batch_rows, leftover=True)
        writer.open()
        started = time.perf_counter()
        writer.start()
        while writer.running():
            time.sleep(0.05)
        took = time.perf_counter() - started
        if spool.depth(source_id):
            raise SystemExit(f"{spool.depth(source_id)} messages left in the spool")
        with store.connect() as conn:
            from sqlalchemy import text

            written = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
        if written != args.messages:
            raise SystemExit(f"{written} rows written of {args.messages}")
        results.append((f"drained into {args.store}", args.messages, took))
        print(f"spool file: {size_mb:,.0f} MB for {args.messages:,} messages", file=sys.stderr)
        close_process_spools()
    finally:
        try:
            from sqlalchemy import text

            services.delete_source(store, source_id)
            with store.begin() as conn:
                conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        finally:
            store.dispose()
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=500)
    parser.add_argument("--single", type=int, default=20_000)
    parser.add_argument("--store", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--pg-url", default=PG_URL)
    args = parser.parse_args(argv)
    results = run(args)
    print(f"{'phase':<36} {'messages':>10} {'seconds':>9} {'messages/s':>11}")
    for phase, count, seconds in results:
        print(f"{phase:<36} {count:>10,} {seconds:>9.1f} {count / max(seconds, 1e-9):>11,.0f}")


if __name__ == "__main__":
    main()
