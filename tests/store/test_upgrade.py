"""A store made by the previous release (schema 0006) upgrades with ``factorysync init``
and keeps every row and secret.

The fixtures were made by that release's own ``factorysync`` (fixtures/
make_previous_release.sh): two sources (one with a backup connection, both with
secrets), a run with its history, target rows, a quarantined record, sync state, the
admin user, the seeded templates.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from factorysync.settings import Settings, reset_settings
from factorysync.store.db import HEAD_REVISION
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.schema import data_source_connections as conns_t
from factorysync.store.schema import data_source_mappings as maps_t
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.store.templates import all_predefined, list_templates
from tests.conftest import need_service, run_cli

FIXTURES = Path(__file__).parent / "fixtures"
# Rows of the fixture stores, table by table.
ROWS = {
    "data_source_registry": 2,
    "data_source_connections": 3,
    "data_source_mappings": 2,
    "data_source_sync_history": 1,
    "data_source_quarantine": 1,
    "data_source_sync_state": 1,
    "data_source_templates": 11,
    "press_readings": 2,
    "users": 1,
    "infolog": 1,
}
# The templates the previous release seeded.
PREVIOUS_TEMPLATES = {
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
SECRETS = {
    ("readings", "primary"): {"token": "fixture-file-token"},
    ("readings", "copy"): {},
    ("mes_api", "primary"): {"type": "bearer", "token": "fixture-api-secret"},
}


def _load_pg_dump(pg_server: Any) -> str:
    import psycopg

    name = f"fs_prev_{uuid.uuid4().hex[:12]}"
    pg_server._admin(f'CREATE DATABASE "{name}"')
    url = pg_server.url(name)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute((FIXTURES / "previous_release_pg.sql").read_text(encoding="utf-8"))
    return url


@pytest.fixture
def old_store(
    backend: str, tmp_path: Path, pg_server: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """FACTORYSYNC_* variables of a copy of the previous release's store."""
    if backend == "postgresql":
        if isinstance(pg_server, Exception):
            need_service("PostgreSQL", str(pg_server))
        url = _load_pg_dump(pg_server)
    else:
        shutil.copy(FIXTURES / "previous_release.db", tmp_path / "old.db")
        url = f"sqlite:///{tmp_path / 'old.db'}"
    key = tmp_path / "factorysync.key"
    shutil.copy(FIXTURES / "previous_release.key", key)
    key.chmod(0o600)
    (tmp_path / "data").mkdir()
    values = {
        "FACTORYSYNC_DATABASE_URL": url,
        "FACTORYSYNC_DATA_ROOTS": str(tmp_path / "data"),
        "FACTORYSYNC_SECRET_KEY": "",
        "FACTORYSYNC_SECRET_KEY_FILE": str(key),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    reset_settings()
    yield values
    reset_settings()
    if backend == "postgresql":
        pg_server.drop(url)


def counts(store: Store) -> dict[str, int]:
    with store.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in ROWS}


def test_the_previous_release_store_upgrades_keeping_rows_and_secrets(
    old_store: dict[str, str], tmp_path: Path
) -> None:
    store = Store(Settings())
    assert counts(store) == ROWS
    with store.connect() as conn:
        before = {
            t: [tuple(r) for r in conn.execute(text(f"SELECT id FROM {t} ORDER BY id"))]
            for t in ROWS
            if t != "data_source_sync_state"
        }
    store.dispose()

    init = run_cli("init", check=True)
    assert f"schema revision {HEAD_REVISION}" in init.stdout
    assert "admin" not in init.stdout.split("secrets")[1]  # the store had its admin

    store = Store(Settings())
    store.ensure_ready()
    # Every row kept; the templates of connection types new in this release are added.
    added = {t["template_name"] for t in all_predefined()} - PREVIOUS_TEMPLATES
    templates = ROWS["data_source_templates"] + len(added)
    assert counts(store) == {**ROWS, "data_source_templates": templates}
    with store.connect() as conn:
        after = {
            t: [tuple(r) for r in conn.execute(text(f"SELECT id FROM {t} ORDER BY id"))]
            for t in before
        }
        assert (
            after["data_source_templates"][: len(before["data_source_templates"])]
            == (before["data_source_templates"])
        )
        after["data_source_templates"] = before["data_source_templates"]
        assert after == before  # the same rows, ids kept
        seeded = {
            r[0] for r in conn.execute(text("SELECT template_name FROM data_source_templates"))
        }
        assert seeded == PREVIOUS_TEMPLATES | added
        ids = dict(conn.execute(select(reg_t.c.source_id, reg_t.c.id)).all())
        # Children point at their source's registry id.
        linked = conn.execute(
            select(reg_t.c.source_id, func.count())
            .select_from(conns_t.join(reg_t, reg_t.c.id == conns_t.c.registry_id))
            .group_by(reg_t.c.source_id)
        ).all()
        assert dict(linked) == {"readings": 2, "mes_api": 1}
        mapped = conn.execute(select(maps_t.c.registry_id, maps_t.c.target_table)).all()
        assert sorted(mapped) == sorted(
            [(ids["readings"], "press_readings"), (ids["mes_api"], "mes_orders")]
        )
        run = conn.execute(select(hist_t)).mappings().one()
        assert (run["source_id"], run["source_key"]) == (ids["readings"], "readings")
        assert run["created_at"] == run["sync_started_at"]
        # created_by: the admin's id where a username was stored, else unknown (NULL).
        admin = conn.execute(text("SELECT id FROM users WHERE username = 'admin'")).scalar()
        creators = dict(conn.execute(select(reg_t.c.source_id, reg_t.c.created_by)).all())
        assert creators == {"readings": None, "mes_api": admin}
        # Every secret decrypts to what was applied.
        for sid in ("readings", "mes_api"):
            decl = declaration_of(get_source(conn, sid), store.box)
            for c in decl.connections:
                assert c.authentication_config == SECRETS[(sid, c.connection_name)]
        source = get_source(conn, "readings")
        assert (source["priority"], source["mappings"][0]["data_retention_days"]) == (2, 30)
        templates = {t["template_name"]: t for t in list_templates(conn)}
        assert templates["rest_api"]["template_type"] == "api"
        assert templates["rest_api"]["template_config"]["authentication_config"] == {
            "type": "bearer",
            "token": "${env:MES_API_TOKEN}",
        }
    store.dispose()

    # The upgraded store works: the source syncs again, its quarantine is kept.
    (tmp_path / "data" / "readings.json").write_text(
        json.dumps(
            {"data": [{"id": 1, "machine": "P-01", "ts": "2026-11-21T06:00:00", "qty_good": 7}]}
        )
    )
    run_cli("source", "sync", "readings", check=True)
    shown = json.loads(run_cli("source", "show", "readings", "--json", check=True).stdout)
    assert shown["created_by"] is None and len(shown["connections"]) == 2
    history = json.loads(run_cli("history", "readings", "--json", check=True).stdout)
    assert [h["source_id"] for h in history] == ["readings", "readings"]
    assert history[0]["sync_status"] == "success"
    again = run_cli("init", check=True)  # idempotent
    assert f"schema revision {HEAD_REVISION}" in again.stdout
