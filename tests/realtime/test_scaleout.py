"""Realtime sources across several ``factorysync worker`` processes on one PostgreSQL store,
against the real local Mosquitto broker: leased subscriptions spread over the workers and
move when one dies; an MQTT 5 shared subscription splits one topic between workers."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from factorysync.api import create_app
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.store.targets import read_rows, target_table
from tests.api.conftest import role_tokens
from tests.engine.test_workers import running, start_worker, stop
from tests.realtime.conftest import Publisher, mqtt_source, register
from tests.waiting import wait_for_value, wait_until

PG_ONLY = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
# Long enough that a live worker stalled by a loaded machine still renews in time (it
# renews every third of it): only the killed one loses its leases.
LEASE = 10.0
SEQ_MAPPING = {
    "primary_key": ["machine_id", "seq"],
    "fields": {
        "machine_id": "machine_id",
        "seq": {"from": "seq", "type": "integer"},
        "value": {"from": "value", "type": "float"},
    },
}


def realtime_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "FACTORYSYNC_REALTIME_RESCAN_S": "0.3", "FACTORYSYNC_LOG_LEVEL": "INFO"}


def holders(store: Store, source_ids: list[str]) -> dict[str, str | None]:
    with store.connect() as conn:
        rows = conn.execute(
            select(reg_t.c.source_id, reg_t.c.lease_owner, reg_t.c.lease_expires_at).where(
                reg_t.c.source_id.in_(source_ids)
            )
        ).all()
    return {r.source_id: r.lease_owner for r in rows}


def pid_of(owner: str | None) -> int | None:
    return int(owner.split(":")[1]) if owner else None


def count_rows(store: Store, table: str) -> int:
    with store.connect() as conn:
        try:
            return len(read_rows(conn, table))
        except Exception:
            return 0


def no_duplicate_keys(store: Store, table: str) -> None:
    with store.connect() as conn:
        t = target_table(conn, table)
        dupes = conn.execute(
            select(t.c.machine_id, t.c.seq)
            .group_by(t.c.machine_id, t.c.seq)
            .having(func.count() > 1)
        ).all()
    assert dupes == []


def seen_by_api(store: Store, pids: set[int]) -> None:
    """/api/status and /metrics show each worker with its leases."""
    tokens = role_tokens(store)
    with TestClient(create_app(store)) as client:
        headers = {"Authorization": f"Bearer {tokens['viewer']}"}
        status = client.get("/api/status", headers=headers).json()
        metrics = client.get("/metrics", headers=headers).text
    workers = {int(w["worker_id"].split(":")[1]): w for w in status["workers"]}
    assert set(workers) == pids, status["workers"]
    assert all(w["leases"] == 2 and w["max_concurrent"] >= 1 for w in workers.values()), workers
    assert "factorysync_workers_alive 2.0" in metrics
    for w in workers.values():
        assert (
            f'factorysync_worker_leases{{host="{w["host"]}",worker_id="{w["worker_id"]}"}} 2.0'
            in metrics
        )


def probe_until_received(
    store: Store, publisher: Publisher, topic_root: str, source_ids: list[str], table: str
) -> None:
    """Publish probe messages to each source until each has stored one: then every
    subscriber is subscribed (a message published before that reaches no one)."""
    sent = [0]

    def all_received() -> bool:
        publisher.publish_many(
            [
                (f"{topic_root}/{sid}/PROBE-{sid}", {"seq": sent[0], "value": 0})
                for sid in source_ids
            ]
        )
        sent[0] += 1
        with store.connect() as conn:
            try:
                t = target_table(conn, table)
            except Exception:  # no flush yet: the table does not exist
                return False
            probed = set(
                conn.execute(
                    select(t.c.machine_id).where(t.c.machine_id.like("PROBE-%")).distinct()
                ).scalars()
            )
        return probed == {f"PROBE-{sid}" for sid in source_ids}

    wait_until(all_received, what=f"every subscriber of {source_ids} receiving", poll_s=0.3)


def machine_rows_of(store: Store, table: str) -> int:
    """Rows of real machines (probes left out)."""
    with store.connect() as conn:
        try:
            t = target_table(conn, table)
        except Exception:
            return 0
        return int(
            conn.execute(select(func.count()).where(t.c.machine_id.not_like("PROBE%"))).scalar_one()
        )


def windows(store: Store, source_id: str) -> list[Any]:
    with store.connect() as conn:
        return conn.execute(select(hist_t).where(hist_t.c.source_id == source_id)).all()


@PG_ONLY
@pytest.mark.slow
def test_realtime_sources_are_leased_spread_and_taken_over(
    store: Store,
    env: dict[str, str],
    tmp_path: Path,
    broker: tuple[str, int],
    publisher: Publisher,
    topic_root: str,
) -> None:
    ids = [f"line-{c}" for c in "abcd"]
    register(
        store,
        *[
            mqtt_source(
                sid,
                *broker,
                [f"{topic_root}/{sid}/+"],
                table="line_values",
                topic_template=f"{topic_root}/{sid}/{{machine_id}}",
                mapping=SEQ_MAPPING,
            )
            for sid in ids
        ],
    )
    args = ("--lease-seconds", str(LEASE))
    workers = [start_worker(realtime_env(env), tmp_path, *args) for _ in range(2)]
    try:
        pids = {w.pid for w in workers}

        def spread() -> Counter[int | None] | None:
            by = Counter(pid_of(o) for o in holders(store, ids).values())
            return by if set(by) == pids and all(n == 2 for n in by.values()) else None

        wait_until(lambda: running(workers) and spread(), what="two sources leased by each worker")
        # The subscribers connect after the lease: probe until each one receives.
        probe_until_received(store, publisher, topic_root, ids, "line_values")
        wait_until(lambda: spread() is not None, what="the spread to hold")
        seen_by_api(store, pids)

        def publish(first: int, count: int) -> None:
            publisher.publish_many(
                [
                    (f"{topic_root}/{sid}/{sid.upper()}", {"seq": n, "value": n / 2})
                    for n in range(first, first + count)
                    for sid in ids
                ]
            )

        publish(0, 50)
        wait_for_value(lambda: machine_rows_of(store, "line_values"), 200, what="200 rows")

        victim = workers[0]
        victim_sources = [s for s, o in holders(store, ids).items() if pid_of(o) == victim.pid]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
        # Published while nobody serves the victim's sources: kept in their MQTT sessions.
        publish(50, 50)

        survivor = workers[1].pid
        wait_until(
            lambda: (
                running(workers[1:])
                and all(pid_of(o) == survivor for o in holders(store, ids).values())
            ),
            what="every source taken over by the surviving worker",
            state=lambda: holders(store, ids),
        )
        wait_for_value(lambda: machine_rows_of(store, "line_values"), 400, what="400 rows")
        no_duplicate_keys(store, "line_values")
        assert victim_sources and len(victim_sources) == 2
    finally:
        stop([w for w in workers if w.poll() is None])
    with store.connect() as conn:
        left = conn.execute(
            select(func.count()).where(reg_t.c.source_id.in_(ids), reg_t.c.lease_owner.is_not(None))
        ).scalar_one()
    assert left == 0  # a worker that stops releases its leases


@PG_ONLY
@pytest.mark.slow
def test_a_shared_subscription_splits_one_topic_exactly_once(
    store: Store,
    env: dict[str, str],
    tmp_path: Path,
    broker: tuple[str, int],
    publisher: Publisher,
    topic_root: str,
) -> None:
    register(
        store,
        mqtt_source(
            "press-telemetry",
            *broker,
            [f"{topic_root}/press/+"],
            table="press_telemetry",
            topic_template=f"{topic_root}/press/{{machine_id}}",
            mapping=SEQ_MAPPING,
            shared_group=f"g{topic_root.rsplit('/', 1)[1]}",
        ),
    )
    args = ("--lease-seconds", str(LEASE))
    workers: list[subprocess.Popen[bytes]] = [
        start_worker(realtime_env(env), tmp_path, *args, "--name", f"w{i}") for i in (1, 2)
    ]
    try:
        # Probe until both workers write: then both are subscribed. (Probes sent before
        # the first subscription reach no one, so only the probe rows found are counted.)
        probes = 0

        def both_writing() -> bool:
            nonlocal probes
            publisher.publish_many(
                [(f"{topic_root}/press/PROBE", {"seq": probes + i, "value": 0}) for i in range(20)]
            )
            probes += 20
            return len({w.worker for w in windows(store, "press-telemetry")}) == 2

        wait_until(
            lambda: running(workers) and both_writing(), what="both workers receiving", poll_s=0.3
        )
        total, chunk = 3000, 300
        # In chunks that each land before the next: Mosquitto drops QoS 1 messages beyond
        # a client's max_queued_messages (1000 by default), which is not under test here.
        for first in range(0, total, chunk):
            publisher.publish_many(
                [
                    (f"{topic_root}/press/PR-{n % 7}", {"seq": n, "value": n})
                    for n in range(first, first + chunk)
                ]
            )
            expected = first + chunk
            wait_for_value(lambda: machine_rows(store), expected, what=f"{expected} machine rows")
    finally:
        stop(workers)
    no_duplicate_keys(store, "press_telemetry")
    assert machine_rows(store) == total
    stored = count_rows(store, "press_telemetry")  # the machine rows and the probes received
    runs = windows(store, "press-telemetry")
    assert all(r.sync_status == "success" for r in runs), [r.error_message for r in runs]
    by_worker: Counter[str] = Counter()
    for r in runs:
        by_worker[r.worker] += r.records_processed
    # Every message has a key of its own: had one reached both workers (or one worker
    # twice), the windows would count more messages than there are rows.
    assert sum(by_worker.values()) == stored, (by_worker, stored)
    assert len(by_worker) == 2 and min(by_worker.values()) > total // 10, by_worker


def machine_rows(store: Store) -> int:
    with store.connect() as conn:
        t = target_table(conn, "press_telemetry")
        return int(conn.execute(select(func.count()).where(t.c.machine_id != "PROBE")).scalar_one())
