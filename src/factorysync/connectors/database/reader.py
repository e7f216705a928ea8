"""The database connection type: a table or one query, read in batches.

Rows are streamed with a server-side cursor in batches, so memory does not grow with the
table; every read runs in one transaction that is rolled back. An incremental read
pushes its cursor into the SQL (``WHERE cursor >= :last ORDER BY cursor``: ties on the
cursor are read again, never lost); values are always bound parameters. PostgreSQL
sources are read as Arrow batches through COPY where their column types allow, and a
first full load into a PostgreSQL store can be relayed as binary COPY (:mod:`.pg_copy`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from factorysync.config.names import snake_case
from factorysync.connectors.base import (
    Batch,
    Connector,
    ConnectorContext,
    FieldInfo,
    ReadRequest,
    SourceKind,
)
from factorysync.connectors.database.config import IDENTIFIER, DatabaseConfig
from factorysync.connectors.database.engine import classify, credentials, engine_for
from factorysync.errors import ConnectorFatal
from factorysync.kinds import kind_of_type

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
    source_types = (
        SourceKind(
            "database",
            "Database",
            "DB",
            "blue",
            summary="A table, view or query of PostgreSQL, MySQL, MariaDB, SQL Server or SQLite.",
        ),
    )
    auth_keys = ("username", "password")
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
            raise classify(exc, self.config, [credentials(self.auth)[1] or ""]) from None

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
        from factorysync.connectors.database import pg_copy

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
                from factorysync.connectors.database import pg_copy

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

    def key_hint(self) -> list[str] | None:
        """The table's primary key, else its first unique constraint or unique index."""
        if not self.config.table:
            return None
        import sqlalchemy as sa

        table, schema = self.config.table, self.config.schema_name
        with self._errors(), self._engine().connect() as conn:
            found = sa.inspect(conn)
            pk = found.get_pk_constraint(table, schema).get("constrained_columns") or []
            if pk:
                return list(pk)
            for unique in found.get_unique_constraints(table, schema):
                if unique.get("column_names"):
                    return list(unique["column_names"])
            for index in found.get_indexes(table, schema):
                names = index.get("column_names") or []
                if index.get("unique") and names and all(names):
                    return [str(n) for n in names]
        return None

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
        from factorysync.connectors.database import pg_copy

        self.connector, self.raw, self.sql, self.params = connector, raw, sql, params
        self.types = types  # source column -> PostgreSQL type name
        self.kinds = {name: pg_copy.PIPE_KINDS[kind] for name, kind in types.items()}

    def not_null(self, columns: list[str]) -> bool:
        """Whether the source table declares every one of ``columns`` NOT NULL (False for
        a query, whose columns declare nothing)."""
        config = self.connector.config
        if not config.table or not columns:
            return False
        from factorysync.connectors.database import pg_copy

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
        from factorysync.connectors.database import pg_copy

        with self.connector._errors():
            return pg_copy.first_values(self.raw, self.sql, self.params, columns)

    def stream(
        self, columns: list[str], constants: dict[str, tuple[Any, str]]
    ) -> Iterator[bytearray]:
        """``columns`` (each cast to the store type of its kind), then ``constants``
        (``name: (value, kind)``), as binary COPY of ``SELECT … FROM (source) AS q``."""
        from factorysync.connectors.database import pg_copy

        select, params = pg_copy.relay_select(self.types, columns, constants)
        sql = f"SELECT {', '.join(select)} FROM ({self.sql}) AS q"
        with self.connector._errors():
            yield from pg_copy.copy_binary(self.raw, sql, {**self.params, **params})
