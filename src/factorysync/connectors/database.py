"""Relational database sources through SQLAlchemy.

    dialect     drivers (first is the default)      install
    postgresql  psycopg                             (included)
    mysql       pymysql, mysqldb                    (included) / pip install mysqlclient
    mariadb     pymysql, mysqldb                    (included) / pip install mysqlclient
    mssql       pymssql                             pip install 'factorysync[mssql]'
    sqlite      pysqlite (``database`` is a file inside the data roots)

A connection is described by parts (``host``, ``port``, ``database``, ...), never by a
URL or free-form driver options, and credentials come only from
``authentication_config`` (``username``, ``password``). Sessions are read-only where the
server supports it (PostgreSQL ``default_transaction_read_only``, MySQL/MariaDB
``SET SESSION TRANSACTION READ ONLY``, SQLite ``mode=ro``); every read runs in one
transaction that is rolled back.

Rows are streamed with a server-side cursor in batches, so memory does not grow with the
table. An incremental read pushes its cursor into the SQL (``WHERE cursor >= :last ORDER
BY cursor``: ties on the cursor are read again, never lost). Identifiers are validated
and quoted by the dialect; values are always bound parameters.

Engines (and so connection pools, sized by ``connection_pool_size``) are shared by every
read of the same connection settings in the process.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import math
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factorysync.config.mapping import check_zone, snake_case
from factorysync.connectors.base import (
    Batch,
    Connector,
    ConnectorContext,
    FieldInfo,
    ReadRequest,
    SourceKind,
)
from factorysync.errors import ConnectorError, ConnectorFatal, ConnectorRetriable
from factorysync.kinds import kind_of_type

Dialect = Literal["postgresql", "mysql", "mariadb", "mssql", "sqlite"]
Driver = Literal["psycopg", "pymysql", "mysqldb", "pymssql", "pysqlite"]


@dataclass(frozen=True)
class _DriverInfo:
    module: str
    install: str


DRIVERS: dict[str, _DriverInfo] = {
    "psycopg": _DriverInfo("psycopg", "pip install 'psycopg[binary]'"),
    "pymysql": _DriverInfo("pymysql", "pip install pymysql"),
    "mysqldb": _DriverInfo("MySQLdb", "pip install mysqlclient"),
    "pymssql": _DriverInfo("pymssql", "pip install 'factorysync[mssql]'"),
    "pysqlite": _DriverInfo("sqlite3", "a Python built with the sqlite3 module"),
}
DIALECT_DRIVERS: dict[str, tuple[str, ...]] = {
    "postgresql": ("psycopg",),
    "mysql": ("pymysql", "mysqldb"),
    "mariadb": ("pymysql", "mysqldb"),
    "mssql": ("pymssql",),
    "sqlite": ("pysqlite",),
}
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433}
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,127}$")
HOSTNAME = re.compile(
    r"^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?|\[?[0-9A-Fa-f:.]+\]?)$"
)
# Keys that belong in authentication_config (or nowhere), with the reason.
_MISPLACED = {
    "username": "credentials belong in authentication_config",
    "user": "credentials belong in authentication_config",
    "password": "credentials belong in authentication_config",
    "url": "give the connection as parts (dialect, host, port, database), not a URL",
    "uri": "give the connection as parts (dialect, host, port, database), not a URL",
    "dsn": "give the connection as parts (dialect, host, port, database), not a DSN",
    "connect_args": "driver options are not configurable",
    "options": "driver options are not configurable",
}
MAX_POOLS = 64  # engines kept in the process; the least recently used one is disposed


def check_identifier(name: str, what: str) -> str:
    if not IDENTIFIER.match(name):
        raise ValueError(
            f"{what} {name!r} is not a plain SQL name (letters, digits, '_' and '$', starting "
            "with a letter or '_'); use query for anything else"
        )
    return name


class DatabaseConfig(BaseModel):
    """``connection_config`` of a database source."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    dialect: Dialect
    driver: Driver | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str = Field(min_length=1, max_length=1024)
    schema_name: str | None = Field(default=None, alias="schema")
    table: str | None = None
    query: str | None = None
    columns: list[str] | None = Field(default=None, min_length=1)
    connection_pool_size: int = Field(default=5, ge=1, le=100)
    connect_timeout: float = Field(default=10.0, gt=0, le=600)
    query_timeout: float | None = Field(default=None, gt=0)
    # Zone of timestamps stored without one (DATETIME, timestamp without time zone):
    # default UTC. The plant zone (FACTORYSYNC_TIMEZONE) is for display only.
    timezone: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _misplaced(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, reason in _MISPLACED.items():
                if key in data:
                    raise ValueError(f"{key}: not allowed here: {reason}")
        return data

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is not None and not HOSTNAME.match(v):
            raise ValueError(f"host {v!r} is not a host name or IP address")
        return v

    @field_validator("schema_name", "table")
    @classmethod
    def _names(cls, v: str | None, info: Any) -> str | None:
        return check_identifier(v, info.field_name.replace("_name", "")) if v else v

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: list[str] | None) -> list[str] | None:
        for name in v or []:
            check_identifier(name, "column")
        return v

    @field_validator("query")
    @classmethod
    def _query(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from sqlalchemy import text

        body = v.strip().rstrip(";").strip()
        if not re.match(r"(?is)^\s*(select|with)\b", body):
            raise ValueError("query must be a SELECT (or WITH … SELECT) statement")
        if ";" in body:
            raise ValueError("query must be a single statement (no ';' inside)")
        names = sorted(text(body)._bindparams)
        if names:
            raise ValueError(
                f"query has bind parameters ({', '.join(':' + n for n in names)}); "
                "they are not supported (write '\\:' for a literal colon)"
            )
        return body

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return check_zone(v)

    @model_validator(mode="after")
    def _consistent(self) -> DatabaseConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table or query")
        if self.columns and self.query:
            raise ValueError("columns goes with table; list the columns in the query instead")
        drivers = DIALECT_DRIVERS[self.dialect]
        if self.driver is None:
            self.driver = drivers[0]  # type: ignore[assignment]
        elif self.driver not in drivers:
            raise ValueError(
                f"driver {self.driver!r} does not go with dialect {self.dialect!r} "
                f"(use {' or '.join(drivers)})"
            )
        if self.dialect == "sqlite":
            if self.host or self.port:
                raise ValueError("sqlite takes no host or port: database is the file path")
            _sqlite_file_allowed(self.database)
        elif not self.host:
            raise ValueError(f"host is required for {self.dialect}")
        return self

    def where(self) -> str:
        """The connection, for messages (never with credentials)."""
        if self.dialect == "sqlite":
            return f"sqlite {self.database}"
        port = self.port or DEFAULT_PORTS[self.dialect]
        return f"{self.dialect} {self.host}:{port}/{self.database}"

    def source_name(self) -> str:
        if self.table:
            return f"{self.schema_name}.{self.table}" if self.schema_name else self.table
        return "the query"


def _sqlite_file_allowed(database: str) -> None:
    """Refuse, when the source is declared, an SQLite file outside the data roots or that
    is factorysync's own store or key file. The settings are this process's; every read
    checks again against the settings it runs with (:func:`engine_for`)."""
    from factorysync.connectors.file import OwnFiles, resolve_in_roots
    from factorysync.settings import get_settings

    settings = get_settings()
    own = OwnFiles(settings)
    try:
        raw = Path(database).expanduser()
        if not raw.is_absolute():
            # Each root a relative path may be found under (at run time the first that
            # holds it wins).
            for root in settings.data_root_paths():
                own.refuse((root / raw).resolve(), database)
        resolve_in_roots(database, settings, own)
    except ConnectorFatal as exc:
        raise ValueError(f"database: {exc}") from None


# -- engines and pools --------------------------------------------------------------------
_engines: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_engines_lock = threading.Lock()


@atexit.register
def dispose_pools() -> None:
    """Close every pooled connection (tests, shutdown)."""
    with _engines_lock:
        while _engines:
            _engines.popitem()[1].dispose()


def _credentials(auth: dict[str, Any]) -> tuple[str | None, str | None]:
    user = auth.get("username", auth.get("user"))
    password = auth.get("password")
    return (None if user is None else str(user)), (None if password is None else str(password))


def _driver_available(driver: str) -> None:
    info = DRIVERS[driver]
    if importlib.util.find_spec(info.module) is None:
        raise ConnectorFatal(f"the database driver {driver!r} is not installed: {info.install}")


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
    user, password = _credentials(auth)
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


# -- values -------------------------------------------------------------------------------
_PLAIN = {int, float, str, bool, type(None), Decimal, date, dict, list}


def plain_value(value: Any, zone: ZoneInfo) -> Any:
    """A driver value as one the store can hold."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is datetime:
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, datetime | date | int | float | str | Decimal | dict | list):
        return value
    return str(value)


def _naive_columns(rows: list[Any]) -> set[str]:
    """Columns of these driver rows that hold timestamps without a time zone."""
    return {
        name
        for row in rows
        for name, value in row.items()
        if type(value) is datetime and value.tzinfo is None
    }


# -- the connector ------------------------------------------------------------------------
class DatabaseConnector(Connector):
    type_name = "database"
    config_model = DatabaseConfig
    source_types = (SourceKind("database", "Database", "DB", "blue"),)
    relays = True
    config: DatabaseConfig

    def __init__(self, config: DatabaseConfig, auth: dict[str, Any], context: ConnectorContext):
        super().__init__(config, auth, context)
        self.zone = ZoneInfo(self.timezone)
        self._limit: int | None = None
        # While discovering: the columns that held timestamps without a time zone.
        self._naive: set[str] | None = None

    @property
    def columnar(self) -> bool:  # type: ignore[override]
        """PostgreSQL tables of plain column types are read as Arrow batches (COPY)."""
        return self.config.dialect == "postgresql"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        import sqlalchemy.exc as sa_exc

        # Arrow reads use the driver's connection directly (PostgreSQL COPY).
        driver_errors: tuple[type[BaseException], ...] = ()
        if self.config.driver == "psycopg":
            import psycopg

            driver_errors = (psycopg.Error,)
        caught: tuple[type[BaseException], ...] = (
            sa_exc.DBAPIError,
            sa_exc.TimeoutError,
            *driver_errors,
        )
        try:
            yield
        except caught as exc:
            raise classify(exc, self.config, [_credentials(self.auth)[1] or ""]) from None

    def _engine(self) -> Any:
        return engine_for(self.config, self.auth, self.context)

    def _from(self) -> Any:
        import sqlalchemy as sa

        if self.config.table:
            return sa.table(self.config.table, schema=self.config.schema_name)
        return sa.text(self.config.query or "").columns().subquery("q")

    def _select(self) -> Any:
        import sqlalchemy as sa

        cols: list[Any] = [sa.column(c) for c in self.config.columns or []]
        cols = cols or [sa.literal_column("*")]
        return sa.select(*cols).select_from(self._from())

    def _check(self) -> str:
        engine = self._engine()
        with self._errors(), engine.connect() as conn:
            names = list(conn.execute(self._select().limit(0)).keys())
            version = ".".join(str(p) for p in (conn.dialect.server_version_info or ()))
        return (
            f"{self.config.where()}{' (server ' + version + ')' if version else ''}: "
            f"{self.config.source_name()}, {len(names)} column(s)"
        )

    def _cursor_column(self, conn: Any, name: str | None) -> str | None:
        """The source column of the incremental cursor (matched as the mapping names it)."""
        if not name or not IDENTIFIER.match(name):
            return None
        names = list(conn.execute(self._select().limit(0)).keys())
        if name in names:
            return name
        return next((n for n in names if snake_case(n) == name), None)

    def _cursor_bound(self, conn: Any, column: str, value: Any) -> Any:
        """The stored cursor as the column holds it (naive timestamps: in ``timezone``)."""
        import sqlalchemy as sa

        if not isinstance(value, datetime):
            return sa.bindparam("last", value)
        col: Any = sa.column(column)
        sample = conn.execute(
            sa.select(col).select_from(self._from()).where(col.is_not(None)).limit(1)
        ).scalar()
        if isinstance(sample, datetime) and sample.tzinfo is None:
            naive = value.astimezone(self.zone).replace(tzinfo=None)
            return sa.bindparam("last", naive, type_=sa.DateTime())
        if isinstance(sample, str):
            return None  # timestamps kept as text: the engine filters instead
        if isinstance(sample, date) and not isinstance(sample, datetime):
            return sa.bindparam("last", value.astimezone(self.zone).date(), type_=sa.Date())
        return sa.bindparam("last", value, type_=sa.DateTime(timezone=value.tzinfo is not None))

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        import sqlalchemy as sa

        engine = self._engine()
        size = self.context.batch_size
        origin = f"{self.config.where()} {self.config.source_name()}"
        with self._errors(), engine.connect() as conn:
            stmt = self._select()
            ordered = False
            if request.strategy == "incremental":
                column = self._cursor_column(conn, request.cursor_path)
                if column is not None:
                    col: Any = sa.column(column)
                    bound = None
                    if request.cursor_value is not None:
                        bound = self._cursor_bound(conn, column, request.cursor_value)
                    if request.cursor_value is None or bound is not None:
                        if bound is not None:
                            stmt = stmt.where(col >= bound)
                        stmt = stmt.order_by(col)
                        ordered = True
            if self._limit is not None:
                stmt = stmt.limit(self._limit)
            if request.columnar and self.config.dialect == "postgresql":
                arrow = self._read_arrow(conn, stmt, origin, ordered)
                if arrow is not None:
                    yield from arrow
                    return
            zone = self.zone
            with conn.execute(stmt.execution_options(yield_per=size)) as result:
                for part in result.mappings().partitions(size):
                    if self._naive is not None:
                        self._naive.update(_naive_columns(part))
                    records = [{k: plain_value(v, zone) for k, v in row.items()} for row in part]
                    yield Batch(records, origin=origin, cursor_ordered=ordered)

    def scan_keys(self, names: list[str]) -> Iterator[list[dict[str, Any]]]:
        """The ``names`` columns of every source row (``SELECT`` of those columns only),
        streamed in batches: the key scan that finds rows deleted upstream. A name
        matches a column as written or by its snake_case, as the mapping names it."""
        import sqlalchemy as sa

        engine = self._engine()
        size = self.context.batch_size
        with self._errors(), engine.connect() as conn:
            have = list(conn.execute(self._select().limit(0)).keys())
            columns = []
            for name in names:
                found = (
                    name if name in have else next((n for n in have if snake_case(n) == name), None)
                )
                if found is None:
                    raise ConnectorFatal(
                        f"{self.config.where()} {self.config.source_name()}: key column "
                        f"{name!r} not found for detect_deletes (columns: {', '.join(have)})"
                    )
                columns.append(found)
            stmt: Any = sa.select(*(sa.column(c) for c in columns)).select_from(self._from())
            zone = self.zone
            with conn.execute(stmt.execution_options(yield_per=size)) as result:
                for part in result.mappings().partitions(size):
                    yield [{k: plain_value(v, zone) for k, v in row.items()} for row in part]

    def _read_arrow(
        self, conn: Any, stmt: Any, origin: str, ordered: bool
    ) -> Iterator[Batch] | None:
        """Arrow batches through COPY, or None when a column needs the row path."""
        from factorysync.connectors import pg_copy

        compiled = stmt.compile(dialect=conn.dialect)
        sql, params = str(compiled), dict(compiled.params)
        raw = conn.connection.driver_connection
        types = pg_copy.column_types(raw, sql, params)
        if types is None:
            return None
        zone = self.timezone
        size = self.context.columnar_batch_size
        return (
            Batch([], origin=origin, cursor_ordered=ordered, arrow=part)
            for part in pg_copy.read_batches(raw, sql, params, types, zone, size)
        )

    @contextmanager
    def relay(self, request: ReadRequest) -> Iterator[Relay | None]:
        """The relay capability (:mod:`factorysync.engine.relay`): the whole source as a
        binary COPY stream, for a first full load into a PostgreSQL store; None when this
        source cannot be relayed (another database or driver, an incremental read, a row
        limit, a repeated column name, a column type the relay does not carry)."""
        if not (
            self.config.dialect == "postgresql"
            and self.config.driver == "psycopg"
            and request.strategy == "full"
            and self._limit is None
        ):
            yield None
            return
        engine = self._engine()
        with self._errors():
            conn = engine.connect()
        try:
            with self._errors():
                compiled = self._select().compile(dialect=conn.dialect)
                sql, params = str(compiled), dict(compiled.params)
                raw = conn.connection.driver_connection
                from factorysync.connectors import pg_copy

                types = pg_copy.type_names(raw, sql, params)
            if types is not None and any(t not in pg_copy.PIPE_KINDS for t in types.values()):
                types = None
            yield None if types is None else Relay(self, raw, sql, params, types)
        finally:
            with self._errors():
                conn.close()

    def discover(self, *, records_path: str | None = None, limit: int = 200) -> list[FieldInfo]:
        """Fields from the first ``limit`` rows; declared column types win where known.
        Timestamp columns without a time zone (declared so, or holding such values) are
        marked ``naive``: they are read in ``timezone``."""
        self._limit, self._naive = limit, set()
        try:
            fields = super().discover(records_path=records_path, limit=limit)
            naive = self._naive
        finally:
            self._limit, self._naive = None, None
        declared = self._declared_columns()
        by_name = {f.name: f for f in fields}
        for name, (kind, nullable, naive_type) in declared.items():
            info = by_name.get(name)
            if info is None:
                info = FieldInfo(name, kind, [], nullable)
                fields.append(info)
            else:
                info.kind, info.nullable = kind, nullable
            if naive_type:
                naive.add(name)
        for info in fields:
            info.naive = info.name in naive
        return fields

    def _declared_columns(self) -> dict[str, tuple[str, bool, bool]]:
        """Column → (kind, nullable, a timestamp type without a time zone)."""
        if not self.config.table:
            return {}
        import sqlalchemy as sa

        engine = self._engine()
        with self._errors(), engine.connect() as conn:
            columns = sa.inspect(conn).get_columns(self.config.table, self.config.schema_name)
        wanted = set(self.config.columns or [c["name"] for c in columns])
        declared = {}
        for c in columns:
            if c["name"] in wanted:
                kind = kind_of_type(c["type"])
                naive = kind == "datetime" and not getattr(c["type"], "timezone", False)
                declared[c["name"]] = (kind, bool(c.get("nullable", True)), naive)
        return declared


class Relay:
    """A PostgreSQL source read as binary COPY: its column types, the first value of
    chosen columns, and the stream itself, with errors reported as the source's."""

    def __init__(
        self,
        connector: DatabaseConnector,
        raw: Any,
        sql: str,
        params: dict[str, Any],
        types: dict[str, str],
    ) -> None:
        from factorysync.connectors import pg_copy

        self.connector, self.raw, self.sql, self.params = connector, raw, sql, params
        self.types = types  # source column -> PostgreSQL type name
        self.kinds = {name: pg_copy.PIPE_KINDS[kind] for name, kind in types.items()}

    def not_null(self, columns: list[str]) -> bool:
        """Whether the source table declares every one of ``columns`` NOT NULL (False for
        a query, whose columns declare nothing)."""
        config = self.connector.config
        if not config.table or not columns:
            return False
        from factorysync.connectors import pg_copy

        table = pg_copy.quote(config.table)
        if config.schema_name:
            table = f"{pg_copy.quote(config.schema_name)}.{table}"
        with self.connector._errors(), self.raw.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                "AND attname = ANY(%s) AND attnotnull AND NOT attisdropped",
                (table, columns),
            )
            row = cur.fetchone()
        return bool(row) and row[0] == len(set(columns))

    def first_values(self, columns: list[str]) -> list[Any]:
        from factorysync.connectors import pg_copy

        with self.connector._errors():
            return pg_copy.first_values(self.raw, self.sql, self.params, columns)

    def stream(
        self, columns: list[str], constants: dict[str, tuple[Any, str]]
    ) -> Iterator[bytearray]:
        """``columns`` (each cast to the store type of its kind), then ``constants``
        (``name: (value, kind)``), as binary COPY of ``SELECT … FROM (source) AS q``."""
        from factorysync.connectors import pg_copy

        select, params = pg_copy.relay_select(self.types, columns, constants)
        sql = f"SELECT {', '.join(select)} FROM ({self.sql}) AS q"
        with self.connector._errors():
            yield from pg_copy.copy_binary(self.raw, sql, {**self.params, **params})
