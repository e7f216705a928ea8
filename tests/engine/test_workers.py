"""Scale-out: several worker processes share one PostgreSQL store."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update

from factorysync.intake import parse_sources
from factorysync.store.registry_save import apply_declarations
from factorysync.store.schema import HISTORY_ROW
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.store.targets import read_rows, target_table
from factorysync.store.types import utcnow
from tests.conftest import run_cli
from tests.waiting import wait_until

PG_ONLY = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


LOGS: dict[int, Path] = {}  # worker pid -> its output


def start_worker(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    path = cwd / f"worker-{time.monotonic_ns()}.log"
    with path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "factorysync.cli", "worker", *args],
            env={**os.environ, **env, "FACTORYSYNC_SCHEDULER_TICK_S": "0.1"},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    LOGS[proc.pid] = path
    return proc


def running(workers: list[subprocess.Popen[bytes]]) -> bool:
    """True while every worker runs; a worker that ended fails the test with its output
    (rather than leaving a wait for its work to time out)."""
    for w in workers:
        if w.poll() is not None:
            output = LOGS[w.pid].read_text(errors="replace")[-3000:]
            raise AssertionError(f"worker {w.pid} exited with {w.returncode}:\n{output}")
    return True


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    for w in workers:
        w.wait(timeout=60)


def register(
    store: Store,
    data_dir: Path,
    count: int,
    rows: int,
    interval: int,
    stagger: bool = False,
    priorities: int = 3,
) -> None:
    sources = []
    for i in range(count):
        path = data_dir / f"s{i:03d}.ndjson"
        path.write_bytes(
            b"".join(orjson.dumps({"id": j, "src": i, "v": j * i}) + b"\n" for j in range(rows))
        )
        sources.append(
            {
                "source_id": f"s{i:03d}",
                "name": f"S{i}",
                "source_type": "json",
                "priority": 1 + i % priorities,
                "refresh_interval": interval,
                "connections": [
                    {"connection_config": {"file_path": str(path), "file_type": "ndjson"}}
                ],
                "mappings": [
                    {"target_table": f"t{i:03d}", "mapping_config": {"primary_key": "id"}}
                ],
            }
        )
    with store.begin() as conn:
        apply_declarations(conn, parse_sources({"sources": sources}), store.box)
        if stagger:  # steady state: first runs spread over one interval
            now = utcnow()
            for i in range(count):
                conn.execute(
                    update(reg_t)
                    .where(reg_t.c.source_id == f"s{i:03d}")
                    .values(next_sync=now + timedelta(seconds=interval * i / count))
                )


def runs_by_source(store: Store) -> dict[str, list[Any]]:
    with store.connect() as conn:
        rows = conn.execute(select(*HISTORY_ROW).order_by(hist_t.c.sync_started_at)).all()
    by: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        by[r.source_id].append(r)
    return by


def test_worker_refuses_sqlite(tmp_path: Path) -> None:
    proc = run_cli(
        "worker", cwd=tmp_path, env={"FACTORYSYNC_DATABASE_URL": f"sqlite:///{tmp_path}/s.db"}
    )
    assert proc.returncode == 2
    assert "factorysync worker needs a PostgreSQL store" in proc.stderr


def successes(store: Store) -> dict[str, int]:
    """Completed successful runs per source."""
    with store.connect() as conn:
        rows = conn.execute(
            select(hist_t.c.source_id, func.count())
            .where(hist_t.c.sync_status == "success")
            .group_by(hist_t.c.source_id)
        ).all()
    return {sid: int(n) for sid, n in rows}


@PG_ONLY
@pytest.mark.slow
def test_three_workers_run_every_due_run_exactly_once(
    store: Store, data_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    interval, sources, rounds = 10, 200, 3
    # One priority: a machine too busy to run 200 sources every 10 s runs the higher
    # priorities first and lets the lower ones wait (by design), so with several the
    # outcome would depend on the machine's speed. With one, every source keeps its turn
    # (the longest due runs first) and only comes round later on a slower machine.
    register(store, data_dir, count=sources, rows=3, interval=interval, stagger=True, priorities=1)
    workers = [start_worker(env, tmp_path, "--concurrency", "6") for _ in range(3)]
    from factorysync import services

    def live_workers() -> list[dict[str, Any]]:
        return list(services.status_summary(store)["workers"])

    def every_source_ran(times: int) -> bool:
        done = successes(store)
        return len(done) == sources and min(done.values()) >= times

    try:
        alive = wait_until(
            lambda: running(workers) and (found := live_workers()) and len(found) == 3 and found,
            what="three live workers",
            state=live_workers,
        )
        assert all(w["max_concurrent"] == 6 for w in alive)
        # However slow the machine, every source comes round `rounds` times.
        wait_until(
            lambda: running(workers) and every_source_ran(rounds),
            timeout=600,
            what=f"{rounds} successful runs of each of the {sources} sources",
            state=lambda: sorted(successes(store).items(), key=lambda kv: kv[1])[:5],
        )
    finally:
        stop(workers)
    by = runs_by_source(store)
    assert len(by) == sources
    owners = set()
    for sid, runs in by.items():
        assert all(r.sync_status == "success" for r in runs), (sid, [r.error_message for r in runs])
        for before, after in itertools.pairwise(runs):
            # Never two runs of one source at once, and each run is the one its predecessor
            # scheduled: due one interval after the previous start, and not started before
            # it was due. A run taken twice, or one skipped, breaks this chain; a machine
            # that is merely slow only makes runs start later than they were due.
            assert before.sync_completed_at <= after.sync_started_at, sid
            due = datetime.fromisoformat(after.details["due"])
            expected = before.sync_started_at + timedelta(seconds=interval)
            assert abs((due - expected).total_seconds()) < 0.001, (sid, due, expected)
            assert after.sync_started_at >= due, (sid, after.sync_started_at, due)
        owners.update(r.worker for r in runs)
    assert len({o.rsplit(":", 1)[0] for o in owners}) == 3  # every worker took a share


def running_by(store: Store, pid: int) -> list[str]:
    with store.connect() as conn:
        rows = conn.execute(
            select(hist_t.c.worker, hist_t.c.source_id).where(hist_t.c.sync_status == "running")
        ).all()
    return [r.source_id for r in rows if r.worker.split(":")[1] == str(pid)]


@PG_ONLY
@pytest.mark.slow
def test_a_killed_worker_is_taken_over(
    store: Store, data_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    # Long enough that a live worker stalled by a loaded machine still renews in time
    # (it renews every third of it): only the killed one loses its leases.
    lease = 10.0
    register(store, data_dir, count=6, rows=30_000, interval=2)
    env = {**env, "FACTORYSYNC_BATCH_SIZE": "2000"}
    workers = [
        start_worker(env, tmp_path, "--concurrency", "2", "--lease-seconds", str(lease))
        for _ in range(3)
    ]
    try:

        def busy_worker() -> subprocess.Popen[bytes] | None:
            running(workers)
            return next((w for w in workers if running_by(store, w.pid)), None)

        victim = wait_until(busy_worker, what="a worker running a sync")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
        killed_at = time.time()
        # Runs the victim left unfinished: it may have completed some between the
        # look above and the kill; those it did not finish are the ones to take over.
        with store.connect() as conn:
            left = conn.execute(
                select(hist_t.c.source_id).where(
                    hist_t.c.worker.like(f"%:{victim.pid}:%"), hist_t.c.sync_status != "success"
                )
            ).all()
        victim_runs = sorted({r.source_id for r in left})
        assert victim_runs, "the killed worker left no unfinished run"

        def taken_over() -> bool:
            by = runs_by_source(store)
            return all(
                any(
                    r.sync_started_at.timestamp() > killed_at and r.sync_status == "success"
                    for r in by[sid]
                )
                for sid in victim_runs
            ) and all(successes(store).get(f"s{i:03d}", 0) >= 1 for i in range(6))

        survivors = [w for w in workers if w is not victim]
        wait_until(
            lambda: running(survivors) and taken_over(),
            timeout=300,
            what=f"{victim_runs} synced again by the surviving workers",
            state=lambda: successes(store),
        )
    finally:
        stop([w for w in workers if w.poll() is None])

    by = runs_by_source(store)
    for sid in victim_runs:
        interrupted = [r for r in by[sid] if (r.error_message or "").startswith("interrupted")]
        assert interrupted, f"the killed run of {sid} was not marked interrupted"
    with store.connect() as conn:
        for i in range(6):
            table = target_table(conn, f"t{i:03d}")
            dupes = conn.execute(
                select(table.c.id).group_by(table.c.id).having(func.count() > 1)
            ).all()
            assert dupes == []
            rows = read_rows(conn, f"t{i:03d}")
            assert len(rows) == 30_000 and sum(r["v"] for r in rows) == i * sum(range(30_000))
