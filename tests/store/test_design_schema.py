"""The registry is the original design's DDL (DESIGN §2), column by column, and the
design's own example statements work on it as plain SQL.

The DDL and the examples below are the design's, as written (its comments left out).
Our store may have more columns; it may not lack one, nor differ in a column's type
family, nullability, default or foreign key.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.dialects.postgresql import JSONB

from factorysync.store.registry import get_source
from factorysync.store.store import Store
from tests.conftest import run_cli
from tests.web.conftest import PASSWORDS, add_users

DESIGN_DDL = """
CREATE TABLE users (id SERIAL PRIMARY KEY);

CREATE TABLE data_source_registry (
    id SERIAL PRIMARY KEY,
    source_id VARCHAR(50) UNIQUE NOT NULL,
    name VARCHAR(200) NOT NULL,
    description TEXT,
    source_type VARCHAR(20) NOT NULL,
    connection_type VARCHAR(20) NOT NULL,
    status VARCHAR(20) DEFAULT 'active',
    priority INTEGER DEFAULT 1,
    refresh_interval INTEGER DEFAULT 300,
    last_sync TIMESTAMP,
    next_sync TIMESTAMP,
    error_count INTEGER DEFAULT 0,
    last_error TEXT,
    created_by INTEGER REFERENCES users(id),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE data_source_connections (
    id SERIAL PRIMARY KEY,
    source_id INTEGER REFERENCES data_source_registry(id),
    connection_name VARCHAR(100) NOT NULL,
    connection_type VARCHAR(20) NOT NULL,
    connection_config JSON,
    authentication_config JSON,
    is_primary BOOLEAN DEFAULT false,
    is_backup BOOLEAN DEFAULT false,
    status VARCHAR(20) DEFAULT 'active',
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE data_source_mappings (
    id SERIAL PRIMARY KEY,
    source_id INTEGER REFERENCES data_source_registry(id),
    target_table VARCHAR(100) NOT NULL,
    mapping_config JSON,
    sync_strategy VARCHAR(20) DEFAULT 'incremental',
    sync_frequency VARCHAR(20) DEFAULT 'hourly',
    data_retention_days INTEGER DEFAULT 365,
    is_active BOOLEAN DEFAULT true,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE data_source_sync_history (
    id SERIAL PRIMARY KEY,
    source_id INTEGER REFERENCES data_source_registry(id),
    sync_type VARCHAR(20) NOT NULL,
    sync_status VARCHAR(20) NOT NULL,
    records_processed INTEGER DEFAULT 0,
    records_inserted INTEGER DEFAULT 0,
    records_updated INTEGER DEFAULT 0,
    records_deleted INTEGER DEFAULT 0,
    sync_duration_ms INTEGER,
    error_message TEXT,
    sync_started_at TIMESTAMP NOT NULL,
    sync_completed_at TIMESTAMP,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE data_source_templates (
    id SERIAL PRIMARY KEY,
    template_name VARCHAR(100) NOT NULL,
    template_type VARCHAR(20) NOT NULL,
    template_config JSON,
    is_predefined BOOLEAN DEFAULT false,
    created_by INTEGER REFERENCES users(id),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
"""
DESIGN_TABLES = [
    "data_source_registry",
    "data_source_connections",
    "data_source_mappings",
    "data_source_sync_history",
    "data_source_templates",
]

# The design's example statements (connection examples with connection_name added, as
# the design's own DDL requires it; the JSON file's path points at a real file).
CONNECTION_EXAMPLES = [
    """INSERT INTO data_source_connections (source_id, connection_name, connection_type, connection_config) VALUES
(1, 'primary', 'file', '{
  "file_path": "/src/data/json/actual_production.json",
  "file_type": "json",
  "encoding": "utf-8",
  "auto_reload": true
}')""",
    """INSERT INTO data_source_connections (source_id, connection_name, connection_type, connection_config) VALUES
(2, 'primary', 'database', '{
  "host": "192.168.1.100",
  "port": 5432,
  "database": "production_db",
  "schema": "public",
  "table": "production_data",
  "connection_pool_size": 10
}')""",
    """INSERT INTO data_source_connections (source_id, connection_name, connection_type, connection_config) VALUES
(3, 'primary', 'api', '{
  "base_url": "https://api.machine1.factory.com",
  "endpoint": "/api/v1/production",
  "method": "GET",
  "headers": {
    "Authorization": "Bearer {{token}}",
    "Content-Type": "application/json"
  },
  "rate_limit": 100,
  "timeout": 30
}')""",
    """INSERT INTO data_source_connections (source_id, connection_name, connection_type, connection_config) VALUES
(4, 'primary', 'artisan', '{
  "command": "php artisan data:sync",
  "parameters": ["--source=machine1", "--type=production"],
  "working_directory": "/var/www/factory",
  "timeout": 60
}')""",
    """INSERT INTO data_source_connections (source_id, connection_name, connection_type, connection_config) VALUES
(5, 'primary', 'file', '{
  "file_path": "/data/imports/production_data.csv",
  "file_type": "csv",
  "delimiter": ",",
  "has_header": true,
  "encoding": "utf-8"
}')""",
]
MAPPING_EXAMPLES = [
    """INSERT INTO data_source_mappings (source_id, target_table, sync_strategy, sync_frequency) VALUES
(1, 'machine_realtime_status', 'realtime', 'realtime')""",
    """INSERT INTO data_source_mappings (source_id, target_table, sync_strategy, sync_frequency) VALUES
(2, 'production_data', 'incremental', 'minute')""",
    """INSERT INTO data_source_mappings (source_id, target_table, sync_strategy, sync_frequency) VALUES
(3, 'machines', 'full', 'daily')""",
]
# The design gives no registry example: rows with only its NOT NULL columns, as a
# Laravel seeder would write them.
REGISTRY_ROWS = """INSERT INTO data_source_registry (source_id, name, source_type, connection_type)
VALUES ('actual_production', 'Aktual Produksi', 'json', 'file'),
       ('production_db', 'Production database', 'database', 'database'),
       ('machine1_api', 'Machine 1 API', 'api', 'api'),
       ('machine1_artisan', 'Machine 1 artisan sync', 'artisan', 'artisan'),
       ('production_csv', 'Production CSV', 'csv', 'file')"""


def family(type_: Any) -> str:
    """The kind of a column type, as SQL sees it (lengths and widths aside)."""
    for kind, classes in (
        ("boolean", (sa.Boolean,)),
        ("integer", (sa.Integer,)),
        ("timestamp", (sa.DateTime,)),
        ("json", (sa.JSON, JSONB)),
        ("text", (sa.Text,)),
        ("varchar", (sa.String,)),
    ):
        if isinstance(type_, classes):
            return kind
    return type(type_).__name__


def default_of(column: dict[str, Any], kind: str) -> str | None:
    """A reflected default without quoting and casts: 'active'::character varying and
    'active' are both active; 0 and false are false for a boolean."""
    raw = column.get("default")
    if raw is None or "nextval(" in str(raw):
        return None
    value = re.sub(r"::[a-z ]+", "", str(raw)).strip("()' ").lower()
    if kind == "boolean":
        value = {"0": "false", "1": "true"}.get(value, value)
    return "current_timestamp" if value in ("now()", "now") else value


def describe(insp: Any, table: str, schema: str | None = None) -> dict[str, dict[str, Any]]:
    fks = {
        fk["constrained_columns"][0]: (fk["referred_table"], tuple(fk["referred_columns"]))
        for fk in insp.get_foreign_keys(table, schema=schema)
    }
    uniques = {
        tuple(u["column_names"]) for u in insp.get_unique_constraints(table, schema=schema)
    } | {tuple(i["column_names"]) for i in insp.get_indexes(table, schema=schema) if i["unique"]}
    pk = tuple(insp.get_pk_constraint(table, schema=schema)["constrained_columns"])
    found = {}
    for column in insp.get_columns(table, schema=schema):
        name, kind = column["name"], family(column["type"])
        found[name] = {
            "type": kind,
            "nullable": bool(column["nullable"]) and (name,) != pk,
            "default": default_of(column, kind),
            "foreign_key": fks.get(name),
            "primary_key": (name,) == pk,
            "unique": (name,) in uniques,
        }
    return found


def design_tables(store: Store) -> tuple[Any, str | None, Any]:
    """The design's DDL run as written: a scratch schema of the store's PostgreSQL
    database, or a scratch SQLite database (SERIAL is PostgreSQL's: INTEGER there)."""
    if store.dialect == "postgresql":
        schema = f"design_{uuid.uuid4().hex[:10]}"
        engine = store.engine
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
            conn.execute(text(f"SET LOCAL search_path TO {schema}"))
            conn.execute(text(DESIGN_DDL))
        return engine, schema, None
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        for statement in DESIGN_DDL.replace("SERIAL", "INTEGER").split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)
    return engine, None, engine


def test_the_store_has_the_designs_columns(store: Store) -> None:
    engine, schema, scratch = design_tables(store)
    try:
        design_insp, ours = inspect(engine), inspect(store.engine)
        problems = []
        for table in DESIGN_TABLES:
            want = describe(design_insp, table, schema)
            have = describe(ours, table)
            for column, spec in want.items():
                if column not in have:
                    problems.append(f"{table}.{column}: missing")
                    continue
                for key, value in spec.items():
                    if key == "unique" and not value:
                        continue  # a unique column of ours the design does not ask for
                    if have[column][key] != value:
                        problems.append(
                            f"{table}.{column}.{key}: {have[column][key]!r} != {value!r}"
                        )
        assert not problems, "\n".join(problems)
    finally:
        if scratch is not None:
            scratch.dispose()
        else:
            with store.engine.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def test_the_comparison_fails_on_a_store_that_differs(store: Store) -> None:
    """The check above can fail: the previous schema's text created_by is caught."""
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        for statement in DESIGN_DDL.replace("SERIAL", "INTEGER").split(";"):
            if statement.strip():
                conn.exec_driver_sql(
                    statement.replace("created_by INTEGER REFERENCES users(id)", "created_by TEXT")
                )
    changed = describe(inspect(engine), "data_source_registry")["created_by"]
    assert (changed["type"], changed["foreign_key"]) == ("text", None)
    engine.dispose()


def test_the_designs_example_statements_make_sources_that_sync(
    store: Store, data_dir: Path
) -> None:
    path = data_dir / "actual_production.json"
    path.write_text(
        json.dumps(
            [
                {"machine_id": "P-01", "status": "running", "speed": 42},
                {"machine_id": "P-02", "status": "idle", "speed": 0},
            ]
        )
    )
    statements = [
        REGISTRY_ROWS,
        *(
            s.replace("/src/data/json/actual_production.json", str(path))
            for s in CONNECTION_EXAMPLES
        ),
        *MAPPING_EXAMPLES,
    ]
    with store.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
        ids: dict[str, int] = dict(
            conn.execute(text("SELECT source_id, id FROM data_source_registry")).all()
        )
    assert ids == {
        "actual_production": 1,
        "production_db": 2,
        "machine1_api": 3,
        "machine1_artisan": 4,
        "production_csv": 5,
    }

    listed = json.loads(run_cli("source", "list", "--json", check=True).stdout)
    assert {s["source_id"] for s in listed} == set(ids)
    assert all(s["status"] == "active" and s["priority"] == 1 for s in listed)
    shown = json.loads(run_cli("source", "show", "production_db", "--json", check=True).stdout)
    (mapping,) = shown["mappings"]
    assert (mapping["sync_strategy"], mapping["sync_frequency"]) == ("incremental", "minute")
    assert mapping["data_retention_days"] == 365 and mapping["is_active"] is True

    from factorysync.engine.scheduler import Scheduler

    due = {sid for sid, _ in Scheduler(store).due()}
    assert set(ids) <= due  # never synced: due at once

    synced = run_cli("source", "sync", "actual_production")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    with store.connect() as conn:
        rows = conn.execute(
            text("SELECT machine_id, status FROM machine_realtime_status ORDER BY machine_id")
        ).all()
        run = conn.execute(
            text(
                "SELECT h.sync_status, r.source_id FROM data_source_sync_history h "
                "JOIN data_source_registry r ON r.id = h.source_id"
            )
        ).one()
    assert [tuple(r) for r in rows] == [("P-01", "running"), ("P-02", "idle")]
    assert tuple(run) == ("success", "actual_production")
    edit_in_the_console(store)


def edit_in_the_console(store: Store) -> None:
    """The console edits a source written by plain SQL."""
    from fastapi.testclient import TestClient

    from factorysync.api import create_app

    add_users(store)
    with TestClient(create_app(store)) as console:
        login = console.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', login)
        assert csrf
        console.post(
            "/login",
            data={"username": "admin1", "password": PASSWORDS["admin"], "csrf": csrf.group(1)},
        )
        form = console.get("/sources/actual_production/edit")
        assert form.status_code == 200, form.text
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.text))
        data = {k: v for k, v in fields.items() if not k.startswith("auth.value")}
        data |= {
            "intent": "save",
            "name": "Aktual (edited)",
            "sync_strategy": "realtime",
            "priority": "1",
        }
        saved = console.post("/sources/actual_production/edit", data=data, follow_redirects=False)
        assert saved.status_code == 303, saved.text
    with store.connect() as conn:
        source = get_source(conn, "actual_production")
    assert source["name"] == "Aktual (edited)"
    assert source["mappings"][0]["sync_frequency"] == "realtime"
