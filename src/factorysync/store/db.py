"""Engine creation and schema upgrades for the store."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from factorysync.errors import StoreError
from factorysync.settings import SQLITE_SIDE_FILES, sqlite_path
from factorysync.store import arrow_stage

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration's revision: checked on every start without loading the migration
# scripts (a test holds it equal to the scripts' head).
HEAD_REVISION = "0011"
SQLITE_PAGE_SIZE = 32768


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # Pages of 32 KiB for a new file (an existing store keeps its own size): a bulk load,
    # the index builds after it and the checkpoint of the write-ahead log handle an
    # eighth of the pages SQLite's default 4 KiB would need (about 20 % faster in all).
    cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
    # WAL lets the API read while a sync writes; NORMAL sync is durable in WAL mode
    # against process crashes (only an OS crash can lose the last commits).
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # Large sorts (an index built after a bulk first load) may use helper threads.
    cur.execute(f"PRAGMA threads={min(4, os.cpu_count() or 1)}")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Write transactions (Store.begin / write_transaction) take the write lock when they
    # start, so two writers queue on busy_timeout instead of failing half-way with
    # "database is locked"; reads stay deferred and never block. A connection for
    # autocommit reads (Store.connect_autocommit) begins none: each statement is its own.
    if conn.get_execution_options().get("fs_autocommit"):
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("fs_write") else "BEGIN")


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists.

    SQLite takes an empty file for a new database, and gives the journal, WAL and shared
    memory files it creates later the mode of the database file: so none of the store's
    files (password and token hashes, encrypted secrets) is ever readable by others.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def tighten_sqlite_files(path: Path) -> list[Path]:
    """Make the store's file and its side files readable by their owner only; returns
    the files whose mode was wider (a store created before files were made 0600)."""
    changed = []
    for file in [path, *(path.with_name(path.name + s) for s in SQLITE_SIDE_FILES)]:
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            file.chmod(mode & 0o700)
            changed.append(file)
    return changed


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Engine for the store URL, with the pragmas and pool settings the store relies on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            create_private_file(path)
            arrow_stage.sweep(str(path))
        elif not parsed.database or parsed.database == ":memory:":
            # An in-memory database uses a single-connection pool without sizes.
            kwargs.pop("pool_size", None)
            kwargs.pop("max_overflow", None)
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # The driver's own transaction handling is turned off so BEGIN IMMEDIATE is ours.
        event.listen(engine, "connect", lambda c, r: setattr(c, "isolation_level", None))
        event.listen(engine, "begin", _sqlite_begin)
        # A first load's stage files are detached and deleted once its transaction ends.
        event.listen(engine, "checkin", arrow_stage.release)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    if parsed.get_backend_name() == "postgresql":
        # A store host that stops answering (a network cut, a powered-off server) is
        # noticed in seconds, not after the system's TCP timeouts (minutes): realtime
        # data then goes to the local spool and the API answers 503 promptly. The URL's
        # own settings (``?connect_timeout=…``) win.
        given = {k: v for k, v in PG_LIVENESS.items() if k not in parsed.query}
        kwargs["connect_args"] = {**given, **kwargs.get("connect_args", {})}
    return create_engine(url, **kwargs)


# libpq settings of every store connection to PostgreSQL: a connect gives up after 10 s,
# and an idle or waiting connection whose server went silent is dropped after about 60 s.
PG_LIVENESS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


@contextmanager
def write_transaction(conn: Connection) -> Iterator[Connection]:
    """A transaction that intends to write (takes SQLite's write lock up front)."""
    conn.info["fs_write"] = True
    try:
        with conn.begin():
            yield conn
    finally:
        conn.info["fs_write"] = False


def alembic_config(engine: Engine, *, site: str | None = None) -> Any:
    """Alembic's configuration for ``engine``; ``site`` is the process's site, which
    migration 0009 gives the sources stored before sites existed."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    if site is not None:
        cfg.attributes["site"] = site
    return cfg


def upgrade(engine: Engine, *, site: str | None = None) -> str | None:
    """Create or upgrade the schema to the newest migration; returns the revision."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    try:
        command.upgrade(alembic_config(engine, site=site), "head")
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise StoreError(f"cannot reach the store: {describe_db_error(exc)}") from None


def current_revision(engine: Engine) -> str | None:
    """The store's schema revision (None before ``init``), read without alembic."""
    with engine.connect() as conn:
        try:
            found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except (OperationalError, ProgrammingError):  # no version table yet
            return None
    return found[0] if len(found) == 1 else None


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def is_initialised(engine: Engine) -> bool:
    try:
        return "data_source_registry" in inspect(engine).get_table_names()
    except OperationalError as exc:
        raise StoreError(f"cannot reach the store: {describe_db_error(exc)}") from None


def describe_db_error(exc: BaseException) -> str:
    """First line of a driver error, without the SQL or bound parameters SQLAlchemy appends."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


# PostgreSQL SQLSTATE classes and codes of a server that cannot take a request now:
# connection exceptions, insufficient resources, operator intervention (shut down,
# starting up, statement cancelled), system errors, and a lock or serialisation conflict.
_AWAY_CLASSES = ("08", "53", "57", "58", "40")
_AWAY_CODES = ("55P03", "55006")
# SQLite errors of a file that cannot be written now (the others, such as "no such
# column", are refusals of the request itself).
_SQLITE_AWAY = ("locked", "busy", "unable to open", "disk i/o", "is full", "readonly")


def store_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the store cannot take the request now (gone, connection lost,
    locked, out of room) rather than that it refused the request itself (a missing
    column, a constraint): the first is waited out, the second is not."""
    if isinstance(exc, InterfaceError | DisconnectionError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:  # PostgreSQL answered
        return sqlstate.startswith(_AWAY_CLASSES) or sqlstate in _AWAY_CODES
    if type(orig).__module__ == "sqlite3":
        message = str(orig).lower()
        return any(part in message for part in _SQLITE_AWAY)
    return True  # no answer from the server (refused, timed out, reset)


def plain(row: Any) -> dict[str, Any]:
    """A result row as a dict with plain ``str`` keys (SQLAlchemy's are str subclasses)."""
    return {str(k): v for k, v in row.items()}
