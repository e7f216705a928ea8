"""Fixtures for connector tests: settings confined to a data folder, helpers to build and
read connectors, and throw-away source databases on the local PostgreSQL and MariaDB
servers (``fs_src_<pid>``, dropped at the end of the session)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from factorysync.connectors.base import Batch, Connector, ConnectorContext, ReadRequest
from factorysync.connectors.registry import build_connector
from factorysync.settings import Settings
from tests.conftest import need_service

MARIADB_HOST = os.environ.get("FACTORYSYNC_TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("FACTORYSYNC_TEST_MARIADB_PORT", "3306"))
PG_HOST = os.environ.get("FACTORYSYNC_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("FACTORYSYNC_TEST_PG_PORT", "5432"))
SOURCE_DB = f"fs_src_{os.getpid()}"


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(data_roots=str(data_dir), command_allowlist=sys.executable)


@pytest.fixture
def make(settings: Settings) -> Any:
    """make(connection_type, config, auth=None, batch_size=1000) -> Connector."""

    def build(
        connection_type: str,
        config: dict[str, Any],
        auth: dict[str, Any] | None = None,
        batch_size: int = 1000,
    ) -> Connector:
        context = ConnectorContext("test", settings, batch_size)
        return build_connector(connection_type, config, auth or {}, context)

    return build


def batches(connector: Connector, **request: Any) -> list[Batch]:
    return list(connector.read(ReadRequest(**request)))


def records(connector: Connector, **request: Any) -> list[Any]:
    return [r for b in connector.read(ReadRequest(**request)) for r in b.records]


@pytest.fixture(autouse=True)
def _close_pools() -> Iterator[None]:
    yield
    from factorysync.connectors.database import dispose_pools

    dispose_pools()


# -- source database servers ----------------------------------------------------------------
@dataclass
class SourceServer:
    """A database of one server, reachable as a connector config and for setting up data."""

    dialect: str
    config: dict[str, Any]
    auth: dict[str, Any]
    _execute: Any

    def execute(self, *statements: str) -> None:
        self._execute(statements)

    def source(self, **config: Any) -> dict[str, Any]:
        return {**self.config, **config}


def _pg_admin(database: str, statements: tuple[str, ...] | list[str]) -> None:
    import psycopg

    with psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user="postgres",
        dbname=database,
        autocommit=True,
        connect_timeout=3,
    ) as conn:
        for sql in statements:
            conn.execute(sql)


def _maria_admin(database: str | None, statements: tuple[str, ...] | list[str]) -> None:
    import pymysql

    conn = pymysql.connect(
        host=MARIADB_HOST,
        port=MARIADB_PORT,
        user="root",
        password="",
        database=database,
        autocommit=True,
        connect_timeout=3,
    )
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def pg_source_server() -> Iterator[SourceServer | Exception]:
    try:
        _pg_admin(
            "postgres",
            [
                f'DROP DATABASE IF EXISTS "{SOURCE_DB}" WITH (FORCE)',
                f'CREATE DATABASE "{SOURCE_DB}"',
            ],
        )
    except Exception as exc:  # reported by the tests that need it
        yield exc
        return
    yield SourceServer(
        "postgresql",
        {"dialect": "postgresql", "host": PG_HOST, "port": PG_PORT, "database": SOURCE_DB},
        {"username": "postgres"},
        lambda statements: _pg_admin(SOURCE_DB, statements),
    )
    from factorysync.connectors.database import dispose_pools

    dispose_pools()
    _pg_admin("postgres", [f'DROP DATABASE IF EXISTS "{SOURCE_DB}" WITH (FORCE)'])


@pytest.fixture(scope="session")
def maria_source_server() -> Iterator[SourceServer | Exception]:
    try:
        _maria_admin(
            None, [f"DROP DATABASE IF EXISTS `{SOURCE_DB}`", f"CREATE DATABASE `{SOURCE_DB}`"]
        )
    except Exception as exc:
        yield exc
        return
    yield SourceServer(
        "mariadb",
        {"dialect": "mariadb", "host": MARIADB_HOST, "port": MARIADB_PORT, "database": SOURCE_DB},
        {"username": "root", "password": ""},
        lambda statements: _maria_admin(SOURCE_DB, statements),
    )
    from factorysync.connectors.database import dispose_pools

    dispose_pools()
    _maria_admin(None, [f"DROP DATABASE IF EXISTS `{SOURCE_DB}`"])


@pytest.fixture
def pg_source(pg_source_server: SourceServer | Exception) -> SourceServer:
    if isinstance(pg_source_server, Exception):
        need_service("PostgreSQL", f"{PG_HOST}:{PG_PORT}: {pg_source_server}")
    assert isinstance(pg_source_server, SourceServer)
    return pg_source_server


@pytest.fixture
def maria_source(maria_source_server: SourceServer | Exception) -> SourceServer:
    if isinstance(maria_source_server, Exception):
        need_service("MariaDB", f"{MARIADB_HOST}:{MARIADB_PORT}: {maria_source_server}")
    assert isinstance(maria_source_server, SourceServer)
    return maria_source_server


@pytest.fixture
def sqlite_source(data_dir: Path) -> SourceServer:
    import sqlite3

    path = data_dir / "plant.db"

    def execute(statements: tuple[str, ...] | list[str]) -> None:
        conn = sqlite3.connect(path)
        try:
            for sql in statements:
                conn.execute(sql)
            conn.commit()
        finally:
            conn.close()

    execute(["SELECT 1"])
    return SourceServer("sqlite", {"dialect": "sqlite", "database": "plant.db"}, {}, execute)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def source_db(request: pytest.FixtureRequest) -> SourceServer:
    """Each source database: SQLite, the local PostgreSQL and the local MariaDB."""
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
        return request.getfixturevalue("pg_source")  # type: ignore[no-any-return]
    if request.param == "mariadb":
        request.applymarker(pytest.mark.mariadb)
        return request.getfixturevalue("maria_source")  # type: ignore[no-any-return]
    return request.getfixturevalue("sqlite_source")  # type: ignore[no-any-return]
