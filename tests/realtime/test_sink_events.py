"""What a stream reports besides its records: events for the source's event log, and
time ranges it could not read, which the history row of its next window lists."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from factorysync import services
from factorysync.connectors import registry
from factorysync.connectors.base import Batch, Connector, ReadRequest, Sink
from factorysync.realtime.service import GAP_EVENT, RealtimeService
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import infolog
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.waiting import wait_until

DOWN_FROM = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
DOWN_TO = DOWN_FROM + timedelta(seconds=42)


class GappyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    machine: str = Field(description="Machine id stamped on every message")


class GappyConnector(Connector):
    """Two messages, a gap in which the machine did not answer, an event, two more."""

    type_name = "gappy"
    config_model = GappyConfig
    polls = False
    streams = True

    def _check(self) -> str:
        return "ready"

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        raise NotImplementedError("a stream")

    def subscribe(self, sink: Sink, stop: threading.Event) -> None:
        machine = self.config.machine
        sink.status(None, subscribed=machine)
        sink.put([{"machine": machine, "seq": 0}, {"machine": machine, "seq": 1}])
        sink.gap(DOWN_FROM, DOWN_TO, f"{machine} did not answer")
        sink.event("device.dead", f"{machine} declared dead", level="warning", details={"m": 1})
        sink.put([{"machine": machine, "seq": 2}, {"machine": machine, "seq": 3}])
        stop.wait()


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def gappy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.BUILTIN, "gappy", f"{__name__}:GappyConnector")


def test_a_gap_and_an_event_reach_the_event_log_and_the_history(gappy: None, store: Store) -> None:
    services.create_source(
        store,
        {
            "source_id": "press_gappy",
            "name": "Press",
            "source_type": "gappy",
            "connections": [{"connection_config": {"machine": "P-1"}}],
            "mappings": [
                {
                    "target_table": "gappy_rows",
                    "sync_strategy": "realtime",
                    "mapping_config": {"primary_key": ["machine", "seq"]},
                }
            ],
        },
    )
    service = RealtimeService(store, file_watch=False)

    def landed() -> int:
        with store.connect() as conn:
            try:
                return len(read_rows(conn, "gappy_rows"))
            except Exception:  # no flush yet: the table does not exist
                return 0

    try:
        service.reconcile()
        assert "press_gappy" in service.workers, service.failed
        wait_until(lambda: landed() == 4, what="the four records written")
    finally:
        service.stop()  # closes the history window

    with store.connect() as conn:
        events = {
            r.event: r
            for r in conn.execute(select(infolog).where(infolog.c.source_id == "press_gappy"))
        }
        windows = conn.execute(
            select(hist_t.c.sync_status, hist_t.c.details).where(
                hist_t.c.source_id == "press_gappy"
            )
        ).all()
    gap = events[GAP_EVENT]
    assert gap.level == "warning" and "P-1 did not answer" in gap.message
    assert gap.details["from"] == DOWN_FROM.isoformat()
    assert gap.details["to"] == DOWN_TO.isoformat()
    dead = events["device.dead"]
    assert dead.level == "warning" and dead.message == "P-1 declared dead"
    listed = [g for _, details in windows for g in (details or {}).get("gaps", [])]
    assert listed == [
        {"from": DOWN_FROM.isoformat(), "to": DOWN_TO.isoformat(), "reason": "P-1 did not answer"}
    ]
    assert {status for status, _ in windows} == {"success"}
