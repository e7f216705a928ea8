"""``factorysync source test | discover | add --template | templates`` as a person runs them."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from factorysync.connectors.registry import declared_templates
from factorysync.store.schema import data_source_templates
from factorysync.store.store import Store
from factorysync.store.templates import PREDEFINED, declaration_from_template, seed_templates
from tests.conftest import run_cli
from tests.connectors.conftest import SourceServer
from tests.engine.test_runner import register


def one_line_failure(proc: Any) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert proc.stdout.strip() == ""
    return str(lines[0])


def db_source(source_id: str, config: dict[str, Any], auth: dict[str, Any]) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": source_id,
        "source_type": "database",
        "connections": [{"connection_config": config, "authentication_config": auth}],
        "mappings": [{"target_table": source_id}],
    }


# -- source test ----------------------------------------------------------------------------
def test_wrong_password(store: Store, maria_source: SourceServer) -> None:
    # Accounts belong to the whole server, which other test runs share: a name of our own.
    user, password = f"fs_cli_{uuid.uuid4().hex[:12]}", "Wr0ng-Passw0rd-xyz"
    maria_source.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'right-one'")
    try:
        config = maria_source.source(table="anything", connect_timeout=5)
        register(store, db_source("maria_pw", config, {"username": user, "password": password}))
        proc = run_cli("source", "test", "maria_pw")
    finally:
        maria_source.execute(f"DROP USER IF EXISTS '{user}'@'%'")
    line = one_line_failure(proc)
    assert line.startswith("error: source 'maria_pw': connection 'primary' failed after ")
    assert "Access denied" in line and password not in line


def test_wrong_host(store: Store) -> None:
    config = {
        "dialect": "postgresql",
        "host": "mes-db.invalid",
        "database": "mes",
        "table": "production",
        "connect_timeout": 3,
    }
    register(store, db_source("bad_host", config, {"username": "reader", "password": "s3cr3t!"}))
    line = one_line_failure(run_cli("source", "test", "bad_host"))
    assert "unknown host 'mes-db.invalid'" in line and "s3cr3t!" not in line


def test_refused_port_is_reported(store: Store) -> None:
    config = {
        "dialect": "mariadb",
        "host": "127.0.0.1",
        "port": 1,
        "database": "mes",
        "table": "production",
        "connect_timeout": 2,
    }
    register(store, db_source("closed", config, {"username": "reader"}))
    line = one_line_failure(run_cli("source", "test", "closed"))
    assert "Can't connect" in line


def test_missing_file(store: Store, data_dir: Path) -> None:
    register(
        store,
        {
            "source_id": "gone",
            "name": "Gone",
            "source_type": "csv",
            "connections": [{"connection_config": {"file_path": "exports/today.csv"}}],
            "mappings": [{"target_table": "gone"}],
        },
    )
    line = one_line_failure(run_cli("source", "test", "gone"))
    assert line.endswith(f"file not found: {data_dir / 'exports' / 'today.csv'}")


def test_success_prints_latency(store: Store, data_dir: Path) -> None:
    (data_dir / "oee.csv").write_text("machine,oee\nM-01,0.8\n")
    register(
        store,
        {
            "source_id": "oee",
            "name": "OEE",
            "source_type": "csv",
            "connections": [{"connection_config": {"file_path": "oee.csv"}}],
            "mappings": [{"target_table": "oee"}],
        },
    )
    proc = run_cli("source", "test", "oee", check=True)
    assert "ok  primary" in proc.stdout and " ms  1 csv file(s), 21 bytes" in proc.stdout


# -- source discover ------------------------------------------------------------------------
def test_discover_fields_types_and_samples(store: Store, data_dir: Path) -> None:
    (data_dir / "shift.csv").write_text(
        "machine;good;temp;at;code\n"
        "M-01;120;21,5;2026-01-05T06:00:00+07:00;007\n"
        "M-02;97;;2026-01-05T14:00:00+07:00;010\n"
    )
    register(
        store,
        {
            "source_id": "shift",
            "name": "Shift",
            "source_type": "csv",
            "connections": [
                {"connection_config": {"file_path": "shift.csv", "delimiter": ";", "decimal": ","}}
            ],
            "mappings": [{"target_table": "shift"}],
        },
    )
    table = run_cli("source", "discover", "shift", check=True).stdout
    assert "5 field(s) in up to 200 record(s) of connection 'primary'" in table
    proc = run_cli("source", "discover", "shift", "--json", check=True)
    fields = {f["name"]: f for f in orjson.loads(proc.stdout)["fields"]}
    assert fields["good"] == {
        "name": "good",
        "kind": "integer",
        "nullable": False,
        "samples": [120, 97],
    }
    assert fields["temp"]["kind"] == "float" and fields["temp"]["nullable"] is True
    assert fields["at"]["kind"] == "datetime" and fields["code"]["samples"] == ["007", "010"]


def test_discover_a_database_table(store: Store, pg_source: SourceServer) -> None:
    pg_source.execute(
        "CREATE TABLE IF NOT EXISTS machines (id INT PRIMARY KEY, name TEXT NOT NULL, "
        "installed DATE)",
        "INSERT INTO machines VALUES (1, 'Press 1', '2019-04-01'), (2, 'Lathe', NULL) "
        "ON CONFLICT DO NOTHING",
    )
    register(store, db_source("machines", pg_source.source(table="machines"), pg_source.auth))
    proc = run_cli("source", "discover", "machines", "--json", check=True)
    fields = {f["name"]: f for f in orjson.loads(proc.stdout)["fields"]}
    assert fields["id"]["kind"] == "integer" and fields["id"]["nullable"] is False
    assert fields["installed"]["kind"] == "date" and fields["installed"]["nullable"] is True
    assert fields["name"]["samples"] == ["Press 1", "Lathe"]


# -- templates ------------------------------------------------------------------------------
def test_init_seeds_the_templates_once(store: Store) -> None:
    names = {t["template_name"] for t in PREDEFINED}
    assert names == {
        "json_file",
        "csv_file",
        "excel_workbook",
        "postgresql_table",
        "mysql_table",
        "mssql_table",
        "sqlite_file",
        "rest_api",
        "laravel_artisan",
        "mqtt_topic",
        "opcua_nodes",
    }
    # Connection types declare the templates of their own on their classes.
    declared = {t["template_name"]: t["connection_type"] for t in declared_templates()}
    assert declared == {
        "press_modbus": "modbus",
        "press_s7": "s7",
        "sparkplug_b_edge_node": "mqtt",
    }
    with store.begin() as conn:
        assert seed_templates(conn) == 0
        total = conn.execute(select(func.count()).select_from(data_source_templates))
        assert total.scalar_one() == len(PREDEFINED) + len(declared)
    listed = run_cli("source", "templates", "--json", check=True).stdout
    shown = {t["template_name"]: t for t in orjson.loads(listed)}
    assert shown["postgresql_table"]["authentication_config"]["password"] == "***"


def test_add_from_a_template_then_sync(store: Store, data_dir: Path) -> None:
    (data_dir / "imports").mkdir()
    (data_dir / "imports" / "a.csv").write_text("id;qty\n1;2,5\n2;3,5\n")
    proc = run_cli(
        "source",
        "add",
        "line_a_counts",
        "--template",
        "csv_file",
        "--set",
        "file_path=imports/*.csv",
        "--set",
        "delimiter=;",
        "--set",
        "decimal=,",
        "--primary-key",
        "id",
        "--target",
        "line_counts",
        check=True,
    )
    assert "line_a_counts created from template 'csv_file'" in proc.stdout
    synced = run_cli("source", "sync", "line_a_counts", "--json", check=True)
    (result,) = orjson.loads(synced.stdout)
    assert result["sync_status"] == "success" and result["records_inserted"] == 2
    again = run_cli("source", "add", "line_a_counts", "--template", "csv_file")
    assert again.returncode != 0 and "exists already" in again.stderr


def test_add_refuses_bad_input(store: Store) -> None:
    unknown = run_cli("source", "add", "x", "--template", "nope")
    assert unknown.returncode != 0 and "no template 'nope' (templates: csv_file" in unknown.stderr
    bad = run_cli(
        "source", "add", "pg", "--template", "postgresql_table", "--set", "table=prod;drop"
    )
    assert bad.returncode == 2 and "is not a plain SQL name" in bad.stderr


@pytest.mark.parametrize(
    "template",
    [t for t in PREDEFINED if t["connection_type"] not in ("api", "mqtt", "opcua")],
    ids=lambda t: t["template_name"],
)
def test_each_available_template_is_valid(template: dict[str, Any]) -> None:
    from factorysync.intake import parse_source

    decl, problems = parse_source(declaration_from_template(template, "from_template"))
    assert decl is not None and problems == []
