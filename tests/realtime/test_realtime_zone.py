"""Realtime sources read payload timestamps without an offset as a batch sync of them
would: in the mapping field's own ``timezone``, else the connection's, else the site's
zone, else UTC; and in the same zone whichever writer stores the rows (the stream's own,
a push's, a drain of what a previous run left in the spool)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from factorysync.alerts import monitor
from factorysync.api import ingest
from factorysync.api.ingest import IngestHub
from factorysync.connectors import registry
from factorysync.connectors.base import Batch, Connector, ReadRequest, Sink
from factorysync.connectors.registry import open_connection
from factorysync.errors import ConfigError
from factorysync.intake import parse_declarations
from factorysync.realtime.leftovers import LeftoverDrains
from factorysync.realtime.service import RealtimeService
from factorysync.realtime.spools import close_process_spools, process_spool
from factorysync.realtime.target import source_zone
from factorysync.realtime.writer import Incoming
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.registry_save import apply_declarations
from factorysync.store.store import Store
from tests.realtime.conftest import Publisher, mqtt_source
from tests.waiting import PATIENCE, wait_until

NAIVE = "2026-03-01T08:00:00"  # 08:00 wherever the machine is
SITES = [
    {"name": "jakarta", "time_zone": "Asia/Jakarta"},  # UTC+7
    {"name": "bare"},  # no zone: UTC
]
MAPPING = {
    "primary_key": ["machine_id"],
    "fields": {
        "machine_id": "machine_id",
        "ts": {"from": "ts", "type": "datetime"},
        # A field's own zone wins over the connection's and the site's (EST: UTC-5).
        "ts_ny": {"from": "ts", "type": "datetime", "timezone": "America/New_York"},
        # A timestamp with an offset is stored as it says.
        "ts_offset": {"from": "ts_offset", "type": "datetime"},
    },
}
PAYLOAD = {"ts": NAIVE, "ts_offset": "2026-03-01T08:00:00+02:00"}


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 1, hour, minute, tzinfo=UTC)


def declare(store: Store, sources: list[dict[str, Any]], sites: list[dict[str, Any]]) -> None:
    found = parse_declarations({"sites": sites, "sources": sources})
    with store.begin() as conn:
        apply_declarations(conn, found.sources, store.box, sites=found.sites)


def sited(declared: dict[str, Any], site: str) -> dict[str, Any]:
    return {
        **declared,
        "site": site,
        "mappings": [{**declared["mappings"][0], "mapping_config": MAPPING}],
    }


def stamps(store: Store, table: str) -> dict[str, dict[str, datetime | None]]:
    """The stored timestamps per machine, as UTC instants (SQLite keeps text)."""

    def instant(value: Any) -> datetime | None:
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    query = f"SELECT machine_id, ts, ts_ny, ts_offset FROM {table}"
    with store.connect() as conn:
        try:
            found = conn.execute(text(query)).all()
        except Exception:  # no flush yet: the table does not exist
            return {}
    return {
        m: {"ts": instant(a), "ts_ny": instant(b), "ts_offset": instant(c)} for m, a, b, c in found
    }


def landed(store: Store, table: str, machine: str) -> dict[str, datetime | None]:
    return wait_until(lambda: stamps(store, table).get(machine), what=f"{machine} in {table}")


@pytest.fixture
def service(store: Store) -> Iterator[RealtimeService]:
    svc = RealtimeService(store, file_watch=False)
    yield svc
    svc.stop()


@pytest.fixture(autouse=True)
def _spools_closed() -> Iterator[None]:
    yield
    close_process_spools()
    monitor.forget_spools()


def subscribed(service: RealtimeService, source_id: str, before: Any = None) -> Any:
    """Reconcile; the source's stream once its subscription is up (a new one, when
    ``before`` is the previous)."""
    service.reconcile()
    assert source_id in service.workers, service.failed
    stream: Any = service.workers[source_id][1]
    assert stream is not before, "the worker was not restarted"
    assert stream.subscriber.connected.wait(PATIENCE), "subscriber did not connect"
    return stream


def test_mqtt_naive_timestamps_are_read_in_the_site_zone_or_as_utc(
    store: Store,
    service: RealtimeService,
    broker: tuple[str, int],
    publisher: Publisher,
    topic_root: str,
) -> None:
    zoned = sited(
        mqtt_source(
            "zoned",
            *broker,
            [f"{topic_root}/zoned/+"],
            topic_template=f"{topic_root}/zoned/{{machine_id}}",
        ),
        "jakarta",
    )
    bare = sited(
        mqtt_source(
            "unzoned",
            *broker,
            [f"{topic_root}/unzoned/+"],
            topic_template=f"{topic_root}/unzoned/{{machine_id}}",
        ),
        "bare",
    )
    own = sited(
        mqtt_source(
            "own_zone",
            *broker,
            [f"{topic_root}/own/+"],
            topic_template=f"{topic_root}/own/{{machine_id}}",
            timezone="Europe/Berlin",  # the connection's own zone wins over the site's
        ),
        "jakarta",
    )
    declare(store, [zoned, bare, own], SITES)
    subscribed(service, "unzoned")
    subscribed(service, "own_zone")
    stream = subscribed(service, "zoned")

    publisher.publish(f"{topic_root}/zoned/M-1", PAYLOAD)
    publisher.publish(f"{topic_root}/unzoned/M-1", PAYLOAD)
    publisher.publish(f"{topic_root}/own/M-1", PAYLOAD)
    assert landed(store, "zoned", "M-1") == {
        "ts": at(1),  # 08:00 in Jakarta
        "ts_ny": at(13),  # the field's own zone wins
        "ts_offset": at(6),
    }
    assert landed(store, "unzoned", "M-1") == {"ts": at(8), "ts_ny": at(13), "ts_offset": at(6)}
    assert landed(store, "own_zone", "M-1") == {"ts": at(7), "ts_ny": at(13), "ts_offset": at(6)}

    # The site moves to another zone (UTC+8): the stream restarts and reads in it.
    declare(
        store, [zoned, bare, own], [{"name": "jakarta", "time_zone": "Asia/Makassar"}, SITES[1]]
    )
    subscribed(service, "zoned", before=stream)
    publisher.publish(f"{topic_root}/zoned/M-2", PAYLOAD)
    assert landed(store, "zoned", "M-2")["ts"] == at(0)
    assert stamps(store, "zoned")["M-1"]["ts"] == at(1)  # rows already stored stay


class ClockConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    machine: str
    timezone: str | None = None


class ClockConnector(Connector):
    """A streaming type whose connection_config takes a ``timezone``, as a plugin's may:
    one message with a naive timestamp."""

    type_name = "clock"
    config_model = ClockConfig
    polls = False
    streams = True

    def _check(self) -> str:
        return "ready"

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        raise NotImplementedError("a stream")

    def subscribe(self, sink: Sink, stop: threading.Event) -> None:
        machine = self.config.machine  # type: ignore[attr-defined]
        sink.status(None, subscribed=machine)
        sink.put([{"machine_id": machine, **PAYLOAD}])
        stop.wait()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.BUILTIN, "clock", f"{__name__}:ClockConnector")


def clock_source(source_id: str, site: str, **config: Any) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": source_id,
        "source_type": "clock",
        "site": site,
        "connections": [{"connection_config": {"machine": "C-1", **config}}],
        "mappings": [
            {"target_table": source_id, "sync_strategy": "realtime", "mapping_config": MAPPING}
        ],
    }


def test_the_connection_timezone_wins_over_the_site_zone(
    clock: None, store: Store, service: RealtimeService
) -> None:
    declare(
        store,
        [
            clock_source("own_zone", "jakarta", timezone="Europe/Berlin"),  # CET: UTC+1
            clock_source("site_zone", "jakarta"),
            clock_source("no_zone", "bare"),
        ],
        SITES,
    )
    for sid in ("own_zone", "site_zone", "no_zone"):
        subscribed(service, sid)
    assert landed(store, "own_zone", "C-1")["ts"] == at(7)
    assert landed(store, "site_zone", "C-1")["ts"] == at(1)
    assert landed(store, "no_zone", "C-1")["ts"] == at(8)
    assert all(landed(store, sid, "C-1")["ts_ny"] == at(13) for sid in ("own_zone", "site_zone"))

    # The zone a writer tells from the declaration is the connector's own.
    with store.connect() as conn:
        for sid, zone in (
            ("own_zone", "Europe/Berlin"),
            ("site_zone", "Asia/Jakarta"),
            ("no_zone", "UTC"),
        ):
            decl = declaration_of(get_source(conn, sid), store.box)
            connector = open_connection(decl.primary(), sid, store.settings)
            assert source_zone(decl) == connector.timezone == zone


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_writers_without_a_connector_read_in_the_same_zone(
    clock: None, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a previous run left in the spool is written by a drain, and a push by the
    ingest hub: neither has a connector, and both read as the stream does."""
    declared = [
        clock_source("drained", "jakarta"),
        clock_source("drained_own", "jakarta", timezone="Europe/Berlin"),
        {
            "source_id": "pushed",
            "name": "pushed",
            "source_type": "push",
            "site": "jakarta",
            "connections": [{"connection_config": {"batch_ms": 20}}],
            "mappings": [
                {
                    "target_table": "pushed",
                    "sync_strategy": "realtime",
                    "mapping_config": MAPPING,
                }
            ],
        },
    ]
    declared.append(
        {
            **declared[2],
            "source_id": "pushed_own",
            "connections": [{"connection_config": {"batch_ms": 20, "timezone": "Europe/Berlin"}}],
            "mappings": [{**declared[2]["mappings"][0], "target_table": "pushed_own"}],
        }
    )
    declare(store, declared, SITES)
    spool = process_spool(store.settings).get(create=True)
    assert spool is not None
    for sid in ("drained", "drained_own"):
        spool.append(sid, [Incoming([{"machine_id": "S-1", **PAYLOAD}], state={"n": 1})])
    drains = LeftoverDrains(store)
    try:
        drains.check()
        assert set(drains.running) == {"drained", "drained_own"}
        assert landed(store, "drained", "S-1") == {"ts": at(1), "ts_ny": at(13), "ts_offset": at(6)}
        assert landed(store, "drained_own", "S-1")["ts"] == at(7)
        wait_until(
            lambda: not any(w.running() for w in drains.running.values()), what="the drains to end"
        )
    finally:
        drains.stop()

    monkeypatch.setattr(ingest, "RECHECK_S", 0.0)  # the registry is asked at every push
    hub = IngestHub(store)
    try:
        machine = f"P-{uuid.uuid4().hex[:6]}"
        assert hub.ingest("pushed", [{"machine_id": machine, **PAYLOAD}], PATIENCE).stored == 1
        assert stamps(store, "pushed")[machine]["ts"] == at(1)
        assert hub.ingest("pushed_own", [{"machine_id": machine, **PAYLOAD}], PATIENCE).stored == 1
        assert stamps(store, "pushed_own")[machine]["ts"] == at(7)
        # The site's zone changes: the push writer is made again, in the new zone.
        declare(store, declared, [{"name": "jakarta", "time_zone": "Asia/Makassar"}, SITES[1]])
        later = f"P-{uuid.uuid4().hex[:6]}"
        assert hub.ingest("pushed", [{"machine_id": later, **PAYLOAD}], PATIENCE).stored == 1
    finally:
        hub.close()
    assert stamps(store, "pushed")[machine] == {"ts": at(1), "ts_ny": at(13), "ts_offset": at(6)}
    assert stamps(store, "pushed")[later] == {"ts": at(0), "ts_ny": at(13), "ts_offset": at(6)}


@pytest.mark.parametrize("source_type", ["mqtt", "push"])
def test_an_unknown_connection_zone_is_refused_when_declared(source_type: str) -> None:
    config: dict[str, Any] = {"timezone": "Asia/Atlantis"}
    if source_type == "mqtt":
        config |= {"host": "127.0.0.1", "topics": ["plant/#"]}
    source = {
        "source_id": "zoned",
        "name": "zoned",
        "source_type": source_type,
        "connections": [{"connection_config": config}],
        "mappings": [{"target_table": "zoned", "sync_strategy": "realtime"}],
    }
    with pytest.raises(ConfigError) as refused:
        parse_declarations({"sources": [source]})
    assert "connection_config.timezone" in str(refused.value)
    assert "unknown time zone 'Asia/Atlantis'" in str(refused.value)
