"""Reads on ``Store.connect_autocommit``: no transaction around them (so no BEGIN and
ROLLBACK), and the pooled connection is an ordinary one again for the next user."""

from __future__ import annotations

from sqlalchemy import text

from factorysync.store.store import Store


def _in_transaction(store: Store, dbapi: object) -> bool:
    if store.dialect == "sqlite":
        return bool(dbapi.in_transaction)  # type: ignore[attr-defined]
    return str(dbapi.info.transaction_status.name) != "IDLE"  # type: ignore[attr-defined]


def test_autocommit_reads_hold_no_transaction_and_leave_the_pool_as_it_was(store: Store) -> None:
    with store.connect_autocommit() as conn:
        assert conn.execute(text("SELECT count(*) FROM data_source_registry")).scalar() == 0
        dbapi = conn.connection.dbapi_connection
        assert not _in_transaction(store, dbapi)
    with store.connect() as conn:
        conn.execute(text("SELECT count(*) FROM data_source_registry")).scalar()
        assert _in_transaction(store, conn.connection.dbapi_connection)
    # Writes still take their transaction (on SQLite: the write lock up front).
    with store.begin() as conn:
        conn.execute(text("SELECT count(*) FROM data_source_registry")).scalar()
        assert _in_transaction(store, conn.connection.dbapi_connection)
