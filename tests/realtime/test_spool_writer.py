"""The writer's spool path, without subprocesses: a store outage (a private PostgreSQL
cluster crashed and started again) is spooled, acknowledged and written back in order,
exactly once; a backlog left by a previous run is written first; a full spool stops
acknowledging (a push gets 503) and its time is recorded as a gap; status shows the depth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from factorysync import services
from factorysync.alerts import monitor
from factorysync.alerts.monitor import AlertMonitor
from factorysync.api.ingest import IngestHub, IngestRefused
from factorysync.realtime.backlog import MARK_PREFIX
from factorysync.realtime.leftovers import LeftoverDrains
from factorysync.realtime.spools import close_process_spools, process_spool
from factorysync.realtime.stream import Feed
from factorysync.realtime.writer import GAP_EVENT, Incoming, MicroBatchWriter
from factorysync.settings import Settings
from factorysync.store.schema import alerts as alerts_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import data_source_sync_state as state_t
from factorysync.store.schema import infolog
from factorysync.store.store import Store
from tests.conftest import run_cli
from tests.realtime.conftest import mqtt_source, register
from tests.realtime.pg_cluster import PgCluster, pg_cluster  # noqa: F401
from tests.waiting import wait_until

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
SERIES = {
    "primary_key": ["machine_id", "seq"],
    "fields": {"machine_id": "machine_id", "seq": {"from": "seq", "type": "integer"}},
}
LATEST = {
    "primary_key": ["machine_id"],
    "fields": {"machine_id": "machine_id", "seq": {"from": "seq", "type": "integer"}},
}


def press_source(source_id: str = "press") -> dict[str, Any]:
    """A source writing a time series and the latest state per machine."""
    declared = mqtt_source(source_id, "127.0.0.1", 1883, ["plant/#"], table="press_series",
                           mapping=SERIES)  # fmt: skip
    declared["mappings"].append(
        {"target_table": "press_latest", "sync_strategy": "realtime", "mapping_config": LATEST}
    )
    return declared


def push_source(source_id: str = "press-push") -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": source_id,
        "source_type": "push",
        "connections": [{"connection_config": {"batch_ms": 20}}],
        "mappings": [
            {"target_table": "pushed", "sync_strategy": "realtime", "mapping_config": SERIES}
        ],
    }


def message(i: int, acked: list[int] | None = None, **extra: Any) -> Incoming:
    ack: Callable[[], None] | None = None
    if acked is not None:
        ack = lambda: acked.append(i)  # noqa: E731
    return Incoming([{"machine_id": f"M{i % 3}", "seq": i, **extra}], ack=ack,
                    state={"upto": i})  # fmt: skip


def rows(store: Store, table: str = "press_series") -> list[tuple[Any, ...]]:
    with store.connect() as conn:
        try:
            return list(
                conn.execute(text(f"SELECT machine_id, seq, _synced_at FROM {table} ORDER BY seq"))
            )
        except Exception:
            return []


def seqs(store: Store, table: str = "press_series") -> list[int]:
    return [r[1] for r in rows(store, table)]


def in_order(store: Store) -> None:
    """Per machine, the rows were written in the order of their messages."""
    by_machine: dict[str, list[Any]] = {}
    for machine, _seq, synced in rows(store):
        by_machine.setdefault(machine, []).append(synced)
    for synced in by_machine.values():
        assert synced == sorted(synced)


def history_totals(store: Store, source_id: str) -> tuple[int, int]:
    with store.connect() as conn:
        found = conn.execute(
            select(func.sum(hist_t.c.records_processed), func.sum(hist_t.c.records_inserted))
            .where(hist_t.c.source_id == source_id)
        ).one()  # fmt: skip
    return int(found[0] or 0), int(found[1] or 0)


def spooled(store: Store, source_id: str) -> int:
    spool = process_spool(store.settings).get(create=False)
    return 0 if spool is None else spool.depth(source_id)


@pytest.fixture(autouse=True)
def _spools_closed() -> Iterator[None]:
    yield
    close_process_spools()
    monitor.forget_spools()


@pytest.fixture
def pg_store(
    pg_cluster: PgCluster,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Store]:
    """A store on the private cluster (its spool in this test's folder)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    settings = Settings(
        database_url=pg_cluster.create_database("factorysync"),
        data_roots=str(tmp_path / "data"),
        secret_key="",
        secret_key_file=tmp_path / "factorysync.key",
        spool_dir=tmp_path / "spool",
    )
    store = Store(settings)
    services.init_store(store)
    yield store
    store.dispose()


def test_an_outage_is_spooled_acknowledged_and_written_back_in_order_once(
    pg_store: Store,
    pg_cluster: PgCluster,  # noqa: F811
) -> None:
    store = pg_store
    register(store, press_source())
    writer = MicroBatchWriter(store, "press", max_rows=20, max_age_s=0.05, window_s=3600)
    feed = Feed(writer, lambda: False)
    acked: list[int] = []

    def send(first: int, last: int) -> None:
        for i in range(first, last + 1):
            writer.put(message(i, acked))

    writer.open()
    writer.start()
    try:
        send(1, 50)
        wait_until(lambda: seqs(store) == list(range(1, 51)), what="the first rows")
        assert spooled(store, "press") == 0  # a healthy store: the spool is not touched

        pg_cluster.crash()
        send(51, 150)
        # Acknowledged once in the spool, while the store is away.
        wait_until(lambda: len(acked) == 150, what="every message acknowledged")
        assert spooled(store, "press") == 100 and acked == list(range(1, 151))
        assert "local spool" in (writer.last_error or "")
        # A stream subscribing now resumes from the newest spooled message's state.
        assert feed.state() == {"upto": 150}

        pg_cluster.start()
        send(151, 170)  # behind the backlog
        wait_until(lambda: seqs(store) == list(range(1, 171)), what="every row",
                   state=lambda: (spooled(store, "press"), writer.last_error))  # fmt: skip
        wait_until(lambda: spooled(store, "press") == 0, what="an empty spool")
        assert not writer.backlog.waiting

        # Stopping while the store is away: what is pending goes to the spool, acknowledged.
        pg_cluster.crash()
        writer.max_age_s = 3600.0
        send(171, 180)
        assert writer.pending() > 0
        writer.stop()
        assert acked == list(range(1, 181)) and spooled(store, "press") == 10
    finally:
        if not pg_cluster.running():
            pg_cluster.start()
        writer.stop()

    # What that writer left is written by a leftover writer.
    drains = LeftoverDrains(store)
    try:
        drains.check()
        wait_until(lambda: seqs(store) == list(range(1, 181)), what="the leftovers")
        wait_until(lambda: not drains.running["press"].running(), what="the drain to end")
    finally:
        drains.stop()
    assert spooled(store, "press") == 0
    in_order(store)
    assert [tuple(r[:2]) for r in rows(store, "press_latest")] == [("M1", 178), ("M2", 179),
                                                                    ("M0", 180)]  # fmt: skip
    processed, inserted = history_totals(store, "press")
    assert processed == 180  # each message counted once
    assert inserted == 180 + 3  # the series rows and the three machines' latest rows
    with store.connect() as conn:
        keys = list(conn.execute(select(state_t.c.state_key, state_t.c.state)))
    marks = [state for key, state in keys if key.startswith(MARK_PREFIX)]
    assert marks == [{"seq": 130}]  # the 130 messages that went through the spool


@SQLITE_ONLY
def test_a_backlog_left_by_a_previous_run_is_written_first_and_only_once(store: Store) -> None:
    register(store, press_source())
    spool = process_spool(store.settings).get(create=True)
    assert spool is not None
    spool.append("press", [message(i) for i in range(1, 31)])

    # A writer commits part of the backlog, then dies before taking it out of the spool.
    first = MicroBatchWriter(store, "press", window_s=3600)
    first.open()
    assert first.backlog.waiting and first.spooled_state() == {"upto": 30}
    taken = first.backlog.take(10)
    first.backlog.written = lambda seq: None  # type: ignore[method-assign]  # the crash
    first.flush([Incoming(s.records, state=s.state, spool_seq=s.seq) for s in taken])
    first.stop()
    assert spooled(store, "press") == 30

    # The next writer drops what the store has (by the mark) and writes the rest first.
    second = MicroBatchWriter(store, "press", max_age_s=0.02, window_s=3600)
    second.open()
    assert spooled(store, "press") == 20
    assert Feed(second, lambda: False).state() == {"upto": 30}
    second.start()
    try:
        for i in range(31, 41):
            second.put(message(i))
        wait_until(lambda: seqs(store) == list(range(1, 41)), what="every row")
        wait_until(lambda: not second.backlog.waiting, what="the backlog written")
    finally:
        second.stop()
    in_order(store)
    assert [r[1] for r in rows(store, "press_latest")] == [38, 39, 40]
    assert history_totals(store, "press") == (40, 43)


def test_a_full_spool_refuses_pushes_and_its_time_is_a_gap(
    pg_store: Store,
    pg_cluster: PgCluster,  # noqa: F811
) -> None:
    store = pg_store
    store.settings = store.settings.model_copy(update={"spool_max_mb": 1})
    register(store, push_source())
    hub = IngestHub(store)
    pad = "p" * 2000
    accepted: list[int] = []
    try:
        assert hub.ingest("press-push", [{"machine_id": "P", "seq": 0}], 30).stored == 1
        accepted.append(0)
        pg_cluster.crash()
        refused: IngestRefused | None = None
        for n in range(1, 2000):
            batch = [{"machine_id": "P", "seq": n * 10 + k, "pad": pad} for k in range(10)]
            try:
                got = hub.ingest("press-push", batch, 5)
            except IngestRefused as exc:
                refused = exc
                break
            assert got.spooled == 10 and got.run_id is None
            accepted += [r["seq"] for r in batch]
        assert refused is not None and refused.status == 503
        assert "FACTORYSYNC_SPOOL_MAX_MB" in str(refused)
        with pytest.raises(IngestRefused, match="spool"):  # at once now
            hub.ingest("press-push", [{"machine_id": "P", "seq": 999_999}], 30)

        pg_cluster.start()
        wait_until(lambda: set(accepted) <= set(seqs(store, "pushed")), what="every accepted row")
        wait_until(lambda: spooled(store, "press-push") == 0, what="an empty spool")
        held = hub.writer_for("press-push").writer
        wait_until(lambda: not held.refusing(), what="the spool taking messages again")
    finally:
        if not pg_cluster.running():
            pg_cluster.start()
        hub.close()
    with store.connect() as conn:
        gaps = list(
            conn.execute(
                select(infolog.c.message).where(
                    infolog.c.source_id == "press-push", infolog.c.event == GAP_EVENT
                )
            ).scalars()
        )
        details = [d for d in conn.execute(select(hist_t.c.details)).scalars() if d]
    assert any("spool was full" in g for g in gaps)
    assert any("spool was full" in gap["reason"] for d in details for gap in d.get("gaps", []))

    # The spool crossed 80 % on the way: once the store is back the alert is recorded,
    # and resolved, the spool being empty again.
    AlertMonitor(store, channels=[]).check()
    with store.connect() as conn:
        found = conn.execute(
            select(alerts_t.c.rule, alerts_t.c.state, alerts_t.c.severity).where(
                alerts_t.c.source_id == "press-push"
            )
        ).all()
    assert [tuple(a) for a in found] == [("spool_filling", "resolved", "critical")]


@SQLITE_ONLY
def test_status_shows_what_waits_in_the_spool(store: Store, env: dict[str, str]) -> None:
    register(store, push_source())
    spool = process_spool(store.settings).get(create=True)
    assert spool is not None
    spool.append("press-push", [message(i) for i in range(7)])

    (listed,) = [s for s in services.sources(store) if s["source_id"] == "press-push"]
    live = listed["live"]
    assert live["spool_depth"] == 7 and live["messages_per_minute"] >= 7
    assert live["last_message_age_s"] is not None and live["last_message_age_s"] < 60
    summary = services.status_summary(store)
    assert [r["spool_depth"] for r in summary["realtime"]] == [7]

    shown = run_cli("source", "list", check=True)
    assert "7 spooled" in shown.stdout
