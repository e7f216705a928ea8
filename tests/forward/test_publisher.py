"""The publisher against a real nats-server with JetStream: every change delivered as
the forwarding format says, a re-publish after a crash de-duplicated, changes waiting in
the outbox while the uplink is down, and the URL's password never shown."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from factorysync import services
from factorysync.forward import forward_status
from factorysync.forward.lease import lease_holder
from factorysync.forward.outbox import Outbox
from factorysync.forward.publisher import Publisher
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.conftest import run_cli
from tests.forward.central_helpers import STREAM, NatsServer
from tests.forward.plant_helpers import (
    PASSWORD,
    entries,
    forwarding_store,
    json_source,
    machines,
    register,
    sync,
)
from tests.waiting import wait_until

SUBJECTS = "factorysync.>"


def with_password(url: str) -> str:
    return url.replace("nats://", f"nats://plant:{PASSWORD}@")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "hub")
    yield server
    server.stop()


@pytest.fixture
def fstore(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, hub: NatsServer
) -> Iterator[Store]:
    with forwarding_store(monkeypatch, with_password(hub.url), "production") as store:
        yield store


@pytest.fixture
def leaf(tmp_path: Path, hub: NatsServer) -> Iterator[NatsServer]:
    """The plant's own server: a leaf node of the hub, without JetStream."""
    server = NatsServer(tmp_path / "leaf", jetstream=False, hub_leaf_port=hub.leaf_port)
    yield server.start()
    server.stop()


@pytest.fixture
def leaf_store(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, leaf: NatsServer
) -> Iterator[Store]:
    with forwarding_store(monkeypatch, with_password(leaf.url), "production") as store:
        yield store


def publisher(store: Store) -> Publisher:
    return Publisher(store, ack_wait_s=5.0, backoff_s=(0.1, 1.0), poll_s=0.05)


def read_stream(url: str) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    """Every message of the stream, in order, through a JetStream consumer."""

    async def read() -> list[tuple[str, dict[str, str], dict[str, Any]]]:
        import nats

        nc = await nats.connect(url)
        try:
            stored = (await nc.jsm().stream_info(STREAM)).state.messages
            js = nc.jetstream()
            sub = await js.pull_subscribe(SUBJECTS, stream=STREAM)
            found: list[tuple[str, dict[str, str], dict[str, Any]]] = []
            deadline = asyncio.get_running_loop().time() + 60
            while len(found) < stored and asyncio.get_running_loop().time() < deadline:
                try:
                    batch = await sub.fetch(100, timeout=2)
                except TimeoutError:
                    continue
                for msg in batch:
                    found.append((msg.subject, dict(msg.headers or {}), orjson.loads(msg.data)))
                    await msg.ack()
            return found
        finally:
            await nc.close()

    return asyncio.run(read())


def make_stream(url: str) -> None:
    """The stream as the central side makes it (the JetStream API does not cross a leaf
    node without JetStream domains, so the plant's publisher cannot make it there)."""

    async def make() -> None:
        import nats
        from nats.js.api import StorageType

        nc = await nats.connect(url)
        try:
            await nc.jsm().add_stream(
                name=STREAM,
                subjects=[SUBJECTS],
                storage=StorageType.FILE,
                duplicate_window=24 * 3600,
            )
        finally:
            await nc.close()

    asyncio.run(make())


def stream_messages(url: str) -> int:
    async def count() -> int:
        import nats

        nc = await nats.connect(url)
        try:
            info = await nc.jsm().stream_info(STREAM)
            return int(info.state.messages)
        finally:
            await nc.close()

    return asyncio.run(count())


def drained(store: Store, pub: Publisher) -> bool:
    return not entries(store)


def replica(messages: list[tuple[str, dict[str, str], dict[str, Any]]]) -> dict[Any, Any]:
    """The central table the messages make, applied in stream order."""
    table: dict[Any, Any] = {}
    for _, _, body in messages:
        names = list(body["columns"])
        at = [names.index(k) for k in body["key"]]
        for row in body["rows"]:
            if body["op"] == "delete":
                table.pop((body["source_id"], *row), None)
            else:
                table[(body["source_id"], *(row[i] for i in at))] = dict(
                    zip(names, row, strict=True)
                )
    return table


def test_every_change_is_delivered_as_the_format_says(
    fstore: Store, hub: NatsServer, data_dir: Path
) -> None:
    hub.start()
    path = data_dir / "m.json"
    register(fstore, json_source("line1", path, "production"))
    first = sync(fstore, "line1", path, machines(30))
    changed = [r for r in machines(30) if r["machine"] not in ("M-010", "M-011")]
    changed[3]["qty"] = 999
    second = sync(fstore, "line1", path, changed)
    pub = publisher(fstore)
    pub.start()
    try:
        wait_until(
            lambda: drained(fstore, pub), what="the outbox emptied", state=pub.state.snapshot
        )
    finally:
        pub.stop()

    messages = read_stream(hub.url)
    # Both runs were in the outbox when it was published: the first run's item sends the
    # rows that still carry its run id (the deleted and the changed ones are not).
    assert [(m[2]["op"], m[2]["run_id"], len(m[2]["rows"])) for m in messages] == [
        ("rows", first.run_id, 27),
        ("delete", second.run_id, 2),
        ("rows", second.run_id, 1),
    ]
    subject, headers, body = messages[0]
    assert subject == "factorysync.plant-a.production"
    assert re.fullmatch(r"[0-9a-f]{64}", headers["Nats-Msg-Id"]) and headers["Fs-Format"] == "1"
    assert len({m[1]["Nats-Msg-Id"] for m in messages}) == 3
    assert (body["v"], body["site"], body["table"], body["source_id"]) == (
        1,
        "plant-a",
        "production",
        "line1",
    )
    assert body["key"] == ["machine"] and isinstance(body["outbox_seq"], int)
    assert body["columns"] == {
        "machine": "string",
        "qty": "integer",
        "oee": "float",
        "running": "boolean",
        "ts": "datetime",
        "_row_hash": "string",
        "_run_id": "integer",
        "_synced_at": "datetime",
        "_deleted_at": "datetime",
    }
    assert body["published_at"].endswith("Z")
    assert messages[1][2]["rows"] == [["M-010"], ["M-011"]]

    # Applied in stream order, the messages make the plant's table.
    with fstore.connect() as conn:
        plant = {(r["_source_id"], r["machine"]): r for r in read_rows(conn, "production")}
    central = replica(messages)
    assert set(central) == set(plant)
    assert all(central[k]["_row_hash"] == plant[k]["_row_hash"] for k in plant)
    assert all(central[k]["qty"] == plant[k]["qty"] for k in plant)
    assert forward_status(fstore)["outbox_depth"] == 0  # type: ignore[index]


class _Crash(Exception):
    pass


def test_a_republish_after_a_crash_is_deduplicated(
    fstore: Store, hub: NatsServer, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.start()
    path = data_dir / "m.json"
    register(fstore, json_source("line1", path, "production"))
    sync(fstore, "line1", path, machines(2500))  # three messages of at most 1,000 rows

    # The process dies between the acknowledged publish and the outbox cleanup.
    first = publisher(fstore)
    done = Outbox.done
    crashed: list[int] = []

    def crash(self: Outbox, works: Any) -> None:
        crashed.append(len(works))
        first._stop.set()
        raise _Crash("killed before the outbox was emptied")

    monkeypatch.setattr(Outbox, "done", crash)
    first.start()
    wait_until(lambda: crashed, what="the publish before the crash")
    first.stop()
    assert stream_messages(hub.url) == 3
    assert entries(fstore) == [("production", "line1", "rows")]

    # Restarted: the same batches again, dropped by JetStream as duplicates.
    monkeypatch.setattr(Outbox, "done", done)
    second = publisher(fstore)
    second.start()
    try:
        wait_until(lambda: drained(fstore, second), what="the outbox emptied")
    finally:
        second.stop()
    assert stream_messages(hub.url) == 3
    messages = read_stream(hub.url)
    assert sum(len(m[2]["rows"]) for m in messages) == 2500


def test_changes_wait_while_the_uplink_is_down_and_go_when_it_is_back(
    leaf_store: Store,
    leaf: NatsServer,
    hub: NatsServer,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The publisher's server (the leaf) is up; the hub with the stream is down at first.
    store = leaf_store
    caplog.set_level(logging.DEBUG)
    path = data_dir / "m.json"
    register(store, json_source("line1", path, "production"))
    sync(store, "line1", path, machines(20))
    pub = publisher(store)
    pub.start()
    try:
        wait_until(lambda: pub.state.snapshot()["last_error"], what="a failed publish")
        sync(store, "line1", path, machines(25))
        state = wait_until(
            lambda: (s := forward_status(store)) and s["last_error"] and s,
            what="the error in status",
        )
        assert state["outbox_depth"] == 2 and not state["connected"]
        shown = orjson.dumps(services.status_summary(store), default=str).decode()
        assert '"forwarding"' in shown and PASSWORD not in shown
        assert state["url"] == f"nats://plant:***@127.0.0.1:{leaf.port}"

        hub.start()  # the uplink is back; the central side makes the stream
        make_stream(hub.url)
        wait_until(lambda: drained(store, pub), what="the outbox emptied", timeout=180)
    finally:
        pub.stop()
    messages = read_stream(hub.url)
    assert [len(m[2]["rows"]) for m in messages] == [20, 5]
    with store.connect() as conn:
        plant = {(r["_source_id"], r["machine"]) for r in read_rows(conn, "production")}
    assert set(replica(messages)) == plant
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert "forwarding to nats://plant:***@" in logged
    assert PASSWORD not in logged


def test_a_server_that_is_not_there_is_an_error_without_the_password(
    fstore: Store, hub: NatsServer, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = data_dir / "m.json"
    register(fstore, json_source("line1", path, "production"))
    sync(fstore, "line1", path, machines(3))
    pub = publisher(fstore)
    pub.start()
    try:
        error = wait_until(lambda: pub.state.snapshot()["last_error"], what="the error")
    finally:
        pub.stop()
    assert error.startswith("ForwardError: cannot connect to nats://plant:***@127.0.0.1:")
    assert PASSWORD not in error and entries(fstore) == [("production", "line1", "rows")]
    state = forward_status(fstore)
    assert state is not None and not state["connected"] and state["outbox_depth"] == 1
    assert PASSWORD not in "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in repr(fstore.settings) and PASSWORD not in pub.safe_url


def test_forward_drain_and_status_commands(fstore: Store, hub: NatsServer, data_dir: Path) -> None:
    path = data_dir / "m.json"
    register(fstore, json_source("line1", path, "production"))
    sync(fstore, "line1", path, machines(40))

    down = run_cli("forward", "--drain", "--timeout", "3")  # the server is not there yet
    assert down.returncode == 1 and "1 outbox entries left" in down.stderr
    shown = run_cli("status")
    assert "forwarding       nats://plant:***@127.0.0.1:" in shown.stdout
    assert "outbox 1" in shown.stdout

    hub.start()
    drained_now = run_cli("forward", "--drain", "--timeout", "120")
    assert drained_now.returncode == 0, drained_now.stderr
    assert "outbox empty" in drained_now.stdout and entries(fstore) == []
    assert stream_messages(hub.url) == 1
    for proc in (down, shown, drained_now):
        assert PASSWORD not in proc.stdout + proc.stderr


def test_a_second_publisher_stands_by_and_takes_over_when_the_first_stops(
    fstore: Store, hub: NatsServer, data_dir: Path
) -> None:
    """`run` with FORWARD_URL beside `forward`: one of them publishes, never both."""
    hub.start()
    path = data_dir / "m.json"
    register(fstore, json_source("line1", path, "production"))
    first, second = publisher(fstore), publisher(fstore)
    first.start()
    try:
        wait_until(lambda: lease_holder(fstore) == first.lease.owner, what="the first holding")
        second.start()
        wait_until(
            lambda: second.state.snapshot()["standby_for"] == first.lease.owner,
            what="the second standing by",
            state=second.state.snapshot,
        )
        sync(fstore, "line1", path, machines(30))
        wait_until(lambda: drained(fstore, first), what="the outbox emptied")
        assert first.state.snapshot()["published_messages"] == 1
        assert second.state.snapshot()["published_messages"] == 0
        shown = forward_status(fstore)
        assert shown is not None and shown["publisher"] == first.lease.owner
    finally:
        first.stop()
    # Released on a clean stop: the one standing by publishes from now on.
    try:
        wait_until(lambda: lease_holder(fstore) == second.lease.owner, what="the takeover")
        sync(fstore, "line1", path, machines(31))
        wait_until(lambda: drained(fstore, second), what="the outbox emptied again")
        assert second.state.snapshot()["standby_for"] is None
        assert second.state.snapshot()["published_messages"] == 1
    finally:
        second.stop()
    assert stream_messages(hub.url) == 2
    assert lease_holder(fstore) is None
