"""Database engines and their pools, shared in the process, and the one place where a
driver's or SQLAlchemy's error becomes a connector error.

Engines (and so connection pools, sized by ``connection_pool_size``) are shared by every
read of the same connection settings and user in the process; at most MAX_POOLS are kept,
the least recently used one is disposed. Sessions are read-only where the server supports
it (PostgreSQL ``default_transaction_read_only``, MySQL/MariaDB ``SET SESSION TRANSACTION
READ ONLY``, SQLite ``mode=ro``).
"""

from __future__ import annotations

import atexit
import hashlib
import math
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from factorysync.connectors.base import ConnectorContext
from factorysync.connectors.database.config import (
    DEFAULT_PORTS,
    DatabaseConfig,
    _driver_available,
)
from factorysync.errors import ConnectorError, ConnectorFatal, ConnectorRetriable

MAX_POOLS = 64  # engines kept in the process; the least recently used one is disposed
_engines: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_engines_lock = threading.Lock()


@atexit.register
def dispose_pools() -> None:
    """Close every pooled connection (tests, shutdown)."""
    with _engines_lock:
        while _engines:
            _engines.popitem()[1].dispose()


def credentials(auth: dict[str, Any]) -> tuple[str | None, str | None]:
    """The user (``username`` or ``user``) and password of ``authentication_config``."""
    user = auth.get("username", auth.get("user"))
    password = auth.get("password")
    return (None if user is None else str(user)), (None if password is None else str(password))


def _connect_args(config: DatabaseConfig) -> dict[str, Any]:
    timeout = max(1, math.ceil(config.connect_timeout))
    query_ms = int(config.query_timeout * 1000) if config.query_timeout else None
    if config.driver == "psycopg":
        options = "-c default_transaction_read_only=on"
        if query_ms:
            options += f" -c statement_timeout={query_ms}"
        return {"connect_timeout": timeout, "application_name": "factorysync", "options": options}
    if config.driver in ("pymysql", "mysqldb"):
        args: dict[str, Any] = {
            "connect_timeout": timeout,
            "charset": "utf8mb4",
            "init_command": "SET SESSION TRANSACTION READ ONLY",
        }
        if config.query_timeout:
            args["read_timeout"] = max(1, math.ceil(config.query_timeout))
        return args
    if config.driver == "pymssql":
        args = {"login_timeout": timeout, "appname": "factorysync"}
        if config.query_timeout:
            args["timeout"] = max(1, math.ceil(config.query_timeout))
        return args
    return {}


def engine_for(config: DatabaseConfig, auth: dict[str, Any], context: ConnectorContext) -> Any:
    """The shared engine (and pool) for these connection settings."""
    import sqlalchemy as sa

    assert config.driver is not None
    _driver_available(config.driver)
    user, password = credentials(auth)
    if config.dialect == "sqlite":
        from factorysync.connectors.file import resolve_in_roots

        path = resolve_in_roots(config.database, context.settings)
        if not path.is_file():
            raise ConnectorFatal(f"sqlite database file not found: {path}")
        database = str(path)
    else:
        database = config.database
    secret = hashlib.sha256((password or "").encode()).hexdigest()
    key = (
        config.dialect,
        config.driver,
        config.host,
        config.port,
        database,
        user,
        secret,
        config.connection_pool_size,
        config.connect_timeout,
        config.query_timeout,
    )
    with _engines_lock:
        engine = _engines.get(key)
        if engine is not None:
            _engines.move_to_end(key)
            return engine
        common: dict[str, Any] = {
            "pool_size": config.connection_pool_size,
            "max_overflow": 0,
            "pool_timeout": config.connect_timeout,
            "pool_pre_ping": True,
            "pool_recycle": 1800,
            "hide_parameters": True,
        }
        if config.dialect == "sqlite":
            import sqlite3

            uri = Path(database).as_uri() + "?mode=ro"
            wait = config.connect_timeout

            def connect() -> Any:
                conn = sqlite3.connect(uri, uri=True, timeout=wait, check_same_thread=False)
                conn.execute("PRAGMA query_only = ON")
                return conn

            engine = sa.create_engine(
                "sqlite+pysqlite://", creator=connect, poolclass=sa.pool.QueuePool, **common
            )
        else:
            url = sa.URL.create(
                f"{config.dialect}+{config.driver}",
                username=user,
                password=password,
                host=config.host,
                port=config.port or DEFAULT_PORTS[config.dialect],
                database=database,
            )
            engine = sa.create_engine(url, connect_args=_connect_args(config), **common)
        _engines[key] = engine
        while len(_engines) > MAX_POOLS:
            _engines.popitem(last=False)[1].dispose()
        return engine


# -- errors -------------------------------------------------------------------------------
# SQLSTATEs (PostgreSQL) and error numbers (MySQL/MariaDB) by what retrying would do.
_PG_FATAL = {"28P01", "28000", "3D000", "42P01", "42703", "42501", "42601", "42883", "25006"}
_PG_RETRIABLE = {"57014", "40001", "40P01", "55P03", "53300", "57P01", "57P02", "57P03"}
_TABLE_MISSING = {"42P01", 1146}
_MYSQL_FATAL = {1044, 1045, 1049, 1054, 1064, 1142, 1143, 1146, 1698, 1792, 2005}
_MYSQL_RETRIABLE = {1040, 1205, 1213, 1969, 2002, 2003, 2006, 2013, 3024}
# Connection-time refusals carry no SQLSTATE in libpq's message: recognised by their text.
_REFUSED = (
    "password authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "access denied",
    "login failed",
)
_UNKNOWN_HOST = (
    "could not translate host name",
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "unknown mysql server host",
    "no address associated",
)


def _driver_message(orig: BaseException) -> str:
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    # MySQL drivers: (code, message); others: the message.
    text = str(args[1]) if len(args) >= 2 and isinstance(args[0], int) else str(orig)
    if "FATAL:" in text:  # libpq: "connection to server at … failed: FATAL:  message"
        text = text.rsplit("FATAL:", 1)[1]
    first = text.strip().splitlines()[0] if text.strip() else type(orig).__name__
    return re.sub(r"\s+", " ", first)


def classify(exc: BaseException, config: DatabaseConfig, secrets: list[str]) -> ConnectorError:
    """The connector error for a driver or SQLAlchemy error (the one place that decides)."""
    import sqlalchemy.exc as sa_exc

    where = config.where()
    if isinstance(exc, sa_exc.TimeoutError):
        return ConnectorRetriable(
            f"{where}: all {config.connection_pool_size} pooled connection(s) are busy "
            f"(waited {config.connect_timeout:g} s); raise connection_pool_size"
        )
    orig = getattr(exc, "orig", None) or exc
    message = _driver_message(orig)
    for secret in secrets:
        if secret:
            message = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", "***", message)
    lowered = message.lower()
    if any(marker in lowered for marker in _UNKNOWN_HOST):
        return ConnectorFatal(f"{where}: unknown host {config.host!r} ({message})")
    sqlstate = getattr(orig, "sqlstate", None)
    code = orig.args[0] if orig.args and isinstance(orig.args[0], int) else None
    if sqlstate in _TABLE_MISSING or code in _TABLE_MISSING or "no such table" in lowered:
        what = f"table {config.source_name()!r}" if config.table else "a table of the query"
        return ConnectorFatal(f"{where}: {what} not found ({message}); dropped or renamed?")
    if sqlstate in _PG_FATAL or code in _MYSQL_FATAL:
        return ConnectorFatal(f"{where}: {message}")
    if sqlstate in _PG_RETRIABLE or (sqlstate or "").startswith("08"):
        return ConnectorRetriable(f"{where}: {message}")
    if code in _MYSQL_RETRIABLE:
        return ConnectorRetriable(f"{where}: {message}")
    if any(marker in lowered for marker in _REFUSED):
        return ConnectorFatal(f"{where}: {message}")
    if config.dialect == "sqlite":
        if "locked" in lowered or "busy" in lowered:
            return ConnectorRetriable(f"{where}: {message}")
        return ConnectorFatal(f"{where}: {message}")
    if "timeout" in lowered or "timed out" in lowered or "refused" in lowered:
        return ConnectorRetriable(f"{where}: {message}")
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return ConnectorRetriable(f"{where}: {message}")
    return ConnectorFatal(f"{where}: {message}")
