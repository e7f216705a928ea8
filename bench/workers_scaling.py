"""Scale-out benchmark: runs/s and scheduler lag for 1, 2 and 4 workers on 500 sources.

Every source is due every second, so the workers are saturated and runs/s shows their
capacity; lag is how late runs start against their due time. Needs a PostgreSQL server
(default: the local one); a throw-away database is created and dropped.

    python bench/workers_scaling.py [--sources 500] [--duration 30] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def setup(url: str, workdir: Path, sources: int) -> dict[str, str]:
    # The source files go in a data root of their own: the key file stays outside it
    # (factorysync refuses a root that holds it).
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    env = {
        "FACTORYSYNC_DATABASE_URL": url,
        "FACTORYSYNC_DATA_ROOTS": str(data),
        "FACTORYSYNC_SECRET_KEY_FILE": str(workdir / "bench.key"),
        "FACTORYSYNC_SECRET_KEY": "",
        "FACTORYSYNC_SCHEDULER_TICK_S": "0.1",
        "FACTORYSYNC_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    from factorysync import services
    from factorysync.intake import parse_sources
    from factorysync.settings import reset_settings
    from factorysync.store.registry_save import apply_declarations
    from factorysync.store.store import Store

    reset_settings()
    store = Store()
    services.init_store(store)
    decls = []
    for i in range(sources):
        path = data / f"s{i}.json"
        path.write_bytes(orjson.dumps([{"id": j, "v": i * j} for j in range(5)]))
        decls.append(
            {
                "source_id": f"s{i:03d}",
                "name": f"S{i}",
                "source_type": "json",
                "priority": 1 + i % 3,
                "refresh_interval": 1,
                "connections": [{"connection_config": {"file_path": str(path)}}],
                "mappings": [
                    {"target_table": "bench_rows", "mapping_config": {"primary_key": "id"}}
                ],
            }
        )
    with store.begin() as conn:
        apply_declarations(conn, parse_sources({"sources": decls}), store.box)
    store.dispose()
    return env


def measure(env: dict[str, str], workers: int, duration: float) -> tuple[int, list[float]]:
    from sqlalchemy import func, select, update

    from factorysync.store.schema import data_source_registry as reg_t
    from factorysync.store.schema import data_source_sync_history as hist_t
    from factorysync.store.store import Store
    from factorysync.store.types import utcnow

    store = Store()
    with store.begin() as conn:
        conn.execute(update(reg_t).values(next_sync=utcnow(), lease_owner=None))
        first = conn.execute(select(func.coalesce(func.max(hist_t.c.id), 0))).scalar_one()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "factorysync.cli", "worker", "--concurrency", "4"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    time.sleep(2)  # start-up
    with store.connect() as conn:
        start_id = conn.execute(select(func.coalesce(func.max(hist_t.c.id), 0))).scalar_one()
    time.sleep(duration)
    with store.connect() as conn:
        runs = (
            conn.execute(
                select(hist_t.c.details).where(
                    hist_t.c.id > max(first, start_id), hist_t.c.sync_status == "success"
                )
            )
            .scalars()
            .all()
        )
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=60)
    store.dispose()
    return len(runs), [d["lag_ms"] / 1000 for d in runs if d and "lag_ms" in d]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    database = f"fs_bench_workers_{os.getpid()}"
    admin(f'CREATE DATABASE "{database}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = setup(ADMIN.rsplit("/", 1)[0] + "/" + database, Path(tmp), args.sources)
            rows = []
            for n in (int(x) for x in args.workers.split(",")):
                count, lags = measure(env, n, args.duration)
                rows.append(
                    (n, count / args.duration, percentile(lags, 0.5), percentile(lags, 0.99))
                )
        base = rows[0][1] or 1
        print(
            f"\nworkers on {args.sources} sources (each due every second), PostgreSQL store, "
            f"{args.duration:.0f} s per row, 4 runs at once per worker"
        )
        print(f"{'workers':>7} {'runs/s':>8} {'scaling':>8} {'lag p50 s':>10} {'lag p99 s':>10}")
        for n, rate, p50, p99 in rows:
            print(f"{n:>7} {rate:>8.1f} {rate / base:>7.2f}x {p50:>10.2f} {p99:>10.2f}")
    finally:
        admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
