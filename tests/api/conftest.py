"""API fixtures: the app on a fresh store (SQLite and PostgreSQL), tokens for each role,
a sample source with secrets, and the real ``factorysync serve`` on a loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from factorysync.api import create_app
from factorysync.engine.runner import Runner
from factorysync.store import accounts as auth
from factorysync.store.store import Store
from tests.conftest import write_json
from tests.realtime.conftest import broker, publisher, topic_root  # noqa: F401 - fixtures

ROLES = ("admin", "operator", "viewer")
PASSWORD = "Correct-Horse-42"


@dataclass
class Api:
    client: TestClient
    store: Store
    tokens: dict[str, str]  # role → token of a user with that role

    def as_(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}

    def request(self, method: str, url: str, role: str | None = "admin", **kw: Any) -> Any:
        headers = {**self.as_(role), **kw.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kw)

    def get(self, url: str, role: str | None = "admin", **kw: Any) -> Any:
        return self.request("GET", url, role, **kw)

    def post(self, url: str, role: str | None = "admin", **kw: Any) -> Any:
        return self.request("POST", url, role, **kw)

    def patch(self, url: str, role: str | None = "admin", **kw: Any) -> Any:
        return self.request("PATCH", url, role, **kw)

    def delete(self, url: str, role: str | None = "admin", **kw: Any) -> Any:
        return self.request("DELETE", url, role, **kw)

    def wait_run(self, run_id: int, timeout: float = 30) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            run = self.get(f"/api/runs/{run_id}").json()
            if run["sync_status"] != "running":
                return run  # type: ignore[no-any-return]
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} still running after {timeout} s")


def role_tokens(store: Store) -> dict[str, str]:
    tokens = {}
    with store.begin() as conn:
        have = {u["username"] for u in auth.list_users(conn)}
        for role in ROLES:
            if f"{role}-user" not in have:
                auth.create_user(conn, f"{role}-user", role)
            tokens[role], _ = auth.create_token(conn, f"{role}-user", name="tests")
    return tokens


def make_api(store: Store, **settings: Any) -> Iterator[Api]:
    # Answers from memory would hide what a test just wrote: off unless a test sets it.
    store.settings = store.settings.model_copy(update={"api_cache_s": 0.0, **settings})
    tokens = role_tokens(store)
    with TestClient(create_app(store)) as client:
        yield Api(client, store, tokens)


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    yield from make_api(store)


def machines(n: int) -> list[dict[str, Any]]:
    return [
        {
            "machineId": f"M-{i:03d}",
            "line": "LINE-A" if i % 2 else "LINE-B",
            "qtyGood": i * 10 if i % 5 else None,
            "oee": round(0.5 + i / 1000, 3),
            "running": i % 3 != 0,
            "ts": f"2026-01-05T{i % 24:02d}:{i % 60:02d}:00+07:00",
            "meta": {"vendor": "Fanuc"} if i % 4 == 0 else None,
        }
        for i in range(n)
    ]


def machine_source(path: Path, source_id: str = "machines", **extra: Any) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": "Machines",
        "source_type": "json",
        "refresh_interval": 60,
        "connections": [
            {
                "connection_name": "primary",
                "connection_config": {"file_path": str(path)},
                "authentication_config": {"api_key": "k-123456"},
            }
        ],
        "mappings": [
            {
                "target_table": source_id,
                "mapping_config": {"records_path": "data", "primary_key": ["machine_id"]},
            }
        ],
        **extra,
    }


@pytest.fixture
def synced(api: Api, data_dir: Path) -> Api:
    """``machines``: 250 records in a wrapper document, registered and synced."""
    document = {"updated_at": "2026-01-05T08:00:00+07:00", "plant": "Cikarang"}
    write_json(data_dir / "machines.json", {**document, "data": machines(250)})
    created = api.post("/api/sources", json=machine_source(data_dir / "machines.json"))
    assert created.status_code == 201, created.text
    assert Runner(api.store).sync("machines").sync_status == "success"
    return api


# -- a real server ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    logs: Path  # stdout and stderr go to files: a full pipe would block the server

    def stop(self, sig: int | None = None) -> tuple[int, str, str]:
        if self.process.poll() is None:
            if sig is None:
                self.process.terminate()
            else:
                self.process.send_signal(sig)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        out = (self.logs / "stdout").read_text(encoding="utf-8", errors="replace")
        err = (self.logs / "stderr").read_text(encoding="utf-8", errors="replace")
        shutil.rmtree(self.logs, ignore_errors=True)
        return self.process.returncode, out, err


def start_server(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Server:
    """``factorysync ARGS --host 127.0.0.1 --port P``, once /api/health answers."""
    import tempfile

    import httpx2

    port = free_port()
    logs = Path(tempfile.mkdtemp(prefix="fs-server-"))
    with (logs / "stdout").open("wb") as out, (logs / "stderr").open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "factorysync.cli",
                *args,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env={**os.environ, **(env or {})},
            cwd=cwd,
            stdout=out,
            stderr=err,
        )
    server = Server(f"http://127.0.0.1:{port}", process, logs)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if process.poll() is not None:
            code, out_text, err_text = server.stop()
            raise AssertionError(
                f"factorysync {' '.join(args)} exited {code}:\n{out_text}\n{err_text}"
            )
        try:
            if httpx2.get(f"{server.url}/api/health", timeout=1).status_code == 200:
                return server
        except httpx2.TransportError:
            time.sleep(0.1)
    server.stop()
    raise AssertionError("the server did not answer /api/health within 60 s")


def cli_with_input(*args: str, text: str) -> subprocess.CompletedProcess[str]:
    """``factorysync ARGS`` with ``text`` on standard input (e.g. --password-stdin)."""
    return subprocess.run(
        [sys.executable, "-m", "factorysync.cli", *args],
        input=text,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
