"""HTTP push (``POST /api/ingest/{source_id}``) and the live stream (``GET
/api/stream/{target_table}``, Server-Sent Events), against SQLite and PostgreSQL.

The stream tests use a real uvicorn server on a loopback port (an event stream never
ends, so it cannot be read through the in-memory test client); the last one publishes to
the real local Mosquitto broker and expects each change on the stream, in order.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from sqlalchemy import select

from factorysync.api import create_app
from factorysync.realtime.service import RealtimeService
from factorysync.store import accounts as auth
from factorysync.store.schema import data_source_quarantine, data_source_sync_history
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.api.conftest import Api, machine_source, machines, role_tokens
from tests.conftest import write_json
from tests.realtime.conftest import Publisher, mqtt_source, register
from tests.waiting import PATIENCE, wait_until

PUSH_MAPPING = {
    "primary_key": ["machine_id"],
    "fields": {
        "machine_id": "machineId",
        "state": "state",
        "speed": {"from": "speed", "type": "float"},
    },
    "validate": [{"field": "speed", "rule": "min", "value": 0}],
}


def push_source(source_id: str = "press-push", **config: Any) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": "Press line (pushed)",
        "source_type": "push",
        "connections": [{"connection_config": config}],
        "mappings": [
            {
                "target_table": source_id.replace("-", "_"),
                "sync_strategy": "realtime",
                "mapping_config": PUSH_MAPPING,
            }
        ],
    }


def table_rows(store: Store, table: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return sorted(read_rows(conn, table), key=lambda r: str(r["machine_id"]))


@pytest.fixture
def pushed(api: Api) -> Api:
    created = api.post("/api/sources", json=push_source())
    assert created.status_code == 201, created.text
    return api


def scoped_token(store: Store, username: str, role: str, scopes: list[str]) -> str:
    with store.begin() as conn:
        if username not in {u["username"] for u in auth.list_users(conn)}:
            auth.create_user(conn, username, role)
        token, _ = auth.create_token(conn, username, scopes=scopes)
    return token


def test_pushed_records_are_stored_by_key_with_exact_answers(pushed: Api) -> None:
    api = pushed
    one = api.post("/api/ingest/press-push", json={"machineId": "P-1", "state": "run", "speed": 5})
    assert one.status_code == 200, one.text
    body = one.json()
    assert (body["received"], body["stored"], body["rejected"]) == (1, 1, 0)
    assert body["run_id"] is not None

    many = [{"machineId": f"P-{i}", "state": "idle", "speed": i} for i in range(1, 6)]
    many.append({"machineId": "P-9", "state": "run", "speed": -3})  # breaks the min rule
    answer = api.post("/api/ingest/press-push", json=many).json()
    assert (answer["received"], answer["stored"], answer["rejected"]) == (6, 5, 1)
    assert "speed" in answer["reasons"][0]

    got = table_rows(api.store, "press_push")
    assert [r["machine_id"] for r in got] == ["P-1", "P-2", "P-3", "P-4", "P-5"]
    assert got[0]["state"] == "idle" and got[0]["speed"] == 1.0  # the latest state of P-1

    # Sending the same records again stores nothing twice.
    again = api.post("/api/ingest/press-push", json=many[:5]).json()
    assert again["stored"] == 5
    assert len(table_rows(api.store, "press_push")) == 5

    with api.store.connect() as conn:
        refused = conn.execute(
            select(data_source_quarantine.c.record, data_source_quarantine.c.reasons).where(
                data_source_quarantine.c.source_id == "press-push"
            )
        ).all()
    assert len(refused) == 1 and refused[0].record["machineId"] == "P-9"

    # The data API serves what was pushed.
    page = api.get("/api/data/press_push?order=machine_id", role="viewer").json()
    assert [r["machine_id"] for r in page["items"]] == ["P-1", "P-2", "P-3", "P-4", "P-5"]

    api.client.app.state.ctx.ingest.close()  # closes the history window
    with api.store.connect() as conn:
        runs = conn.execute(
            select(data_source_sync_history).where(
                data_source_sync_history.c.source_id == "press-push"
            )
        ).mappings().all()  # fmt: skip
    # One history window, unless a slow machine spread the pushes over more than one:
    # the counts add up across them.
    assert {r["sync_type"] for r in runs} == {"realtime"}

    def total(field: str) -> int:
        return sum(r[field] for r in runs)

    assert total("records_processed") == 12 and total("records_rejected") == 1
    assert (total("records_inserted"), total("records_updated")) == (5, 1)


def test_bad_pushes_are_refused_with_the_reason_and_store_nothing(pushed: Api) -> None:
    api = pushed

    def refused(status: int, content: bytes, *words: str, source: str = "press-push") -> None:
        got = api.post(
            f"/api/ingest/{source}", content=content, headers={"Content-Type": "application/json"}
        )
        assert got.status_code == status, got.text
        text = got.text
        for word in words:
            assert word in text, text

    refused(422, b"", "empty")
    refused(422, b'{"machineId": "P-1",', "not valid JSON")
    refused(422, b'[{"machineId": "P-1"}, "P-2"]', "body[1]", "str")
    refused(422, b"42", "int")
    refused(404, b"{}", "not found", source="nope")

    # Not a push source; in maintenance; too many records.
    api.post("/api/sources", json={**push_source("other-push"), "source_type": "push"})
    register(api.store, mqtt_source("not-push", "127.0.0.1", 1883, ["x/y"]))
    refused(409, b"{}", "'mqtt' source", source="not-push")
    api.patch("/api/sources/other-push", json={"status": "maintenance"})
    refused(409, b"{}", "maintenance", source="other-push")
    api.patch(
        "/api/sources/press-push",
        json={"connections": [{"connection_config": {"max_records": 2}}]},
    )
    refused(413, orjson.dumps([{"machineId": f"P-{i}"} for i in range(3)]), "at most 2")
    with pytest.raises(Exception):  # noqa: B017 - the table was never created
        table_rows(api.store, "press_push")


def test_who_may_push(pushed: Api) -> None:
    api = pushed
    record = {"machineId": "P-7", "state": "run", "speed": 1}
    machine = scoped_token(api.store, "press-7", "viewer", ["ingest:press-push"])
    elsewhere = scoped_token(api.store, "press-8", "operator", ["ingest:other"])
    reader = scoped_token(api.store, "reader", "admin", ["read"])

    def status(token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return int(
            api.client.post("/api/ingest/press-push", json=record, headers=headers).status_code
        )

    assert status(None) == 401
    assert status("fs_" + "x" * 43) == 401
    assert status(api.tokens["viewer"]) == 403
    assert status(api.tokens["operator"]) == 200
    assert status(api.tokens["admin"]) == 200
    assert status(machine) == 200  # a viewer account whose token may push to this source
    assert status(elsewhere) == 403
    assert status(reader) == 403
    # The scoped token reaches nothing else.
    headers = {"Authorization": f"Bearer {machine}"}
    assert api.client.get("/api/data/press_push", headers=headers).status_code == 403


# -- the live stream over real HTTP ---------------------------------------------------
@contextmanager
def live_server(store: Store) -> Iterator[str]:
    app = create_app(store)
    # Port 0: the system picks a free port as the server binds it (no race with another
    # process for a port found free beforehand).
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), what="the server to start")
    assert server.started, "server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app.state.ctx.begin_shutdown()
        server.should_exit = True
        thread.join(PATIENCE)
        assert not thread.is_alive(), "server did not stop with a stream open"


class StreamReader:
    """Reads an event stream in a thread; events arrive in ``events`` with their time."""

    def __init__(self, url: str, token: str) -> None:
        self.events: queue.Queue[tuple[float, str, dict[str, Any]]] = queue.Queue()
        self.status: int | None = None
        self.ready = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(PATIENCE, read=PATIENCE))
        self._thread = threading.Thread(target=self._read, args=(url, token), daemon=True)
        self._thread.start()
        assert self.ready.wait(PATIENCE), "no 'ready' event"

    def _read(self, url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                self.status = response.status_code
                kind, data = "message", b""
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip().encode()
                    elif line == "" and data:
                        event = orjson.loads(data)
                        if kind == "ready":
                            self.ready.set()
                        self.events.put((time.monotonic(), kind, event))
                        kind, data = "message", b""
        except httpx.HTTPError:
            pass
        finally:
            self.ready.set()

    def next(self, timeout: float = PATIENCE) -> tuple[float, str, dict[str, Any]]:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_stream_sends_each_pushed_change(store: Store) -> None:
    tokens = role_tokens(store)
    with store.begin() as conn:
        from factorysync.intake import parse_sources
        from factorysync.store.registry_save import apply_declarations

        apply_declarations(conn, parse_sources({"sources": [push_source()]}), store.box)
    with live_server(store) as url, httpx.Client(base_url=url, timeout=PATIENCE) as http:
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        assert http.get("/api/stream/press_push").status_code == 401
        assert http.get("/api/stream/no_such_table", headers=admin).status_code == 404

        with StreamReader(f"{url}/api/stream/press_push", tokens["viewer"]) as reader:
            assert reader.status == 200
            assert reader.next()[1] == "ready"
            sent = http.post(
                "/api/ingest/press-push",
                json=[{"machineId": "P-1", "state": "run", "speed": 3}],
                headers=admin,
            )
            assert sent.status_code == 200, sent.text
            _, kind, event = reader.next()
            assert kind == "change" and event["source_id"] == "press-push"
            assert event["run_id"] == sent.json()["run_id"]
            assert [(r["machine_id"], r["state"]) for r in event["rows"]] == [("P-1", "run")]
            http.post(
                "/api/ingest/press-push", json={"machineId": "P-2", "state": "idle"}, headers=admin
            )
            assert [r["machine_id"] for r in reader.next()[2]["rows"]] == ["P-2"]


def test_stream_delivers_each_mqtt_change(
    store: Store, broker: tuple[str, int], publisher: Publisher, topic_root: str
) -> None:
    tokens = role_tokens(store)
    register(
        store,
        mqtt_source(
            "press-status",
            *broker,
            [f"{topic_root}/press/+/status"],
            topic_template=f"{topic_root}/press/{{machine_id}}/status",
            table="press_status",
            mapping={"primary_key": ["machine_id"]},
        ),
    )
    service = RealtimeService(store, file_watch=False)
    service.reconcile()
    assert "press-status" in service.workers, service.failed
    subscriber = service.workers["press-status"][1].subscriber  # type: ignore[attr-defined]
    try:
        assert subscriber.connected.wait(PATIENCE)
        with (
            live_server(store) as url,
            StreamReader(f"{url}/api/stream/press_status", tokens["viewer"]) as reader,
        ):
            assert reader.next()[1] == "ready"
            for i in range(5):
                publisher.publish(f"{topic_root}/press/PR-{i}/status", {"state": "run", "n": i})
                _, kind, event = reader.next()
                assert kind == "change"
                assert [r["machine_id"] for r in event["rows"]] == [f"PR-{i}"]
    finally:
        service.stop()


def start_sync(http: httpx.Client, headers: dict[str, str]) -> int:
    """Start a sync of ``machines`` through the API; its run id.

    Waits while the API answers 409: a run reported as ended may still hold the source
    for a moment in the process that ran it.
    """

    def started() -> int | None:
        answer = http.post("/api/sources/machines/sync", headers=headers)
        if answer.status_code == 409:
            return None
        assert answer.status_code == 202, answer.text
        return int(answer.json()["run_id"])

    return wait_until(started, what="the API to start a sync of machines")


def test_stream_announces_a_batch_sync(store: Store, data_dir: Path) -> None:
    tokens = role_tokens(store)
    write_json(data_dir / "machines.json", {"data": machines(30)})
    with store.begin() as conn:
        from factorysync.intake import parse_sources
        from factorysync.store.registry_save import apply_declarations

        decl = machine_source(data_dir / "machines.json")
        apply_declarations(conn, parse_sources({"sources": [decl]}), store.box)
    with (
        live_server(store) as url,
        StreamReader(f"{url}/api/stream/machines", tokens["viewer"]) as reader,
        httpx.Client(base_url=url, timeout=PATIENCE) as http,
    ):
        assert reader.next()[1] == "ready"
        operator = {"Authorization": f"Bearer {tokens['operator']}"}
        run_id = start_sync(http, operator)
        _, kind, event = reader.next()
        assert kind == "change" and event["run_id"] == run_id
        assert (event["inserted"], event["updated"], event["deleted"]) == (30, 0, 0)
        # A sync that changes nothing is not announced; the next change is.
        quiet = start_sync(http, operator)
        wait_until(
            lambda: (
                http.get(f"/api/runs/{quiet}", headers=operator).json()["sync_status"] != "running"
            ),
            what="the quiet run to end",
        )
        write_json(data_dir / "machines.json", {"data": machines(29)})
        run_id = start_sync(http, operator)
        _, kind, event = reader.next()
        assert event["run_id"] == run_id and (event["inserted"], event["deleted"]) == (0, 1)


def test_a_stream_ends_once_its_token_is_revoked(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream is checked again while it is open: a token still valid keeps it going
    across checks, a revoked one ends it with an 'end' event."""
    from factorysync.services import stream_access

    monkeypatch.setattr(stream_access, "RECHECK_S", 0.1)
    tokens = role_tokens(store)
    with store.begin() as conn:
        from factorysync.intake import parse_sources
        from factorysync.store.registry_save import apply_declarations

        apply_declarations(conn, parse_sources({"sources": [push_source()]}), store.box)
        token, row = auth.create_token(conn, "viewer-user", name="wall screen")
    with live_server(store) as url, httpx.Client(base_url=url, timeout=PATIENCE) as http:
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        with StreamReader(f"{url}/api/stream/press_push", token) as reader:
            assert reader.next()[1] == "ready"
            opened = time.monotonic()
            wait_until(lambda: time.monotonic() - opened > 0.5, what="a few checks")
            http.post("/api/ingest/press-push", json={"machineId": "P-1"}, headers=admin)
            assert reader.next()[1] == "change"
            revoked = http.delete(f"/api/tokens/{row['id']}", headers=admin)
            assert revoked.status_code == 200, revoked.text
            _, kind, event = reader.next()
            assert kind == "end"
            assert "no longer valid" in event["reason"]
            reader._thread.join(PATIENCE)
            assert not reader._thread.is_alive(), "the stream stayed open"
        assert (
            http.get(
                "/api/stream/press_push", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 401
        )
