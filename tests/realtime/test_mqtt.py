"""MQTT sources against the real local Mosquitto broker (and a private one)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from factorysync.engine.scheduler import Scheduler
from factorysync.realtime.service import RealtimeService
from factorysync.store.schema import (
    data_source_quarantine,
    data_source_registry,
    data_source_sync_history,
)
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.realtime.conftest import PrivateBroker, Publisher, mqtt_source, register
from tests.waiting import PATIENCE, wait_for_value, wait_until

STATUS_MAPPING = {
    "primary_key": ["machine_id"],
    "fields": {
        "machine_id": "machine_id",
        "line": "line",
        "state": "state",
        "speed": {"from": "speed", "type": "float"},
        "seq": {"from": "seq", "type": "integer"},
    },
    "validate": [{"field": "speed", "rule": "min", "value": 0}],
}


@pytest.fixture
def service(store: Store) -> Iterator[RealtimeService]:
    svc = RealtimeService(store, file_watch=False)
    yield svc
    svc.stop()


def started(service: RealtimeService, source_id: str) -> Any:
    service.reconcile()
    assert source_id in service.workers, service.failed
    subscriber = service.workers[source_id][1].subscriber  # type: ignore[attr-defined]
    assert subscriber.connected.wait(PATIENCE), "subscriber did not connect"
    return subscriber


def rows(store: Store, table: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        try:
            return read_rows(conn, table)
        except Exception:
            return []


def windows(store: Store, source_id: str) -> list[Any]:
    with store.connect() as conn:
        return list(
            conn.execute(
                select(data_source_sync_history).where(
                    data_source_sync_history.c.source_id == source_id
                )
            )
            .mappings()
            .all()
        )


def quarantined(store: Store, source_id: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(data_source_quarantine).where(
                    data_source_quarantine.c.source_id == source_id
                )
            ).mappings()
        ]


def test_wildcards_and_topic_template_upsert_latest_state(
    store: Store,
    service: RealtimeService,
    broker: tuple[str, int],
    publisher: Publisher,
    topic_root: str,
) -> None:
    register(
        store,
        mqtt_source(
            "line-status",
            *broker,
            [f"{topic_root}/plant/line-a/+/status", f"{topic_root}/plant/line-b/#"],
            topic_template=f"{topic_root}/plant/{{line}}/{{machine_id}}/status",
            table="machine_realtime_status",
            mapping=STATUS_MAPPING,
        ),
    )
    started(service, "line-status")
    publisher.publish_many(
        [
            (f"{topic_root}/plant/line-a/M-1/status", {"state": "run", "speed": 10, "seq": 1}),
            (f"{topic_root}/plant/line-a/M-2/status", {"state": "idle", "speed": 0, "seq": 1}),
            (f"{topic_root}/plant/line-b/M-3/status", {"state": "run", "speed": 12.5, "seq": 1}),
            # Outside every filter: never received.
            (f"{topic_root}/plant/line-c/M-4/status", {"state": "run", "speed": 3, "seq": 1}),
            (f"{topic_root}/other/line-a/M-9/status", {"state": "run", "speed": 1, "seq": 1}),
        ]
    )
    wait_for_value(lambda: len(rows(store, "machine_realtime_status")), 3, what="3 machines")
    publisher.publish(
        f"{topic_root}/plant/line-a/M-1/status", {"state": "stop", "speed": 0, "seq": 2}
    )

    def settled() -> list[dict[str, Any]] | None:
        got = rows(store, "machine_realtime_status")
        return got if any(r["seq"] == 2 for r in got) else None

    got = {r["machine_id"]: r for r in wait_until(settled, what="M-1 at seq 2")}
    assert got["M-1"]["state"] == "stop" and got["M-1"]["line"] == "line-a"
    assert got["M-3"]["speed"] == 12.5 and got["M-3"]["line"] == "line-b"
    assert set(got) == {"M-1", "M-2", "M-3"}

    # A repeated message changes nothing; the window counts say so exactly. (A slow
    # machine may spread the messages over more than one history window: the counts
    # add up across them.)
    publisher.publish(
        f"{topic_root}/plant/line-a/M-1/status", {"state": "stop", "speed": 0, "seq": 2}
    )

    def totals() -> tuple[int, int, int, int]:
        runs = windows(store, "line-status")
        return (
            sum(r["records_processed"] for r in runs),
            sum(r["records_inserted"] for r in runs),
            sum(r["records_updated"] for r in runs),
            sum(r["records_rejected"] for r in runs),
        )

    wait_until(lambda: totals()[0] == 5, what="5 messages counted", state=totals)
    service.stop()
    runs = windows(store, "line-status")
    assert {(r["sync_type"], r["sync_status"]) for r in runs} == {("realtime", "success")}
    assert totals() == (5, 3, 1, 0)


def test_malformed_payloads_are_quarantined_with_the_reason(
    store: Store,
    service: RealtimeService,
    broker: tuple[str, int],
    publisher: Publisher,
    topic_root: str,
) -> None:
    register(
        store,
        mqtt_source(
            "bad-payloads",
            *broker,
            [f"{topic_root}/m/+"],
            topic_template=f"{topic_root}/m/{{machine_id}}",
            mapping=STATUS_MAPPING,
        ),
    )
    started(service, "bad-payloads")
    publisher.publish_many(
        [
            (f"{topic_root}/m/M-1", b'{"state": "run", "speed": '),  # broken JSON
            (f"{topic_root}/m/M-2", b"\xff\xfe\x00"),  # not UTF-8
            (f"{topic_root}/m/M-3", {"state": "run", "speed": -5, "seq": 1}),  # rule
            (f"{topic_root}/m/M-4", {"state": "run", "speed": "fast", "seq": 1}),  # type
            (f"{topic_root}/m/M-5", b"42.5"),  # a number: becomes field 'value'
            (f"{topic_root}/m/M-6", {"state": "run", "speed": 7, "seq": 1}),  # fine
        ]
    )
    bad = wait_until(
        lambda: (q := quarantined(store, "bad-payloads")) and len(q) == 4 and q, what="4 rejects"
    )
    reasons = {
        (q["record"].get("machine_id") or q["record"]["topic"].rsplit("/", 1)[1]): " ".join(
            q["reasons"]
        )
        for q in bad
    }
    assert "not valid JSON" in reasons["M-1"]
    assert "not UTF-8" in reasons["M-2"]
    assert "speed" in reasons["M-3"]
    assert "speed" in reasons["M-4"]
    wait_for_value(lambda: len(rows(store, "bad_payloads")), 2, what="two good rows")
    got = {r["machine_id"]: r for r in rows(store, "bad_payloads")}
    assert got["M-6"]["speed"] == 7.0
    assert got["M-5"]["state"] is None


def test_qos1_messages_published_while_stopped_arrive_after_restart(
    store: Store, broker: tuple[str, int], publisher: Publisher, topic_root: str
) -> None:
    register(
        store,
        mqtt_source(
            "persist",
            *broker,
            [f"{topic_root}/ts/#"],
            client_id=f"fs-{topic_root.rsplit('/', 1)[1]}",
            mapping={"primary_key": ["machine", "seq"]},
        ),
    )
    first = RealtimeService(store, file_watch=False)
    started(first, "persist")
    publisher.publish_many([(f"{topic_root}/ts/a", {"machine": "A", "seq": i}) for i in range(50)])
    wait_for_value(lambda: len(rows(store, "persist")), 50, what="first 50 rows")
    first.stop()

    # Published while no factorysync is running: the broker queues them for the session.
    publisher.publish_many(
        [(f"{topic_root}/ts/a", {"machine": "A", "seq": i}) for i in range(50, 250)]
    )
    second = RealtimeService(store, file_watch=False)
    try:
        started(second, "persist")
        wait_for_value(lambda: len(rows(store, "persist")), 250, what="all 250 rows")
    finally:
        second.stop()
    assert sorted(r["seq"] for r in rows(store, "persist")) == list(range(250))


def test_broker_restart_mid_stream_loses_nothing(
    store: Store, private_broker: PrivateBroker, topic_root: str
) -> None:
    register(
        store,
        mqtt_source(
            "restart",
            "127.0.0.1",
            private_broker.port,
            [f"{topic_root}/#"],
            mapping={"primary_key": ["seq"]},
        ),
    )
    service = RealtimeService(store, file_watch=False)
    pub = Publisher("127.0.0.1", private_broker.port)
    try:
        subscriber = started(service, "restart")
        pub.publish_many([(f"{topic_root}/x", {"seq": i}) for i in range(300)])
        # Stopped mid-stream, once the broker has handed all 300 over: some are still on
        # their way to the table, neither stored nor acknowledged. (Messages still queued
        # in the broker when it stops are the broker's to keep: Mosquitto was seen to drop
        # a few of those across its own restart.)
        wait_until(
            lambda: subscriber.received >= 300,
            what="300 messages received",
            state=lambda: subscriber.received,
        )
        private_broker.stop()
        wait_until(lambda: not subscriber.connected.is_set(), what="disconnect noticed")
        with store.connect() as conn:
            error = conn.execute(
                select(data_source_registry.c.last_error).where(
                    data_source_registry.c.source_id == "restart"
                )
            ).scalar_one()
        assert error and "lost MQTT broker" in error
        private_broker.start()
        assert subscriber.connected.wait(PATIENCE), "no reconnect"
        wait_until(lambda: pub.client.is_connected(), what="publisher reconnect")
        pub.publish_many([(f"{topic_root}/x", {"seq": i}) for i in range(300, 400)])
        try:
            wait_for_value(lambda: len(rows(store, "restart")), 400, what="400 rows")
        except AssertionError:
            have = {r["seq"] for r in rows(store, "restart")}
            raise AssertionError(
                f"missing seq: {sorted(set(range(400)) - have)}; the subscriber received "
                f"{subscriber.received} message(s)"
            ) from None
    finally:
        pub.close()
        service.stop()
    assert sorted(r["seq"] for r in rows(store, "restart")) == list(range(400))
    with store.connect() as conn:
        error = conn.execute(
            select(data_source_registry.c.last_error).where(
                data_source_registry.c.source_id == "restart"
            )
        ).scalar_one()
    assert error is None


def test_scheduler_leaves_realtime_sources_to_the_service(
    store: Store, broker: tuple[str, int], topic_root: str
) -> None:
    register(
        store,
        mqtt_source("sched-skip", *broker, [f"{topic_root}/#"], mapping={"primary_key": ["k"]}),
    )
    assert Scheduler(store).due() == []
