"""Schema changes upstream, as a plant engineer meets them: a column of a PostgreSQL
source table altered from bigint to text between two syncs, a field that appears in or
disappears from a JSON export. Each change is a ``schema.changed`` infolog event and a
``schema_change`` alert; ``schema_contract: freeze`` refuses it instead (records with a
new field are quarantined, a run whose types changed fails naming the column). Against
SQLite and PostgreSQL stores; on SQLite the widened column's declared type follows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from factorysync.alerts.records import list_alerts
from factorysync.engine.runner import Runner
from factorysync.store.schema import data_source_quarantine, infolog
from factorysync.store.store import Store
from tests.conftest import need_service, write_json
from tests.connectors.conftest import PG_HOST, PG_PORT, SourceServer, _pg_admin
from tests.engine.test_runner import json_source, register, table_rows

SOURCE_DB = f"fs_schema_{os.getpid()}"


@pytest.fixture(scope="module")
def pg_db() -> Iterator[SourceServer | Exception]:
    """A throw-away database on the local PostgreSQL server for source tables."""
    try:
        _pg_admin("postgres", [f'DROP DATABASE IF EXISTS "{SOURCE_DB}" WITH (FORCE)'])
        _pg_admin("postgres", [f'CREATE DATABASE "{SOURCE_DB}"'])
    except Exception as exc:  # reported by the tests that need it
        yield exc
        return
    yield SourceServer(
        "postgresql",
        {"dialect": "postgresql", "host": PG_HOST, "port": PG_PORT, "database": SOURCE_DB},
        {"username": "postgres"},
        lambda statements: _pg_admin(SOURCE_DB, statements),
    )
    from factorysync.connectors.database import dispose_pools

    dispose_pools()
    _pg_admin("postgres", [f'DROP DATABASE IF EXISTS "{SOURCE_DB}" WITH (FORCE)'])


@pytest.fixture
def pg(pg_db: SourceServer | Exception) -> SourceServer:
    if isinstance(pg_db, Exception):
        need_service("PostgreSQL", f"{PG_HOST}:{PG_PORT}: {pg_db}")
    assert isinstance(pg_db, SourceServer)
    return pg_db


def counters_table(pg: SourceServer) -> str:
    """A source table of machine counters whose ``code`` is a bigint for now."""
    table = f"counters_{uuid.uuid4().hex[:10]}"
    pg.execute(
        f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, code BIGINT, qty INTEGER)",
        f"INSERT INTO {table} VALUES (1, 5, 10), (2, 7, 20)",
    )
    return table


def database_source(pg: SourceServer, table: str, **mapping: Any) -> dict[str, Any]:
    return {
        "source_id": table,
        "name": table,
        "source_type": "database",
        "connections": [
            {"connection_config": pg.source(table=table), "authentication_config": pg.auth}
        ],
        "mappings": [{"target_table": table, "mapping_config": {"primary_key": "id", **mapping}}],
    }


def events(store: Store, source_id: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        rows = conn.execute(
            select(infolog.c.level, infolog.c.run_id, infolog.c.details)
            .where(infolog.c.source_id == source_id, infolog.c.event == "schema.changed")
            .order_by(infolog.c.id)
        ).all()
    return [{"level": r.level, "run_id": r.run_id, **r.details} for r in rows]


def alert(store: Store, source_id: str) -> dict[str, Any] | None:
    with store.connect() as conn:
        found = [a for a in list_alerts(conn, source_id=source_id) if a["rule"] == "schema_change"]
    assert len(found) <= 1
    return found[0] if found else None


def declared_type(store: Store, table: str, column: str) -> str:
    with store.connect() as conn:
        if conn.dialect.name == "sqlite":
            info = conn.exec_driver_sql(f'PRAGMA table_info("{table}")').all()
            return next(str(r[2]) for r in info if r[1] == column)
        return str(
            conn.execute(
                text(
                    "SELECT data_type FROM information_schema.columns "
                    "WHERE table_name = :t AND column_name = :c"
                ),
                {"t": table, "c": column},
            ).scalar_one()
        )


def sync(store: Store, source_id: str, status: str = "success") -> Any:
    result = Runner(store).sync(source_id)
    assert result.sync_status == status, result.error_message
    return result


def test_bigint_altered_to_text_upstream(store: Store, pg: SourceServer) -> None:
    table = counters_table(pg)
    register(store, database_source(pg, table))
    sync(store, table)
    assert events(store, table) == [] and alert(store, table) is None
    assert declared_type(store, table, "code").lower() == "bigint"

    pg.execute(
        f"ALTER TABLE {table} ALTER COLUMN code TYPE TEXT USING code::text",
        f"UPDATE {table} SET code = '007' WHERE id = 2",
    )
    changed = sync(store, table)
    (event,) = events(store, table)
    assert event == {
        "level": "warning",
        "run_id": changed.run_id,
        "table": table,
        "column": "code",
        "old_type": "integer",
        "new_type": "string",
        "kind": "retyped",
    }
    raised = alert(store, table)
    assert raised is not None and raised["state"] == "open" and raised["severity"] == "warning"
    assert f"{table}.code integer → string" in raised["message"]
    # Text stays text: the old numbers as their text, the new code with its zeros.
    assert {r["id"]: r["code"] for r in table_rows(store, table)} == {1: "5", 2: "007"}
    assert declared_type(store, table, "code") == ("TEXT" if store.dialect == "sqlite" else "text")

    sync(store, table)  # nothing changed since: the alert resolves, no new event
    assert len(events(store, table)) == 1
    resolved = alert(store, table)
    assert resolved is not None and resolved["state"] == "resolved"


def test_freeze_fails_the_run_naming_the_column(store: Store, pg: SourceServer) -> None:
    table = counters_table(pg)
    register(store, database_source(pg, table, schema_contract="freeze"))
    sync(store, table)
    pg.execute(
        f"ALTER TABLE {table} ALTER COLUMN code TYPE TEXT USING code::text",
        f"UPDATE {table} SET code = '007', qty = 21 WHERE id = 2",
    )
    failed = sync(store, table, "failed")
    assert failed.error_message is not None
    assert (
        f"column 'code' of target table '{table}' would change type from integer to string"
        in failed.error_message
    )
    assert "schema_contract is freeze" in failed.error_message
    (event,) = events(store, table)
    assert event["level"] == "error" and event["refused"] is True
    assert (event["column"], event["old_type"], event["new_type"]) == ("code", "integer", "string")
    raised = alert(store, table)
    assert raised is not None and raised["severity"] == "critical" and raised["state"] == "open"
    assert "code" in raised["message"] and "freeze" in raised["message"]
    # The target is as the last good run left it.
    rows = {r["id"]: (r["code"], r["qty"]) for r in table_rows(store, table)}
    assert rows == {1: (5, 10), 2: (7, 20)}
    assert declared_type(store, table, "code").lower() == "bigint"

    sync(store, table, "failed")  # still refused: the same alert counts it again
    again = alert(store, table)
    assert again is not None and again["id"] == raised["id"] and again["occurrences"] == 2


@pytest.mark.parametrize("contract", ["evolve", "freeze"])
def test_new_field_in_a_json_export(store: Store, data_dir: Path, contract: str) -> None:
    path = write_json(data_dir / "counters.json", [{"id": 1, "qty": 1}, {"id": 2, "qty": 2}])
    register(store, json_source("counters", path, primary_key="id", schema_contract=contract))
    sync(store, "counters")
    write_json(
        path,
        [
            {"id": 1, "qty": 1, "shift": None},
            {"id": 2, "qty": 3, "shift": "B"},
            {"id": 3, "qty": 4},
        ],
    )
    result = sync(store, "counters")
    rows = {r["id"]: r for r in table_rows(store, "counters")}
    with store.connect() as conn:
        quarantined = conn.execute(
            select(data_source_quarantine.c.record, data_source_quarantine.c.reasons).where(
                data_source_quarantine.c.source_id == "counters"
            )
        ).all()
    if contract == "evolve":
        assert rows[2]["shift"] == "B" and rows[3]["qty"] == 4 and not quarantined
        (event,) = events(store, "counters")
        assert (event["kind"], event["column"], event["new_type"]) == ("added", "shift", "string")
        raised = alert(store, "counters")
        assert raised is not None and "counters.shift added (string)" in raised["message"]
        return
    # freeze: the record with a value in the new field waits in quarantine; the others
    # (an empty new field carries nothing) are loaded, and the table keeps its columns.
    assert result.records_rejected == 1
    ((record, reasons),) = quarantined
    assert record == {"id": 2, "qty": 3, "shift": "B"}
    assert "field 'shift' is new" in reasons[0] and "schema_contract is freeze" in reasons[0]
    assert "shift" not in rows[1] and rows[2]["qty"] == 2 and rows[3]["qty"] == 4
    assert events(store, "counters") == [] and alert(store, "counters") is None


def test_field_gone_from_a_full_snapshot(store: Store, data_dir: Path) -> None:
    path = write_json(data_dir / "shifts.json", [{"id": 1, "qty": 1, "note": "late"}])
    register(store, json_source("shifts", path, primary_key="id"))
    sync(store, "shifts")
    write_json(path, [{"id": 1, "qty": 1}, {"id": 2, "qty": 5}])
    dropped = sync(store, "shifts")
    (event,) = events(store, "shifts")
    assert event["run_id"] == dropped.run_id
    assert (event["kind"], event["column"], event["old_type"], event["new_type"]) == (
        "dropped",
        "note",
        "string",
        None,
    )
    raised = alert(store, "shifts")
    assert raised is not None and "shifts.note dropped (was string)" in raised["message"]
    assert {r["id"]: r["note"] for r in table_rows(store, "shifts")} == {1: None, 2: None}
    sync(store, "shifts")
    assert len(events(store, "shifts")) == 1
    resolved = alert(store, "shifts")
    assert resolved is not None and resolved["state"] == "resolved"


def test_widened_key_column_keeps_its_index(store: Store, data_dir: Path) -> None:
    """A key of numbers that becomes text: the column is widened (rebuilt on SQLite, with
    its unique index) and later syncs still match rows by key."""
    path = write_json(data_dir / "parts.json", [{"part": 7, "qty": 1}, {"part": 8, "qty": 2}])
    register(store, json_source("parts", path, primary_key="part"))
    sync(store, "parts")
    write_json(path, [{"part": "007", "qty": 1}, {"part": 8, "qty": 3}, {"part": "A-9", "qty": 4}])
    sync(store, "parts")
    (event,) = events(store, "parts")
    assert (event["column"], event["new_type"]) == ("part", "string")
    assert declared_type(store, "parts", "part").upper() == "TEXT"
    parts = {r["part"]: r["qty"] for r in table_rows(store, "parts")}
    assert parts == {"8": 3, "007": 1, "A-9": 4}  # "7" is not "007": gone from the snapshot
    again = sync(store, "parts")  # the same snapshot: matched by key, nothing changes
    assert (again.records_inserted, again.records_updated, again.records_deleted) == (0, 0, 0)
    with store.connect() as conn, pytest.raises(IntegrityError):
        conn.execute(
            text(
                "INSERT INTO parts (part, qty, _source_id, _row_hash) "
                "VALUES ('A-9', 1, 'parts', 'x')"
            )
        )
