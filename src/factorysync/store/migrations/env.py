"""Alembic environment: runs against the engine handed over by factorysync.store.db."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from factorysync.errors import StoreError
from factorysync.store.schema import metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` CLI use: build it from settings
    from factorysync.settings import get_settings
    from factorysync.store.db import make_engine

    engine = make_engine(get_settings().database_url)


def _foreign_keys(connection: Connection, on: bool) -> None:
    """SQLite: batch migrations rebuild a table (copy, drop, rename); with foreign keys
    on, dropping the old registry would delete its children. They are off while the
    migrations run (outside a transaction, where SQLite honours the pragma), and checked
    before they are on again."""
    raw = connection.connection.driver_connection
    assert raw is not None
    if on:
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()
        raw.execute("PRAGMA foreign_keys=ON")
        if broken:
            raise StoreError(
                f"the migrated store breaks {len(broken)} foreign key(s): {broken[:5]}"
            )
    else:
        raw.execute("PRAGMA foreign_keys=OFF")


with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _foreign_keys(connection, False)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        # Target tables are created from mappings, not migrations: leave them alone.
        include_name=lambda name, type_, parent: type_ != "table" or name in metadata.tables,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
    if sqlite:
        _foreign_keys(connection, True)
