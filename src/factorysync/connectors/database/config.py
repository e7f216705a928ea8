"""The ``connection_config`` of a database source, and the table of dialects and drivers.

A connection is described by parts (``host``, ``port``, ``database``, ...), never by a
URL or free-form driver options, and credentials come only from
``authentication_config``. Identifiers are checked here as plain SQL names; the reader
quotes them by the dialect.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factorysync.connectors.base import NaiveZone, naive_zone_field
from factorysync.errors import ConnectorFatal

Dialect = Literal["postgresql", "mysql", "mariadb", "mssql", "sqlite"]
Driver = Literal["psycopg", "pymysql", "mysqldb", "pymssql", "pysqlite"]


@dataclass(frozen=True)
class _DriverInfo:
    module: str
    install: str


DRIVERS: dict[str, _DriverInfo] = {
    "psycopg": _DriverInfo("psycopg", "pip install 'psycopg[binary]'"),
    "pymysql": _DriverInfo("pymysql", "pip install 'factorysync[mysql]'"),
    "mysqldb": _DriverInfo("MySQLdb", "pip install 'factorysync[mysqlclient]'"),
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

    dialect: Dialect = Field(
        title="Database server type",
        json_schema_extra={"group": "connection"},
        description="The database server: postgresql, mysql, mariadb, mssql (SQL Server) "
        "or sqlite.",
    )
    driver: Driver | None = Field(
        title="Driver",
        default=None,
        description="The Python driver: psycopg for postgresql; pymysql (extra mysql) or "
        "mysqldb (extra mysqlclient) for mysql and mariadb; pymssql (extra mssql) for mssql; "
        "pysqlite for sqlite. Default: the first one named for the dialect.",
    )
    host: str | None = Field(
        title="Host",
        examples=["mes-db.plant.local"],
        json_schema_extra={"group": "connection"},
        default=None,
        description="Host name or IP address of the server, e.g. mes-db.plant.local; "
        "required except for sqlite.",
    )
    port: int | None = Field(
        title="Port",
        examples=[5432],
        json_schema_extra={"group": "connection"},
        default=None,
        ge=1,
        le=65535,
        description="TCP port of the server. Default: the dialect's (5432 PostgreSQL, "
        "3306 MySQL and MariaDB, 1433 SQL Server).",
    )
    database: str = Field(
        title="Database name",
        examples=["mes"],
        json_schema_extra={"group": "connection"},
        min_length=1,
        max_length=1024,
        description="Name of the database; for sqlite, the path of the database file, "
        "inside a data root (opened read-only).",
    )
    schema_name: str | None = Field(
        title="Schema",
        examples=["public"],
        default=None,
        alias="schema",
        description="Schema that holds table, e.g. public or dbo. Default: the "
        "connection's default schema.",
    )
    table: str | None = Field(
        title="Table or view",
        examples=["production_orders"],
        json_schema_extra={"group": "connection"},
        default=None,
        description="Table or view to read, a plain SQL name (quoted by factorysync). "
        "Give exactly one of table or query.",
    )
    query: str | None = Field(
        title="SQL query (instead of a table)",
        examples=["SELECT id, machine, qty FROM orders"],
        default=None,
        description="One SELECT (or WITH … SELECT) statement to read instead of table, "
        "without bind parameters or ;. An incremental sync wraps it with the cursor "
        "filter.",
    )
    columns: list[str] | None = Field(
        title="Columns",
        default=None,
        min_length=1,
        description="Columns of table to read. Default: all of them. With query, list "
        "the columns in the query instead.",
    )
    connection_pool_size: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Connections kept open to the server, shared by every source of this "
        "process with the same connection settings and user. A read that finds them all "
        "busy waits up to connect_timeout.",
    )
    connect_timeout: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Seconds to wait for a connection: to the server, or for a free one "
        "in the pool.",
    )
    query_timeout: float | None = Field(
        default=None,
        gt=0,
        description="Seconds a query may run (PostgreSQL statement_timeout; MySQL and "
        "MariaDB read timeout; SQL Server query timeout). Default: no limit. Not applied "
        "to sqlite.",
    )
    # Zone of timestamps stored without one (DATETIME, timestamp without time zone):
    # default UTC. The plant zone (FACTORYSYNC_TIMEZONE) is for display only.
    timezone: NaiveZone = naive_zone_field(
        "timestamps stored without one (DATETIME, timestamp without time zone, datetime2)",
        "Set it to the server's zone for MySQL and MariaDB TIMESTAMP columns.",
    )

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
    checks again against the settings it runs with (:func:`.engine.engine_for`)."""
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


def _driver_available(driver: str) -> None:
    """Refuse a driver that is not installed, naming what installs it."""
    info = DRIVERS[driver]
    if importlib.util.find_spec(info.module) is None:
        raise ConnectorFatal(f"the database driver {driver!r} is not installed: {info.install}")
