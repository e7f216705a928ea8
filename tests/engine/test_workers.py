"""Scale-out: several worker processes share one PostgreSQL store."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update

from factorysync.config import parse_sources
from factorysync.store.registry import apply_declarations
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.store.targets import read_rows, target_table
from factorysync.store.types import utcnow
from tests.conftest import run_cli

PG_ONLY = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def start_worker(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    with (cwd / f"worker-{time.monotonic_ns()}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "factorysync.cli", "worker", *args],
            env={**os.environ, **env, "FACTORYSYNC_SCHEDULER_TICK_S": "0.1"},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    for w in workers:
        w.wait(timeout=60)


def register(
    store: Store, data_dir: Path, count: int, rows: int, interval: int, stagger: bool = False
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
                "priority": 1 + i % 3,
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
        rows = conn.execute(select(hist_t).order_by(hist_t.c.sync_started_at)).all()
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


@PG_ONLY
@pytest.mark.slow
def test_three_workers_run_every_due_run_exactly_once(
    store: Store, data_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    interval, duration = 10, 35
    register(store, data_dir, count=200, rows=3, interval=interval, stagger=True)
    workers = [start_worker(env, tmp_path, "--concurrency", "6") for _ in range(3)]
    time.sleep(duration)
    from factorysync import services

    alive = services.status_summary(store)["workers"]
    assert len(alive) == 3 and all(w["max_concurrent"] == 6 for w in alive)
    stop(workers)
    by = runs_by_source(store)
    assert len(by) == 200
    owners = set()
    for sid, runs in by.items():
        assert all(r.sync_status == "success" for r in runs), (sid, [r.error_message for r in runs])
        for before, after in itertools.pairwise(runs):
            # Never two runs of one source at once, and none skipped: the next run
            # starts after the previous ended and about one interval later.
            assert before.sync_completed_at <= after.sync_started_at, sid
            gap = (after.sync_started_at - before.sync_started_at).total_seconds()
            assert interval - 1 <= gap <= 2 * interval + 5, (sid, gap)
        assert len(runs) >= duration // interval - 1, (sid, len(runs))
        owners.update(r.worker for r in runs)
    assert len({o.rsplit(":", 1)[0] for o in owners}) == 3  # every worker took a share


@PG_ONLY
@pytest.mark.slow
def test_a_killed_worker_is_taken_over(
    store: Store, data_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    lease = 4.0
    register(store, data_dir, count=6, rows=30_000, interval=2)
    env = {**env, "FACTORYSYNC_BATCH_SIZE": "2000"}
    workers = [
        start_worker(env, tmp_path, "--concurrency", "2", "--lease-seconds", str(lease))
        for _ in range(3)
    ]
    victim, victim_runs = None, []
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        time.sleep(0.2)
        with store.connect() as conn:
            running = conn.execute(
                select(hist_t.c.worker, hist_t.c.source_id).where(hist_t.c.sync_status == "running")
            ).all()
        for w in workers:
            mine = [r.source_id for r in running if r.worker.split(":")[1] == str(w.pid)]
            if mine:
                victim, victim_runs = w, mine
                break
    assert victim is not None, "no worker was seen running a sync"
    victim.send_signal(signal.SIGKILL)
    killed_at = time.time()
    victim.wait(timeout=10)
    time.sleep(lease * 3 + 6)
    stop([w for w in workers if w is not victim])

    by = runs_by_source(store)
    for sid in victim_runs:
        later = [
            r
            for r in by[sid]
            if r.sync_started_at.timestamp() > killed_at and r.sync_status == "success"
        ]
        assert later, f"{sid} was not taken over"
        assert later[0].sync_started_at.timestamp() - killed_at <= lease + 5
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
