"""Messages handed to the writer many at a time (``put_many``, one read of a stream's
socket) give the same rows, rejects and acknowledgements as one at a time; the
acknowledgements of a flush that can go together are sent in one call."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text

from factorysync.connectors.mqtt_wire import MqttConfig, TopicTemplate, message_records, raw_message
from factorysync.realtime.incoming import Incoming, acknowledge
from factorysync.realtime.stream import Feed
from factorysync.realtime.writer import MicroBatchWriter
from factorysync.store.schema import data_source_quarantine
from factorysync.store.store import Store
from tests.realtime.conftest import mqtt_source, register
from tests.waiting import wait_until

MAPPING = {
    "primary_key": ["machine_id", "seq"],
    "fields": {
        "machine_id": "machine_id",
        "seq": {"from": "seq", "type": "integer"},
        "speed": {"from": "speed", "type": "integer"},
    },
}
PAYLOADS = [
    b'{"seq": 1, "speed": 5}',
    b'{"seq": 2, "speed": ',  # broken JSON: quarantined alone
    b'[{"seq": 3, "speed": 6}, {"seq": 4, "speed": 7}]',
    b'{"seq": 5, "speed": "fast"}',  # a value of the wrong type: refused by the mapping
    b"\xff\xfe",  # not UTF-8
    b'{"seq": 6, "speed": 8}',
]


def messages(acked: list[int]) -> list[tuple[list[Any], Any, str | None, Any]]:
    """The payloads as an MQTT subscription hands them over."""
    cfg = MqttConfig(host="127.0.0.1", topics=["plant/+/status"])
    template = TopicTemplate("plant/{machine_id}/status")
    out = []
    for n, payload in enumerate(PAYLOADS):
        topic = f"plant/M-{n % 2}/status"
        decoded = message_records(cfg, template, topic, payload)
        out.append(
            (
                decoded.records,
                raw_message(topic, payload),
                decoded.error,
                lambda n=n: acked.append(n),
            )
        )
    return out


def written(store: Store, table: str) -> tuple[list[tuple[Any, ...]], list[str]]:
    with store.connect() as conn:
        rows = conn.execute(text(f"SELECT machine_id, seq, speed FROM {table} ORDER BY seq")).all()
        rejects = conn.execute(
            select(data_source_quarantine.c.reasons).where(
                data_source_quarantine.c.source_id == table.replace("_", "-")
            )
        ).scalars().all()  # fmt: skip
    return [tuple(r) for r in rows], sorted(" ".join(r) for r in rejects)


@pytest.mark.parametrize("together", [True, False], ids=["put_many", "put"])
def test_many_at_once_gives_the_rows_and_rejects_of_one_at_a_time(
    store: Store, together: bool
) -> None:
    source = f"intake-{'many' if together else 'one'}"
    register(store, mqtt_source(source, "127.0.0.1", 1883, ["plant/+/status"], mapping=MAPPING))
    writer = MicroBatchWriter(store, source, max_rows=100, max_age_s=0.01, window_s=3600)
    feed = Feed(writer, lambda: False)
    writer.start()
    acked: list[int] = []
    try:
        batch = messages(acked)
        if together:
            feed.put_many(batch)
        else:
            for records, raw, error, ack in batch:
                feed.put(records, raw=raw, error=error, ack=ack)
        wait_until(lambda: len(acked) == len(PAYLOADS), what="every message acknowledged")
    finally:
        writer.stop()
    assert feed.received == len(PAYLOADS)
    assert sorted(acked) == list(range(len(PAYLOADS)))
    rows, rejects = written(store, source.replace("-", "_"))
    assert rows == [("M-0", 1, 5), ("M-0", 3, 6), ("M-0", 4, 7), ("M-1", 6, 8)]
    assert len(rejects) == 3
    assert any("not valid JSON" in r for r in rejects)
    assert any("not UTF-8" in r for r in rejects)
    assert any("speed" in r for r in rejects)


class Group:
    """Acknowledgements sent together: records each call."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, acks: list[Any]) -> None:
        self.calls.append([a.mid for a in acks])


class GroupAck:
    def __init__(self, mid: int, together: Group) -> None:
        self.mid = mid
        self.together = together


def test_acknowledgements_that_can_go_together_are_sent_in_one_call() -> None:
    first, second = Group(), Group()
    alone: list[str] = []

    def failing() -> None:
        raise ConnectionError("gone")

    items = [
        Incoming([], ack=GroupAck(1, first)),
        Incoming([], ack=lambda: alone.append("a")),
        Incoming([], ack=GroupAck(2, second)),
        Incoming([], ack=failing),  # logged; the others still go out
        Incoming([], ack=GroupAck(3, first)),
        Incoming([]),  # nothing to acknowledge
        Incoming([], ack=lambda: alone.append("b")),
    ]
    acknowledge(items, "line-1")
    assert first.calls == [[1, 3]]
    assert second.calls == [[2]]
    assert alone == ["a", "b"]
