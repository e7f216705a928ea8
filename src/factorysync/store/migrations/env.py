"""Alembic environment: runs against the engine handed over by factorysync.store.db."""

from __future__ import annotations

from alembic import context

from factorysync.store.schema import metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` CLI use: build it from settings
    from factorysync.settings import get_settings
    from factorysync.store.db import make_engine

    engine = make_engine(get_settings().database_url)

with engine.connect() as connection:
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
