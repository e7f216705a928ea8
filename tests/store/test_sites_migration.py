"""Migration 0009 (sites) on SQLite and PostgreSQL: sources stored at 0008 are kept and
get the process's site, which is created; the ``main`` site always exists (the column's
database default, for rows inserted with plain SQL); a site must exist for a source to
name it; and the downgrade keeps the sources."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from factorysync.settings import Settings
from factorysync.store.db import alembic_config, current_revision, make_engine, upgrade
from factorysync.store.store import Store


def _sources_at_0008(url: str) -> None:
    engine = make_engine(url)
    try:
        if current_revision(engine) is None:
            command.upgrade(alembic_config(engine), "0008")
        else:  # PostgreSQL: a copy of a template store at the newest revision
            command.downgrade(alembic_config(engine), "0008")
        with engine.begin() as conn:
            for sid in ("press", "oven"):
                conn.execute(
                    text(
                        "INSERT INTO data_source_registry (source_id, name, source_type, "
                        "connection_type) VALUES (:sid, :name, 'json', 'file')"
                    ),
                    {"sid": sid, "name": sid.upper()},
                )
            conn.execute(
                text(
                    "INSERT INTO data_source_connections (source_id, connection_name, "
                    "connection_type) SELECT id, 'primary', 'file' FROM data_source_registry"
                )
            )
    finally:
        engine.dispose()


def test_upgrade_keeps_sources_and_gives_them_the_process_site(env: dict[str, str]) -> None:
    url = env["FACTORYSYNC_DATABASE_URL"]
    _sources_at_0008(url)
    engine = make_engine(url)
    try:
        assert upgrade(engine, site="cikarang") is not None
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT source_id, site FROM data_source_registry ORDER BY source_id")
            ).all()
            assert [tuple(r) for r in rows] == [("oven", "cikarang"), ("press", "cikarang")]
            names = conn.execute(text("SELECT name FROM sites ORDER BY name")).scalars().all()
            assert names == ["cikarang", "main"]
            children = conn.execute(text("SELECT count(*) FROM data_source_connections"))
            assert children.scalar_one() == 2
            column = next(
                c for c in inspect(conn).get_columns("data_source_registry") if c["name"] == "site"
            )
            assert column["nullable"] is False
        # Plain SQL that names no site gets 'main'; a site that does not exist is refused.
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO data_source_registry (source_id, name, source_type, "
                    "connection_type) VALUES ('lab', 'Lab', 'json', 'file')"
                )
            )
            site = conn.execute(text("SELECT site FROM data_source_registry WHERE source_id='lab'"))
            assert site.scalar_one() == "main"
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("UPDATE data_source_registry SET site = 'nowhere'"))

        command.downgrade(alembic_config(engine), "0008")
        assert current_revision(engine) == "0008"
        with engine.connect() as conn:
            assert "sites" not in inspect(conn).get_table_names()
            count = conn.execute(text("SELECT count(*) FROM data_source_registry"))
            assert count.scalar_one() == 3
        upgrade(engine)  # the default process site
        with engine.connect() as conn:
            sites = conn.execute(text("SELECT DISTINCT site FROM data_source_registry"))
            assert sites.scalars().all() == ["main"]
    finally:
        engine.dispose()


def test_init_upgrades_with_the_configured_site(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from factorysync import services

    _sources_at_0008(env["FACTORYSYNC_DATABASE_URL"])
    monkeypatch.setenv("FACTORYSYNC_SITE", "plant-2")
    store = Store(Settings())
    try:
        services.init_store(store)
        with store.connect() as conn:
            sites = conn.execute(text("SELECT DISTINCT site FROM data_source_registry"))
            assert sites.scalars().all() == ["plant-2"]
    finally:
        store.dispose()
