"""The store goes away for a minute while MQTT (QoS 1), OPC UA (10 Hz) and push sources
keep sending, and factorysync is killed in the middle of it.

``factorysync run`` runs as a real process on a PostgreSQL cluster of the test's own. The
cluster is stopped as a crash would stop it; the sources go on receiving into the local
spool (pushes are answered 200 from there); half-way through the outage factorysync gets
SIGKILL; the cluster comes back, factorysync is started again, and it writes what its
spool holds before anything newer. Then: every message the broker acknowledged, every
push answered 200 and every sample the OPC UA server recorded is in the target exactly
once, the latest state per key is the last one sent, the spool is empty, and the history
windows' inserted counts add up to the rows.

``FACTORYSYNC_TEST_OUTAGE_S`` shortens the outage (default 60 s) for a quick local run.

A broker acknowledges a message that no subscription matches yet and drops it (a
persistent session queues messages for the subscriptions it has), so the MQTT sender
starts once the source reports its subscription up: from then on every acknowledged
message must arrive. The ports of the cluster and of the API stay held while their
servers are down: the suite runs as two pytest processes, and the other one takes ports
found free all the time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import ProgrammingError

from factorysync import services
from factorysync.observability.infolog import SUBSCRIBED_EVENT
from factorysync.settings import Settings
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import infolog as infolog_t
from factorysync.store.store import Store
from tests.api.conftest import role_tokens
from tests.realtime.conftest import PrivateBroker, Publisher, free_port, mqtt_source, register
from tests.realtime.pg_cluster import PgCluster, pg_cluster  # noqa: F401
from tests.realtime.test_opcua import opcua_source
from tests.realtime.test_opcua_backfill import HistoryServer, Ticker, landed, no_duplicate_keys
from tests.waiting import PATIENCE, wait_until

OUTAGE_S = float(os.environ.get("FACTORYSYNC_TEST_OUTAGE_S", "60"))
UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE: no such table (yet)
OPCUA = "m101-opcua"
SERIES = {
    "primary_key": ["machine_id", "seq"],
    "fields": {"machine_id": "machine_id", "seq": {"from": "seq", "type": "integer"}},
}
LATEST = {
    "primary_key": ["machine_id"],
    "fields": {"machine_id": "machine_id", "seq": {"from": "seq", "type": "integer"}},
}


def two_tables(declared: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A time series of every message and the latest state per machine."""
    declared["mappings"] = [
        {"target_table": f"{prefix}_series", "sync_strategy": "realtime", "mapping_config": SERIES},
        {"target_table": f"{prefix}_latest", "sync_strategy": "realtime", "mapping_config": LATEST},
    ]
    return declared


class Service:
    """``factorysync run`` in a process of its own, started and killed by the test."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cwd / "factorysync.log"
        self.api = f"http://127.0.0.1:{env['FACTORYSYNC_API_PORT']}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "factorysync.cli", "run"],
                env={**os.environ, **self.env},
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self.healthy, what="factorysync run answering", state=self.tail)

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"factorysync run exited:\n{self.tail()}")
        try:
            return httpx.get(f"{self.api}/api/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(PATIENCE)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(PATIENCE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(PATIENCE)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


class PortHeld:
    """Keeps a stopped server's port from other processes until it starts again there.

    A restart must keep its port (its clients reconnect to it), and the other pytest
    process of the suite takes ports found free (``free_port``) all the time: the
    cluster's port, free for the whole outage, or the API's, free while factorysync is
    dead, could be handed out meanwhile and the restart would fail. A socket bound to the
    port, not listening, keeps ``bind(0)`` and outgoing connections off it while
    connecting to it is still refused, as to a stopped server. ``SO_REUSEADDR``: the
    stopped server's closed connections may linger on the port (TIME_WAIT)."""

    def __init__(self, port: int) -> None:
        self.sock: socket.socket | None = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1", port))
        except OSError:  # taken in the moment since it was free: the restart says so
            self.release()

    def release(self) -> None:
        """Free the port, just before its server starts again."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class MqttSender:
    """Publishes ``{"machine_id", "seq"}`` at QoS 1, 25 a second, to the broker."""

    def __init__(self, broker: tuple[str, int], topic: str) -> None:
        self.publisher = Publisher(*broker)
        self.topic = topic
        self.sent: list[tuple[int, Any]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self.done.wait(0.04):  # the pace of the messages
            n += 1
            payload = {"machine_id": f"M{n % 3}", "seq": n}
            self.sent.append((n, self.publisher.client.publish(self.topic, _json(payload), 1)))

    def stop(self) -> list[int]:
        """Stop; the messages the broker acknowledged (PUBACK)."""
        self.done.set()
        self.thread.join(PATIENCE)
        for _, info in self.sent:
            info.wait_for_publish(PATIENCE)
        self.publisher.close()
        return [n for n, info in self.sent if info.is_published()]


class Pusher:
    """Posts one record at a time to ``POST /api/ingest``, each until it is answered 200."""

    def __init__(self, api: str, source_id: str, token: str) -> None:
        self.url = f"{api}/api/ingest/{source_id}"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.acked: list[int] = []
        self.spooled = 0  # answers saying the records went to the spool
        self.answers: Counter[str] = Counter()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 1
        with httpx.Client(timeout=60) as client:
            while not self.done.wait(0.05):  # the pace of the pushes
                record = {"machine_id": f"S{n % 2}", "seq": n}
                try:
                    answer = client.post(self.url, json=record, headers=self.headers)
                except httpx.HTTPError as exc:
                    self.answers[type(exc).__name__] += 1
                    continue
                self.answers[str(answer.status_code)] += 1
                if answer.status_code == 200:
                    self.spooled += answer.json()["spooled"] > 0
                    self.acked.append(n)
                    n += 1

    def stop(self) -> list[int]:
        self.done.set()
        self.thread.join(PATIENCE)
        return list(self.acked)


def _json(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)


def table(store: Store, name: str) -> list[tuple[Any, ...]]:
    """``(machine_id, seq, _synced_at)`` of a target table, by seq; none before the
    first flush made the table. Any other failure is the test's: it is raised, rather
    than read as an empty table by a wait or an assertion."""
    with store.connect() as conn:
        try:
            return list(
                conn.execute(text(f"SELECT machine_id, seq, _synced_at FROM {name} ORDER BY seq"))
            )
        except ProgrammingError as exc:
            if getattr(exc.orig, "sqlstate", None) != UNDEFINED_TABLE:
                raise
            return []


def seqs(store: Store, name: str) -> list[int]:
    return [r[1] for r in table(store, name)]


def subscribed(store: Store, source_id: str) -> bool:
    """Whether the source's subscription came up (its ``realtime.subscribed`` event)."""
    with store.connect() as conn:
        found = conn.execute(
            select(func.count()).where(
                infolog_t.c.source_id == source_id, infolog_t.c.event == SUBSCRIBED_EVENT
            )
        ).scalar_one()
    return bool(found)


def spooled(settings: Settings) -> dict[str, int]:
    from factorysync.realtime.spools import spooled_by_source

    return {sid: s.messages for sid, s in spooled_by_source(settings).items() if s.messages}


def written_once_in_order(store: Store, prefix: str, acked: list[int]) -> None:
    """Every acknowledged message once in the series, written in the order sent per
    machine, and the latest state per machine the last one acknowledged."""
    rows = table(store, f"{prefix}_series")
    got = [r[1] for r in rows]
    assert len(got) == len(set(got))
    missing = sorted(set(acked) - set(got))
    assert not missing, f"{prefix}: {len(missing)} acknowledged message(s) missing: {missing[:10]}"
    synced: dict[str, list[Any]] = {}
    for machine, _seq, at in rows:
        synced.setdefault(machine, []).append(at)
    for machine, times in synced.items():
        assert times == sorted(times), f"{prefix}: {machine} written out of order"
    last: dict[str, int] = {}
    for machine, seq, _at in rows:
        last[machine] = max(last.get(machine, 0), seq)
    latest = {r[0]: r[1] for r in table(store, f"{prefix}_latest")}
    assert latest == last, f"{prefix}: the latest state is not the last message"


def inserted_add_up(store: Store, source_id: str, tables: list[str]) -> None:
    with store.connect() as conn:
        inserted = conn.execute(
            select(func.sum(hist_t.c.records_inserted)).where(hist_t.c.source_id == source_id)
        ).scalar_one()
        rows = sum(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables)
        running = conn.execute(
            select(func.count()).where(
                hist_t.c.source_id == source_id, hist_t.c.sync_status == "running"
            )
        ).scalar_one()
    assert (inserted, running) == (rows, 0), source_id


@pytest.fixture
def history_server(tmp_path: Path) -> Iterator[HistoryServer]:
    server = HistoryServer(tmp_path / "opcua-history.sqlite")
    server.start()
    yield server
    server.close()


@pytest.fixture
def cleanup() -> Iterator[list[Callable[[], None]]]:
    """Calls put here run when the test ends, however it ends."""
    calls: list[Callable[[], None]] = []
    yield calls
    for call in reversed(calls):
        call()


@pytest.mark.slow
def test_a_store_outage_and_a_kill_lose_and_duplicate_nothing(
    cleanup: list[Callable[[], None]],
    pg_cluster: PgCluster,  # noqa: F811
    private_broker: PrivateBroker,
    history_server: HistoryServer,
    topic_root: str,
    tmp_path: Path,
) -> None:
    (tmp_path / "data").mkdir()
    env = {
        "FACTORYSYNC_DATABASE_URL": pg_cluster.create_database("factorysync"),
        "FACTORYSYNC_DATA_ROOTS": str(tmp_path / "data"),
        "FACTORYSYNC_SECRET_KEY": "",
        "FACTORYSYNC_SECRET_KEY_FILE": str(tmp_path / "factorysync.key"),
        "FACTORYSYNC_SPOOL_DIR": str(tmp_path / "spool"),
        "FACTORYSYNC_API_HOST": "127.0.0.1",
        "FACTORYSYNC_API_PORT": str(free_port()),
        "FACTORYSYNC_REALTIME_RESCAN_S": "0.5",
        "FACTORYSYNC_LEASE_S": "10",
        "FACTORYSYNC_LOG_LEVEL": "INFO",
    }
    settings = Settings(**{k.removeprefix("FACTORYSYNC_").lower(): v for k, v in env.items()})
    store = Store(settings)
    cleanup.append(store.dispose)
    services.init_store(store)
    broker = ("127.0.0.1", private_broker.port)
    register(
        store,
        two_tables(mqtt_source("line-mqtt", *broker, [f"{topic_root}/#"]), "mqtt"),
        two_tables(
            {
                "source_id": "line-push",
                "name": "line-push",
                "source_type": "push",
                "connections": [{"connection_config": {"batch_ms": 20}}],
            },
            "push",
        ),
        opcua_source(history_server),
    )
    token = role_tokens(store)["operator"]
    service = Service(env, tmp_path)
    ticker: Ticker | None = None
    mqtt: MqttSender | None = None
    pusher: Pusher | None = None
    held_ports: list[PortHeld] = []
    try:
        service.start()
        wait_until(lambda: len(landed(store)) >= 2, what="the initial OPC UA values")
        # Published before the subscription is up, a message is acknowledged and dropped.
        wait_until(lambda: subscribed(store, "line-mqtt"), what="the MQTT subscription",
                   state=service.tail)  # fmt: skip
        ticker = Ticker(history_server)
        mqtt = MqttSender(broker, f"{topic_root}/press")
        pusher = Pusher(service.api, "line-push", token)
        wait_until(
            lambda: seqs(store, "mqtt_series") and seqs(store, "push_series")
            and len(landed(store)) > 10,
            what="data of every source", state=service.tail,
        )  # fmt: skip

        # The store goes away; the sources go on, into the spool.
        went = time.monotonic()
        pg_cluster.crash()
        store_port = PortHeld(pg_cluster.port)
        held_ports.append(store_port)
        wait_until(
            lambda: {"line-mqtt", "line-push", OPCUA} <= set(spooled(settings))
            and pusher.spooled > 0,
            what="every source spooling, pushes answered from the spool",
            state=lambda: (spooled(settings), pusher.answers, service.tail()),
        )  # fmt: skip
        metrics = httpx.get(
            f"{service.api}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert metrics.status_code == 200, metrics.text
        assert "factorysync_store_up 0" in metrics.text
        assert 'factorysync_spool_messages{source_id="line-mqtt",spool="spool"}' in metrics.text

        # Half-way through, factorysync is killed.
        wait_until(lambda: time.monotonic() - went >= OUTAGE_S / 2, what="half the outage")
        held = spooled(settings)
        service.kill()
        api_port = PortHeld(int(env["FACTORYSYNC_API_PORT"]))
        held_ports.append(api_port)
        wait_until(lambda: time.monotonic() - went >= OUTAGE_S, what="the whole outage")
        store_port.release()
        pg_cluster.start()
        api_port.release()
        service.start()

        # It writes what it spooled before anything newer, and goes on.
        wait_until(
            lambda: not spooled(settings), what="an empty spool",
            state=lambda: (spooled(settings), service.tail()),
        )  # fmt: skip
        sent = len(mqtt.sent), len(pusher.acked)
        wait_until(
            lambda: max(seqs(store, "mqtt_series"), default=0) > sent[0] + 25
            and max(seqs(store, "push_series"), default=0) > sent[1] + 10,
            what="messages sent after the restart written", state=service.tail,
        )  # fmt: skip
        ticker.stop()
        mqtt_acked, push_acked = mqtt.stop(), pusher.stop()
        wait_until(
            lambda: set(mqtt_acked) <= set(seqs(store, "mqtt_series"))
            and set(push_acked) <= set(seqs(store, "push_series"))
            and landed(store) == history_server.recorded(),
            what="every acknowledged message and every recorded sample",
            state=lambda: (
                sorted(set(mqtt_acked) - set(seqs(store, "mqtt_series")))[:10],
                sorted(set(push_acked) - set(seqs(store, "push_series")))[:10],
                len(history_server.recorded() - landed(store)),
                service.tail(),
            ),
        )  # fmt: skip
    finally:
        for port in held_ports:
            port.release()
        for stopping in (ticker, mqtt, pusher):
            if stopping is not None and not stopping.done.is_set():
                stopping.stop()
        service.stop()
    assert held["line-mqtt"] and held["line-push"] and held[OPCUA]
    assert not spooled(settings)
    written_once_in_order(store, "mqtt", mqtt_acked)
    written_once_in_order(store, "push", push_acked)
    no_duplicate_keys(store)
    inserted_add_up(store, "line-mqtt", ["mqtt_series", "mqtt_latest"])
    inserted_add_up(store, "line-push", ["push_series", "push_latest"])
    inserted_add_up(store, OPCUA, ["machine_signals"])
