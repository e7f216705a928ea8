"""The store facade: one engine, the secret box, and readiness checks."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import Connection, Engine

from factorysync.errors import StoreError
from factorysync.security.secrets import SecretBox
from factorysync.settings import Settings, get_settings, sqlite_path
from factorysync.store import db
from factorysync.store.capture import FORWARD_OPTION, ForwardedTables

if TYPE_CHECKING:
    from factorysync.store.checkpoint import Checkpointer


class Store:
    _engines: ClassVar[weakref.WeakSet[Engine]] = weakref.WeakSet()

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.url = self.settings.database_url

    @cached_property
    def engine(self) -> Engine:
        # Every concurrent sync holds one store connection while it reads; a few more
        # serve the scheduler and API reads.
        size = self.settings.concurrent_syncs + 4
        options = {}
        if self.settings.forward_url:
            # Writes to the forwarded target tables capture their changes (store.capture).
            options[FORWARD_OPTION] = ForwardedTables.parse(self.settings.forward_tables)
        engine = db.make_engine(
            self.url, pool_size=size, max_overflow=10, execution_options=options
        )
        Store._engines.add(engine)
        return engine

    @cached_property
    def box(self) -> SecretBox:
        return SecretBox.from_settings(self.settings)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def connect(self) -> Connection:
        return self.engine.connect()

    def connect_autocommit(self) -> Connection:
        """A connection whose statements each commit on their own, for reads that need no
        snapshot across statements (the API's polled answers): no BEGIN and ROLLBACK
        around them, which are two round trips to PostgreSQL and two driver calls (each
        handing the GIL over) on SQLite. Never for writes."""
        conn = self.engine.connect()
        if self.dialect == "sqlite":
            return conn.execution_options(fs_autocommit=True)  # see db._sqlite_begin
        return conn.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction on a fresh connection (commits on success)."""
        with self.engine.connect() as conn, db.write_transaction(conn):
            yield conn

    def upgrade(self) -> str | None:
        return db.upgrade(self.engine, site=self.settings.site)

    def checkpointer(self) -> Checkpointer | None:
        """A SQLite store's background write-ahead-log checkpoints for a long-running
        service (:mod:`~factorysync.store.checkpoint`; not started), else None."""
        path = sqlite_path(self.url)
        if path is None or self.dialect != "sqlite":
            return None
        from factorysync.store.checkpoint import Checkpointer

        return Checkpointer(self.engine, path.resolve())

    def tighten_files(self) -> list[Path]:
        """Make a SQLite store's files readable by their owner only (see
        :func:`db.tighten_sqlite_files`); returns those that were readable by others."""
        path = sqlite_path(self.url)
        return [] if path is None else db.tighten_sqlite_files(path.resolve())

    def ensure_ready(self) -> None:
        """Refuse to work on a store that is missing or on an older schema, or while a
        data root holds the store or the key file (sources could read them)."""
        self.settings.check_data_roots()
        if not db.is_initialised(self.engine):
            raise StoreError(
                f"the store at {self.safe_url} is not initialised: run 'factorysync init'"
            )
        have, want = db.current_revision(self.engine), db.HEAD_REVISION
        if have != want:
            raise StoreError(
                f"the store schema is at revision {have}, this version needs {want}: "
                "run 'factorysync init' to upgrade"
            )

    @property
    def safe_url(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()

    @classmethod
    def dispose_all(cls) -> None:
        """Close the pooled connections of every store engine still in this process."""
        for engine in list(cls._engines):
            engine.dispose()
