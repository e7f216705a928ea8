"""Which store errors are an outage (wait it out: spool realtime data, answer 503) and
which are a refusal of the request itself (a missing column, a bad value)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from factorysync.store.db import PG_LIVENESS, make_engine, store_unreachable
from tests.conftest import PG_ADMIN_URL, need_service


@pytest.fixture
def pg_url(pg_server: Any) -> str:
    """The suite's PostgreSQL server (its admin database: these tests write nothing)."""
    if isinstance(pg_server, Exception):
        need_service("PostgreSQL", f"{PG_ADMIN_URL}: {pg_server}")
    return PG_ADMIN_URL


def _error(engine_url: str, sql: str) -> DBAPIError:
    engine = make_engine(engine_url)
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{sql!r} did not fail")


def test_sqlite_refusals_are_not_outages_but_a_locked_file_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    missing = _error(url, "SELECT nope FROM sqlite_master")
    assert isinstance(missing, OperationalError)  # SQLite reports it as "operational"
    assert not store_unreachable(missing)
    assert not store_unreachable(_error(url, "SELEKT 1"))

    holder = sqlite3.connect(tmp_path / "store.db")
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    try:
        engine = create_engine(url, connect_args={"timeout": 0.1})  # no 30 s wait
        with pytest.raises(OperationalError) as locked, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
        engine.dispose()
    finally:
        holder.rollback()
        holder.close()
    assert "locked" in str(locked.value)
    assert store_unreachable(locked.value)


def test_postgresql_errors_by_sqlstate(pg_url: str) -> None:
    assert not store_unreachable(_error(pg_url, "SELECT 1/0"))  # 22012, a data error
    assert not store_unreachable(_error(pg_url, "SELECT nope FROM pg_class"))  # 42703
    # 57P01: the server ended the connection (an administrator, a restart).
    assert store_unreachable(_error(pg_url, "SELECT pg_terminate_backend(pg_backend_pid())"))
    # 57014: a statement timeout; the store is busy, not refusing the data.
    assert store_unreachable(_error(pg_url, "SET statement_timeout = 1; SELECT pg_sleep(1)"))


def test_a_postgresql_server_that_is_not_there_is_an_outage_found_quickly(
    pg_url: str,
) -> None:
    down = make_url(pg_url).set(port=1).render_as_string(hide_password=False)
    assert store_unreachable(_error(down, "SELECT 1"))


def test_store_connections_to_postgresql_carry_a_connect_timeout_and_keepalives(
    pg_url: str,
) -> None:
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            dsn = conn.connection.dbapi_connection.info.dsn  # type: ignore[union-attr]
    finally:
        engine.dispose()
    for key, value in PG_LIVENESS.items():
        assert f"{key}={value}" in dsn, dsn
    # The URL's own setting wins.
    engine = make_engine(f"{pg_url}{'&' if '?' in pg_url else '?'}connect_timeout=3")
    try:
        with engine.connect() as conn:
            dsn = conn.connection.dbapi_connection.info.dsn  # type: ignore[union-attr]
    finally:
        engine.dispose()
    assert "connect_timeout=3" in dsn and "keepalives_idle=30" in dsn
