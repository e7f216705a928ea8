"""Shared fixtures: a fresh store on SQLite and on the local PostgreSQL server.

Tests that need a server skip with the reason when it is unreachable, unless
FACTORYSYNC_REQUIRE_SERVICES=1 (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.fernet import Fernet

from factorysync.settings import Settings, reset_settings
from factorysync.store.store import Store
from tests.connectors.http_server import HttpServer, Servers

PG_ADMIN_URL = os.environ.get(
    "FACTORYSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_SERVICES = os.environ.get("FACTORYSYNC_REQUIRE_SERVICES") == "1"
_counter = itertools.count()


def need_service(name: str, reason: str) -> None:
    message = f"{name} not reachable: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (FACTORYSYNC_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


class PgServer:
    """Creates throw-away databases from a migrated template on the local server."""

    def __init__(self) -> None:
        import psycopg

        self.conninfo = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
        self._psycopg = psycopg
        self.template = f"fs_tmpl_{os.getpid()}"
        self.created: list[str] = []

    def _admin(self, sql: str) -> None:
        # Generous: a machine running two suites at once can be slow to start a backend.
        with self._psycopg.connect(self.conninfo, autocommit=True, connect_timeout=30) as conn:
            conn.execute(sql)

    def url(self, database: str) -> str:
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database

    def prepare(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.template}"')
        store = Store(Settings(database_url=self.url(self.template)))
        store.upgrade()
        store.dispose()

    def new_database(self) -> str:
        name = f"fs_t_{os.getpid()}_{next(_counter)}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return self.url(name)

    def drop(self, url: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')

    def close(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer | Exception]:
    try:
        server = PgServer()
        server.prepare()
    except Exception as exc:  # reported per test through need_service
        yield exc
        return
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
    return str(request.param)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def env(
    backend: str,
    tmp_path: Path,
    data_dir: Path,
    pg_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, str]]:
    """FACTORYSYNC_* variables for a fresh store; also set in os.environ for the test."""
    if backend == "postgresql":
        if isinstance(pg_server, Exception):
            need_service("PostgreSQL", f"{PG_ADMIN_URL}: {pg_server}")
        url = pg_server.new_database()
    else:
        url = f"sqlite:///{tmp_path / 'factorysync.db'}"
    values = {
        "FACTORYSYNC_DATABASE_URL": url,
        "FACTORYSYNC_DATA_ROOTS": str(data_dir),
        "FACTORYSYNC_SECRET_KEY": "",
        "FACTORYSYNC_SECRET_KEY_FILE": str(tmp_path / "factorysync.key"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    reset_settings()
    yield values
    reset_settings()
    if backend == "postgresql":
        pg_server.drop(url)


@pytest.fixture
def store(env: dict[str, str]) -> Iterator[Store]:
    from factorysync import services

    s = Store(Settings())
    services.init_store(s)
    yield s
    s.dispose()


@pytest.fixture
def secret_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def serve() -> Iterator[Callable[..., HttpServer]]:
    """``serve(app, **options)`` starts a real HTTP server on 127.0.0.1 (see
    :mod:`tests.connectors.http_server`); every server started stops when the test ends."""
    servers = Servers()
    yield servers.start
    servers.stop()


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs.

    The port is bound but never listened on, so no other process (another test run on
    the same machine) can take it meanwhile, as it could a port merely found free.
    """
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data))
    return path


def run_cli(
    *args: str, cwd: Path | None = None, check: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``factorysync`` command in a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "factorysync.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"factorysync {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc
