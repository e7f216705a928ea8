"""Scheduler benchmark: 500 sources with mixed intervals and priorities.

Two phases, each for --duration seconds:

* capacity: enough workers; reports how late each run started against its due time
  (p50/p95/p99/max) and the share started within 1 s.
* overload: intervals far shorter than the workers can serve; reports the lag of
  priority-1 sources next to priority-3 ones (priority 1 must be served first).

    python bench/scheduler_500.py [--sources 500] [--duration 60] [--store URL]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import orjson


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def setup(workdir: Path, url: str, sources: int, intervals: list[int]) -> None:
    # The source files go in a data root of their own: the store and the key file stay
    # outside it (factorysync refuses a root that holds them).
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    os.environ.update(
        {
            "FACTORYSYNC_DATABASE_URL": url,
            "FACTORYSYNC_DATA_ROOTS": str(data),
            "FACTORYSYNC_SECRET_KEY_FILE": str(workdir / "bench.key"),
            "FACTORYSYNC_SECRET_KEY": "",
        }
    )
    from factorysync import services
    from factorysync.intake import parse_sources
    from factorysync.settings import reset_settings
    from factorysync.store.registry_save import apply_declarations
    from factorysync.store.store import Store

    reset_settings()
    store = Store()
    services.init_store(store)
    rng = random.Random(7)
    decls = []
    for i in range(sources):
        path = data / f"s{i}.json"
        path.write_bytes(orjson.dumps([{"id": j, "v": rng.random()} for j in range(5)]))
        decls.append(
            {
                "source_id": f"s{i:03d}",
                "name": f"S{i}",
                "source_type": "json",
                "priority": 1 + i % 3,
                "refresh_interval": intervals[i % len(intervals)],
                "connections": [{"connection_config": {"file_path": str(path)}}],
                "mappings": [
                    {"target_table": "bench_rows", "mapping_config": {"primary_key": "id"}}
                ],
            }
        )
    with store.begin() as conn:
        apply_declarations(conn, parse_sources({"sources": decls}), store.box)
    store.dispose()


def phase(url: str, duration: float, workers: int, stagger: bool) -> dict[str, object]:
    from sqlalchemy import select, update

    from factorysync.engine.scheduler import Scheduler
    from factorysync.settings import reset_settings
    from factorysync.store.schema import data_source_registry as reg_t
    from factorysync.store.schema import data_source_sync_history as hist_t
    from factorysync.store.store import Store
    from factorysync.store.types import utcnow

    reset_settings()
    store = Store()
    with store.begin() as conn:
        now = utcnow()
        if stagger:
            # Steady state: each source's next run somewhere within its interval.
            rng = random.Random(11)
            rows = conn.execute(select(reg_t.c.id, reg_t.c.refresh_interval)).all()
            for row in rows:
                offset = timedelta(seconds=rng.uniform(0, row.refresh_interval))
                conn.execute(
                    update(reg_t).where(reg_t.c.id == row.id).values(next_sync=now + offset)
                )
        else:
            conn.execute(update(reg_t).values(next_sync=now))
        first = conn.execute(select(hist_t.c.id).order_by(hist_t.c.id.desc())).scalar() or 0
    started = time.monotonic()
    Scheduler(store, max_concurrent=workers).run_forever(stop_after=duration)
    elapsed = time.monotonic() - started
    with store.connect() as conn:
        runs = conn.execute(
            select(hist_t.c.details, hist_t.c.sync_status, reg_t.c.priority)
            .join(reg_t, reg_t.c.source_id == hist_t.c.source_id)
            .where(hist_t.c.id > first)
        ).all()
    store.dispose()
    lags = {
        p: [r.details["lag_ms"] / 1000 for r in runs if r.priority == p and r.details]
        for p in (1, 2, 3)
    }
    every = [x for p in lags.values() for x in p]
    return {
        "runs": len(runs),
        "runs_s": len(runs) / elapsed,
        "failed": sum(1 for r in runs if r.sync_status != "success"),
        "lag": every,
        "lag_by_priority": lags,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--store", default="", help="store URL (default: SQLite in a temp dir)")
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = args.store or f"sqlite:///{workdir / 'bench.db'}"
        backend = url.split(":", 1)[0]
        # Capacity: intervals 10–60 s (mean ≈ 30 s) → about sources/30 runs per second.
        setup(workdir, url, args.sources, [10, 20, 30, 45, 60])
        cap = phase(url, args.duration, args.workers, stagger=True)
        lag = cap["lag"]
        print(
            f"\nscheduler, {args.sources} sources, {backend} store, {args.workers} workers, "
            f"{args.duration:.0f} s per phase"
        )
        print(
            f"{'phase':<10} {'runs':>6} {'runs/s':>7} {'failed':>6} {'lag p50':>8} "
            f"{'p95':>7} {'p99':>7} {'max':>7} {'≤1 s':>6}"
        )
        within = sum(1 for x in lag if x <= 1.0) / max(len(lag), 1)
        print(
            f"{'capacity':<10} {cap['runs']:>6} {cap['runs_s']:>7.1f} {cap['failed']:>6} "
            f"{percentile(lag, 0.5):>8.3f} {percentile(lag, 0.95):>7.3f} "
            f"{percentile(lag, 0.99):>7.3f} {max(lag or [0]):>7.3f} {within:>6.1%}"
        )
        # Overload: every source due every second, two workers.
        from sqlalchemy import update

        from factorysync.store.schema import data_source_registry as reg_t
        from factorysync.store.store import Store

        store = Store()
        with store.begin() as conn:
            conn.execute(update(reg_t).values(refresh_interval=1))
        store.dispose()
        over = phase(url, args.duration, 2, stagger=False)
        by = over["lag_by_priority"]
        print(f"{'overload':<10} {over['runs']:>6} {over['runs_s']:>7.1f} {over['failed']:>6}")
        print("\noverload, lag by priority (2 workers, every source due each second)")
        print(f"{'priority':<10} {'runs':>6} {'lag p50':>8} {'p99':>8}")
        for p in (1, 2, 3):
            values = by[p]
            print(
                f"{p:<10} {len(values):>6} {percentile(values, 0.5):>8.3f} "
                f"{percentile(values, 0.99):>8.3f}"
            )
        if by[1] and by[3]:
            print(
                f"\npriority 1 served first: {statistics.median(by[1]) < statistics.median(by[3])}"
                f" (runs: p1={len(by[1])}, p3={len(by[3])})"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
