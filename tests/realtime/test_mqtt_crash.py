"""A realtime process killed mid-stream loses no QoS 1 message: the broker redelivers
what was received but not yet committed, and the writer upserts it by key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from typing import Any

from sqlalchemy import select

from factorysync.realtime.service import RealtimeService
from factorysync.store.schema import data_source_sync_history
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.realtime.conftest import PrivateBroker, Publisher, mqtt_source, register
from tests.waiting import PATIENCE, wait_for_value, wait_until

SERVE = textwrap.dedent(
    """
    import time
    from factorysync.realtime.service import RealtimeService
    from factorysync.store.store import Store

    service = RealtimeService(Store(), file_watch=False)
    service.reconcile()
    assert service.workers["crash"][1].subscriber.connected.wait(600)
    print("ready", flush=True)
    while True:
        time.sleep(1)
    """
)


N = 6000


def seqs(store: Store) -> list[int]:
    with store.connect() as conn:
        try:
            return sorted(r["seq"] for r in read_rows(conn, "crash"))
        except Exception:
            return []


def test_killed_process_loses_nothing(
    store: Store, private_broker: PrivateBroker, topic_root: str
) -> None:
    # A broker of our own: Mosquitto's default max_queued_messages (1000) would drop
    # QoS 1 messages queued beyond it for an offline session; ours allows 100000.
    broker = ("127.0.0.1", private_broker.port)
    publisher = Publisher(*broker)
    register(
        store,
        mqtt_source(
            "crash",
            *broker,
            [f"{topic_root}/#"],
            mapping={"primary_key": ["seq"]},
            batch_rows=100,
            batch_ms=20,
        ),
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        items = [(f"{topic_root}/m", {"seq": i}) for i in range(N)]
        infos = publisher.publish_many(items, wait=False)
        wait_until(lambda: len(seqs(store)) > 0, what="a first flush")
        proc.send_signal(signal.SIGKILL)  # no chance to flush or acknowledge
        proc.wait(PATIENCE)
        assert len(seqs(store)) < N
        for info in infos:  # the rest reaches the broker, which queues it for the session
            info.wait_for_publish(PATIENCE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(PATIENCE)
        if proc.stdout is not None:
            proc.stdout.close()
        publisher.close()

    service = RealtimeService(store, file_watch=False)
    try:
        service.reconcile()
        wait_for_value(lambda: len(seqs(store)), N, what="all rows")
    finally:
        service.stop()
    assert seqs(store) == list(range(N))
    with store.connect() as conn:
        statuses: list[Any] = list(
            conn.execute(
                select(data_source_sync_history.c.sync_status).where(
                    data_source_sync_history.c.source_id == "crash"
                )
            ).scalars()
        )
    assert statuses.count("running") == 0
    assert "success" in statuses and "failed" in statuses  # the killed window: interrupted
