"""Real media the conformance suite writes rows into, one per built-in connection type:
files in a data root, a table of a source database, a subprocess printing a file, an HTTP
server on loopback, topics on an MQTT broker, a node of an OPC UA server on loopback and
the push endpoint of the API. Each builder returns a
:class:`~factorysync.testing.conformance.Medium`; ``close`` callbacks stop what it started."""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from factorysync.config.mapping import SYSTEM_COLUMNS
from factorysync.testing.conformance import Medium
from tests.connectors.conftest import SourceServer
from tests.connectors.http_server import HttpServer, Reply, Request
from tests.realtime.conftest import Publisher, free_port
from tests.waiting import PATIENCE

Rows = list[dict[str, Any]]
_tables = itertools.count()


# -- files ------------------------------------------------------------------------------------
def file_medium(
    data_dir: Path, name: str, render: Callable[[Rows], bytes], **config: Any
) -> Medium:
    """A file in the data root, written again whole with every row so far."""
    path = data_dir / name
    rows: Rows = []

    def write(new: Rows) -> None:
        rows.extend(new)
        path.write_bytes(render(rows))

    return Medium("file", {"file_path": name, **config}, write)


def json_document(rows: Rows) -> bytes:
    return orjson.dumps(rows)


def ndjson_lines(rows: Rows) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def csv_text(rows: Rows) -> bytes:
    """Semicolon-separated, as European plant exports are."""
    lines = [";".join(rows[0])] + [";".join(str(v) for v in row.values()) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def xlsx_workbook(path: Path) -> Callable[[Rows], bytes]:
    def render(rows: Rows) -> bytes:
        import openpyxl

        book = openpyxl.Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.append(list(rows[0]))
        for row in rows:
            sheet.append(list(row.values()))
        book.save(path)
        return path.read_bytes()

    return render


# -- a source database ------------------------------------------------------------------------
def database_medium(db: SourceServer) -> Medium:
    """A table of its own in ``db`` (SQLite, PostgreSQL or MariaDB)."""
    table = f"conformance_{next(_tables)}"
    db.execute(
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, machine VARCHAR(8), qty INTEGER, "
        "lot INTEGER)"
    )

    def write(new: Rows) -> None:
        values = ", ".join(f"({r['id']}, '{r['machine']}', {r['qty']}, {r['lot']})" for r in new)
        db.execute(f"INSERT INTO {table} (id, machine, qty, lot) VALUES {values}")

    return Medium("database", db.source(table=table), write, db.auth)


# -- a command --------------------------------------------------------------------------------
def command_medium(data_dir: Path) -> Medium:
    """A Python script printing a JSON file. A command cannot narrow its output by the
    cursor: each run prints everything and the engine filters."""
    script = data_dir / "rows_tool.py"
    script.write_text("import sys\nsys.stdout.write(open(sys.argv[1], encoding='utf-8').read())\n")
    printed = file_medium(data_dir, "tool_rows.json", json_document)
    config = {
        "command": sys.executable,
        "parameters": [str(script), str(data_dir / "tool_rows.json")],
    }
    return Medium("command", config, printed.write, resumes=False)


def artisan_medium(data_dir: Path) -> Medium:
    """A Laravel project whose ``artisan`` script prints a JSON file for
    ``production:export``; ``php`` here is this Python (an artisan run is ``php artisan
    COMMAND``, which any interpreter of the script fits)."""
    project = data_dir / "laravel"
    project.mkdir()
    (project / "artisan").write_text(
        "import sys\n"
        "assert sys.argv[1:] == ['production:export', '--format=json'], sys.argv\n"
        "sys.stdout.write(open('storage/rows.json', encoding='utf-8').read())\n"
    )
    (project / "storage").mkdir()
    printed = file_medium(project / "storage", "rows.json", json_document)
    config = {
        "command": "production:export",
        "parameters": {"format": "json"},
        "working_directory": str(project),
        "php": sys.executable,
    }
    return Medium("artisan", config, printed.write, resumes=False)


# -- an HTTP API ------------------------------------------------------------------------------
def api_medium() -> tuple[Medium, Callable[[], None]]:
    """A REST API on loopback serving ``{"data": [...], "total": n}`` pages (offset and
    limit), narrowed by ``since`` (rows whose lot is at or after it)."""
    rows: Rows = []
    lock = threading.Lock()

    def app(request: Request) -> Reply:
        if request.path != "/v1/production":
            return Reply(404, {"error": "not found"})
        since = request.arg("since")
        offset, limit = int(request.arg("offset") or 0), int(request.arg("limit") or 100)
        with lock:
            chosen = [r for r in rows if since is None or r["lot"] >= int(since)]
        return Reply(body={"data": chosen[offset : offset + limit], "total": len(chosen)})

    def write(new: Rows) -> None:
        with lock:
            rows.extend(new)

    server = HttpServer(app)
    config = {
        "base_url": server.url,
        "endpoint": "/v1/production",
        "params": {"since": "{{cursor}}"},
        "records_path": "data",
        "pagination": {"type": "offset", "limit": 10},
        "retries": 0,
    }
    return Medium("api", config, write), server.stop


# -- MQTT -------------------------------------------------------------------------------------
def mqtt_medium(
    broker: tuple[str, int], publisher: Publisher, root: str
) -> tuple[Medium, Callable[[], None]]:
    """One retained JSON message per row, on a topic of its own under ``root``, so that
    discovery (which listens for a moment) sees every row written before it."""
    topics: list[str] = []

    def write(new: Rows) -> None:
        for row in new:
            topic = f"{root}/production/{row['id']}"
            publisher.publish(topic, row, retain=True)
            topics.append(topic)

    def clear() -> None:  # an empty retained message removes the retained one
        for topic in topics:
            publisher.publish(topic, b"", retain=True)

    config = {
        "host": broker[0],
        "port": broker[1],
        "topics": [f"{root}/production/+"],
        "client_id": f"fs-conformance-{uuid.uuid4().hex[:10]}",
        "clean_session": True,
        "session_expiry_s": 0,
    }
    return Medium("mqtt", config, write), clear


# -- OPC UA -----------------------------------------------------------------------------------
class RowNode:
    """An asyncua server on loopback (its own event loop and thread) with one String
    variable, ``Row``: each row written becomes one value change, the row as JSON."""

    def __init__(self) -> None:
        import asyncua

        self.ua: Any = asyncua.ua
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        for attempt in range(5):
            try:
                self.call(self._start(asyncua))
                break
            except OSError:  # the port found free was taken meanwhile: another one
                if attempt == 4:
                    raise

    def call(self, coro: Any) -> Any:
        done: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return done.result(PATIENCE)

    async def _start(self, asyncua: Any) -> None:
        self.endpoint = f"opc.tcp://127.0.0.1:{free_port()}/conformance/"
        self.server = asyncua.Server()
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        ns = await self.server.register_namespace("urn:factorysync:conformance")
        line = await self.server.nodes.objects.add_object(ns, "Line1")
        self.node = await line.add_variable(self.ua.NodeId("Line1.Row", ns), "Row", "")
        await self.server.start()

    def write(self, rows: Rows) -> None:
        for row in rows:
            value = self.ua.DataValue(
                self.ua.Variant(orjson.dumps(row).decode(), self.ua.VariantType.String),
                SourceTimestamp=datetime.now(UTC),
            )
            self.call(self.node.write_value(value))

    def stop(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(PATIENCE)
        self.loop.close()


OPCUA_FIELDS: dict[str, str | None] = {
    "node_id": "string",
    "field": "string",
    "value": "string",
    "source_timestamp": "datetime",
    "server_timestamp": "datetime",
    "status": "string",
    "status_code": "integer",
}


def opcua_medium() -> tuple[Medium, Callable[[], None]]:
    server = RowNode()
    config = {
        "endpoint": server.endpoint,
        "nodes": [{"node_id": server.node.nodeid.to_string(), "field": "row"}],
        "sampling_interval_ms": 0,
        "publishing_interval_ms": 50,
        "timeout_s": 60,  # the server shares this process's (busy) CPU
    }
    medium = Medium(
        "opcua",
        config,
        server.write,
        row_of=lambda record: orjson.loads(record["value"]),
        fields=OPCUA_FIELDS,
    )
    return medium, server.stop


# -- HTTP push --------------------------------------------------------------------------------
def push_medium(store: Any) -> tuple[Medium, Callable[[], None]]:
    """A push source of the API on ``store``: rows are posted to its ingest endpoint (one
    row as an object, several as an array) and arrive in its target table."""
    from fastapi.testclient import TestClient

    from factorysync.api import create_app
    from factorysync.store import accounts
    from factorysync.store.targets import read_rows

    with store.begin() as conn:
        accounts.create_user(conn, "conformance", "admin")
        token, _ = accounts.create_token(conn, "conformance", name="conformance")
    client = TestClient(create_app(store), headers={"Authorization": f"Bearer {token}"})
    client.__enter__()
    source = {
        "source_id": "conformance-push",
        "name": "Pushed production counts",
        "source_type": "push",
        "connections": [{"connection_config": {"batch_ms": 20}}],
        "mappings": [
            {
                "target_table": "conformance_push",
                "sync_strategy": "realtime",
                "mapping_config": {"primary_key": ["id"]},
            }
        ],
    }
    created = client.post("/api/sources", json=source)
    assert created.status_code == 201, created.text

    def write(new: Rows) -> None:
        answer = client.post("/api/ingest/conformance-push", json=new[0] if len(new) == 1 else new)
        assert answer.status_code == 200, answer.text
        assert answer.json()["stored"] == len(new), answer.text

    def received() -> Rows:
        with store.connect() as conn:
            try:
                found = read_rows(conn, "conformance_push")
            except Exception:  # nothing written yet: no table
                return []
        return [{k: v for k, v in row.items() if k not in SYSTEM_COLUMNS} for row in found]

    medium = Medium("push", {"batch_ms": 20}, write, received=received)
    return medium, lambda: client.__exit__(None, None, None)
