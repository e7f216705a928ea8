"""Crash safety: a large incremental sync killed with SIGKILL at random points loses and
duplicates nothing once a later sync completes (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import yaml
from sqlalchemy import func, select

from factorysync import services
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.store.targets import read_rows, target_table
from tests.waiting import wait_until

KILLS = 20


def write_source(path: Path, rows: dict[int, tuple[str, int]]) -> None:
    with path.open("wb") as fh:
        for key, (ts, qty) in rows.items():
            fh.write(orjson.dumps({"id": key, "ts": ts, "qty": qty, "line": f"L{key % 3}"}))
            fh.write(b"\n")


def checksum(rows: dict[int, tuple[str, int]]) -> str:
    blob = orjson.dumps(sorted((k, v[1]) for k, v in rows.items()))
    return hashlib.sha256(blob).hexdigest()


def last_run_id(store: Store) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(hist_t.c.id), 0))).scalar_one())


def stamp(hour: int) -> str:
    return f"2026-01-{5 + hour // 24:02d}T{hour % 24:02d}:00:00+07:00"


@pytest.mark.slow
def test_sigkill_at_random_points(
    store: Store, data_dir: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    rng = random.Random(20261126)
    source = {i: (stamp(i // 1000), i) for i in range(20_000)}
    path = data_dir / "big.ndjson"
    write_source(path, source)
    doc = {
        "sources": [
            {
                "source_id": "big",
                "name": "Big",
                "source_type": "json",
                "connections": [
                    {"connection_config": {"file_path": str(path), "file_type": "ndjson"}}
                ],
                "mappings": [
                    {
                        "target_table": "big",
                        "sync_strategy": "incremental",
                        "mapping_config": {"primary_key": "id", "cursor_field": "ts"},
                    }
                ],
            }
        ]
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    services.apply_file(store, tmp_path / "s.yaml")
    child_env = {**os.environ, **env, "FACTORYSYNC_BATCH_SIZE": "500"}

    kills, hour, next_id = 0, 20, 20_000
    # Kill points spread over a run's lifetime, measured from the moment the run starts
    # (its history row appears), not from the process start: on a loaded machine the
    # interpreter's start-up alone can outlast a whole run. The lifetime is the last
    # completed run's (a faster sync path must not let runs slip through unkilled).
    lifetime = 2.0
    for _ in range(KILLS * 3):
        if kills >= KILLS:
            break
        # New rows and changed rows, all with a newer cursor.
        hour += 1
        for _ in range(300):
            source[next_id] = (stamp(hour), next_id)
            next_id += 1
        for key in rng.sample(sorted(source), 300):
            source[key] = (stamp(hour), source[key][1] + 1)
        write_source(path, source)
        before = last_run_id(store)
        proc = subprocess.Popen(
            [sys.executable, "-m", "factorysync.cli", "source", "sync", "big"],
            env=child_env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(
            lambda proc=proc, before=before: proc.poll() is not None or last_run_id(store) > before,
            what="the sync to start",
        )
        if proc.poll() is not None:  # ended before its start was seen: no kill point
            continue
        started = time.perf_counter()
        try:
            proc.wait(timeout=rng.uniform(0.0, 0.95 * lifetime))
            lifetime = time.perf_counter() - started
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=120)
    assert kills >= KILLS

    final = services.sync_many(store, ["big"])[0]
    assert final.sync_status == "success", final.error_message
    with store.connect() as conn:
        rows = read_rows(conn, "big")
        table = target_table(conn, "big")
        dupes = conn.execute(select(table.c.id).group_by(table.c.id).having(func.count() > 1)).all()
        running = conn.execute(
            select(func.count()).where(hist_t.c.sync_status == "running")
        ).scalar_one()
        interrupted = conn.execute(
            select(func.count()).where(hist_t.c.error_message.like("interrupted%"))
        ).scalar_one()
    stored = {r["id"]: (r["ts"], r["qty"]) for r in rows}
    assert dupes == []
    assert len(stored) == len(source)
    assert checksum(stored) == checksum(source)
    assert running == 0
    assert interrupted >= 1
