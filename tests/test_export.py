"""``factorysync export``: YAML that ``apply`` reads back as unchanged, secrets never in
clear; ``GET /api/export`` (admin) answers the same."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from factorysync import services
from factorysync.api.app import create_app
from factorysync.connectors.registry import connection_types
from factorysync.demo.generator import generate_demo
from factorysync.export import env_name, export_sources
from factorysync.store.accounts import create_token, create_user
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.store import Store
from factorysync.store.templates import declaration_from_template, get_template
from tests.conftest import run_cli

SECRET = "s3cret-value-7Q"


def one_of_each_type(data_dir: Path) -> list[dict[str, Any]]:
    """A source of every connection type, each with a secret where its type takes one."""
    tool = data_dir / "tool.py"
    tool.write_text("print('[]')\n")
    made = {
        "file": ("json_file", {"file_path": str(data_dir / "f.json")}),
        "database": ("postgresql_table", {}),
        "api": ("rest_api", {}),
        "artisan": ("laravel_artisan", {}),
        "mqtt": ("mqtt_topic", {}),
        "opcua": ("opcua_nodes", {}),
        "modbus": ("press_modbus", {}),
        "s7": ("press_s7", {}),
    }
    return [
        *(
            {"template": template, "connection_type": kind, "connection_config": config}
            for kind, (template, config) in made.items()
        ),
        {
            "connection_type": "command",
            "declaration": {
                "source_id": "type-command",
                "name": "Shift export",
                "source_type": "command",
                "refresh_interval": 600,
                "connections": [
                    {
                        "connection_config": {"command": sys.executable, "parameters": [str(tool)]},
                        "authentication_config": {"api_key": SECRET},
                    }
                ],
                "mappings": [
                    {
                        "target_table": "shift_export",
                        "sync_strategy": "incremental",
                        "sync_frequency": None,
                        "mapping_config": {"primary_key": ["id"], "cursor_field": "ts"},
                    }
                ],
            },
        },
        {
            "connection_type": "push",
            "declaration": {
                "source_id": "type-push",
                "name": "Pushed readings",
                "source_type": "push",
                "description": "posted by the line PLC gateway",
                "connections": [{"connection_config": {}, "authentication_config": {}}],
                "mappings": [
                    {
                        "target_table": "pushed",
                        "sync_strategy": "realtime",
                        "mapping_config": {"primary_key": ["machine"]},
                    }
                ],
            },
        },
    ]


def register_every_type(store: Store, data_dir: Path) -> list[str]:
    made = []
    for spec in one_of_each_type(data_dir):
        if "template" in spec:
            with store.connect() as conn:
                template = get_template(conn, spec["template"])
            decl = declaration_from_template(
                template,
                f"type-{spec['connection_type']}",
                connection_config=spec["connection_config"],
            )
            auth = decl["connections"][0]["authentication_config"]
            for key in list(auth):
                if key not in ("type", "username"):
                    auth[key] = SECRET  # a literal secret, as a user may store one
            decl["connections"].append(
                dict(
                    decl["connections"][0],
                    connection_name="backup",
                    is_primary=False,
                    is_backup=True,
                )
            )
        else:
            decl = spec["declaration"]
        services.create_source(store, decl, created_by=None)
        made.append(decl["source_id"])
    return made


def test_every_connection_type_round_trips_unchanged(
    store: Store, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = register_every_type(store, data_dir)
    assert {s.split("-", 1)[1] for s in made} == set(connection_types())
    # One source on a site of its own, with a zone and shifts (written in the export).
    sites = tmp_path / "sites.yaml"
    sites.write_text(
        yaml.safe_dump(
            {
                "sites": [
                    {
                        "name": "line-2",
                        "time_zone": "Asia/Jakarta",
                        "shifts": [{"name": "day", "start": "07:00", "end": "19:00"}],
                    }
                ]
            }
        )
    )
    services.apply_file(store, sites)
    services.update_source(store, "type-api", {"site": "line-2"})
    before = {sid: _declared(store, sid) for sid in made}
    assert before["type-api"]["site"] == "line-2"

    # Default: secrets as "***", which apply reads as "keep the stored secret".
    masked = export_sources(store)
    assert SECRET not in masked.text and masked.env_names == []
    path = tmp_path / "masked.yaml"
    path.write_text(masked.text)
    changes = services.apply_file(store, path)
    assert {c.source_id: c.action for c in changes} == dict.fromkeys(made, "unchanged")

    # With secrets as environment variables: placeholders, and the names to set.
    found = export_sources(store, secrets_as_env=True)
    assert SECRET not in found.text and "***" not in found.text
    assert env_name("type-api", "primary", "token") in found.env_names
    assert all(f"#   {name}" in found.text for name in found.env_names)
    for name in found.env_names:
        monkeypatch.setenv(name, SECRET)
    path.write_text(found.text)
    changes = services.apply_file(store, path)
    assert {c.source_id: c.action for c in changes} == dict.fromkeys(made, "unchanged")
    assert {sid: _declared(store, sid) for sid in made} == before

    # The same file on a second registry makes the same sources, the secrets included.
    monkeypatch.setenv("FACTORYSYNC_DATABASE_URL", f"sqlite:///{tmp_path / 'second.db'}")
    from factorysync.settings import Settings

    second = Store(Settings())
    services.init_store(second)
    created = services.apply_file(second, path)
    assert [c.action for c in created if c.kind == "source"] == ["created"] * len(made)
    assert [(c.source_id, c.action) for c in created if c.kind == "site"] == [("line-2", "created")]
    for sid in made:
        with second.connect() as conn:
            decl = declaration_of(get_source(conn, sid), second.box)
        assert decl.site == ("line-2" if sid == "type-api" else "main")
        stored = {c.connection_name: c.authentication_config for c in decl.connections}
        assert all(
            v == SECRET or k in ("type", "username") or v.startswith("${env:")
            for auth in stored.values()
            for k, v in auth.items()
        )
    second.dispose()


def _declared(store: Store, source_id: str) -> dict[str, Any]:
    with store.connect() as conn:
        decl = declaration_of(get_source(conn, source_id), store.box)
    return decl.model_dump(mode="json")


def test_masked_secret_needs_a_stored_one(store: Store, tmp_path: Path, data_dir: Path) -> None:
    document = {
        "sources": [
            {
                "source_id": "fresh",
                "name": "Fresh",
                "source_type": "json",
                "connections": [
                    {
                        "connection_config": {"file_path": str(data_dir / "x.json")},
                        "authentication_config": {"token": "***"},
                    }
                ],
                "mappings": [{"target_table": "fresh"}],
            }
        ]
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(Exception, match=r"authentication_config\.token: '\*\*\*' keeps a stored"):
        services.apply_file(store, path)


def test_the_demo_sources_round_trip_unchanged(
    store: Store, data_dir: Path, tmp_path: Path
) -> None:
    folder = data_dir / "demo"
    generate_demo(folder, size_mb=0.2)
    services.import_legacy(store, folder / "constant.js", folder)
    exported = run_cli("export", check=True)
    document = yaml.safe_load(exported.stdout)
    assert len(document["sources"]) == 51
    path = tmp_path / "demo.yaml"
    path.write_text(exported.stdout)
    applied = run_cli("apply", str(path), "--json", check=True)
    actions = {c["action"] for c in json.loads(applied.stdout)}
    assert actions == {"unchanged"}
    one = run_cli("export", document["sources"][0]["source_id"], check=True)
    assert [s["source_id"] for s in yaml.safe_load(one.stdout)["sources"]] == [
        document["sources"][0]["source_id"]
    ]


def test_api_export_is_for_admins_and_matches_the_cli(store: Store, data_dir: Path) -> None:
    register_every_type(store, data_dir)
    with store.begin() as conn:
        tokens = {}
        for role in ("admin", "operator"):
            create_user(conn, f"{role}1", role)
            tokens[role], _ = create_token(conn, f"{role}1", name="test")
    with TestClient(create_app(store)) as client:

        def get(role: str, **params: Any) -> Any:
            headers = {"Authorization": f"Bearer {tokens[role]}"}
            return client.get("/api/export", params=params, headers=headers)

        assert get("operator").status_code == 403
        answer = get("admin", secrets_as_env="true", source_id=["type-api", "type-push"])
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/yaml")
        assert SECRET not in answer.text
        assert answer.headers["x-factorysync-env-names"] == env_name(
            "type-api", "primary", "token"
        ) + "," + env_name("type-api", "backup", "token")
        same = export_sources(store, ["type-api", "type-push"], secrets_as_env=True)
        assert answer.text == same.text


def test_a_left_out_retention_keeps_the_stored_one(store: Store, tmp_path: Path) -> None:
    """A sources file written before the design's default (365) leaves retention out of
    mappings that kept rows forever: re-applied, they still keep them."""
    from sqlalchemy import update

    from factorysync.store.schema import data_source_mappings

    def document(*tables: str) -> dict[str, Any]:
        return {
            "sources": [
                {
                    "source_id": "kept",
                    "name": "Kept",
                    "source_type": "json",
                    "connections": [{"connection_config": {"file_path": "kept.json"}}],
                    "mappings": [{"target_table": t, "sync_strategy": "full"} for t in tables],
                }
            ]
        }

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(document("kept_rows")))
    services.apply_file(store, path)
    with store.begin() as conn:  # as the store held it before the upgrade
        conn.execute(update(data_source_mappings).values(data_retention_days=None))

    path.write_text(yaml.safe_dump(document("kept_rows", "new_rows")))
    [change] = services.apply_file(store, path)
    assert change.details == ["mappings.new_rows added"]
    retention = {
        m["target_table"]: m["data_retention_days"] for m in _declared(store, "kept")["mappings"]
    }
    assert retention == {"kept_rows": None, "new_rows": 365}

    # Declared, it is applied.
    declared = document("kept_rows", "new_rows")
    declared["sources"][0]["mappings"][0]["data_retention_days"] = 30
    path.write_text(yaml.safe_dump(declared))
    [change] = services.apply_file(store, path)
    assert change.details == ["mappings.kept_rows.data_retention_days: None → 30"]
