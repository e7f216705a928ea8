"""``factorysync export``: secrets in ``connection_config`` masked as the API masks them,
placeholder names that never collide, and ``apply`` that never loses a stored secret."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from factorysync import services
from factorysync.errors import ConfigError
from factorysync.export import export_sources
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.store import Store
from tests.conftest import run_cli

TOKEN = "tok-Zr81bQ4wLm"
QUERY_KEY = "qk-55Hd0aPc"


def api_source(source_id: str = "mes") -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": "MES orders",
        "source_type": "api",
        "connections": [
            {
                "connection_name": "primary",
                "connection_config": {
                    "url": f"https://mes.plant.example/orders?api_key={QUERY_KEY}&site=2",
                    "headers": {"X-Auth": f"Bearer {TOKEN}", "Accept": "application/json"},
                },
                "authentication_config": {"token": TOKEN},
            }
        ],
        "mappings": [{"target_table": "orders", "mapping_config": {"primary_key": "id"}}],
    }


def file_source(source_id: str, secret: str, connection: str = "c") -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": source_id,
        "source_type": "json",
        "connections": [
            {
                "connection_name": connection,
                "connection_config": {"file_path": f"{source_id}.json"},
                "authentication_config": {"token": secret},
            }
        ],
        "mappings": [{"target_table": source_id.replace("-", "_") + "_t"}],
    }


def apply(store: Store, path: Path, sources: list[dict[str, Any]]) -> dict[str, str]:
    path.write_text(yaml.safe_dump({"sources": sources}))
    return {c.source_id: c.action for c in services.apply_file(store, path)}


def stored(store: Store, source_id: str) -> dict[str, Any]:
    with store.connect() as conn:
        return declaration_of(get_source(conn, source_id), store.box).model_dump(mode="json")


def test_connection_config_is_masked_as_the_api_shows_it_and_kept_on_apply(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.yaml"
    assert apply(store, path, [api_source()]) == {"mes": "created"}
    before = stored(store, "mes")

    for as_env in (False, True):
        found = export_sources(store, secrets_as_env=as_env)
        assert TOKEN not in found.text and QUERY_KEY not in found.text
        config = yaml.safe_load(found.text)["sources"][0]["connections"][0]["connection_config"]
        assert config["url"] == "https://mes.plant.example/orders?api_key=***&site=2"
        assert config["headers"] == {"X-Auth": "Bearer ***", "Accept": "application/json"}
        with store.connect() as conn:
            shown = services.public_source(store, get_source(conn, "mes"))
        assert config == shown["connections"][0]["connection_config"]

        for name in found.env_names:
            monkeypatch.setenv(name, TOKEN)
        path.write_text(found.text)
        changes = services.apply_file(store, path)
        assert [(c.action, c.details) for c in changes] == [("unchanged", [])]
        assert stored(store, "mes") == before


def test_env_names_are_unique_per_place(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {"a-b": "secret-dash-1", "a_b": "secret-under-2", "x": "secret-x-3"}
    path = tmp_path / "s.yaml"
    apply(store, path, [file_source(sid, secret) for sid, secret in secrets.items()])

    found = export_sources(store, secrets_as_env=True)
    assert len(found.env_names) == 3 == len(set(found.env_names))
    assert "FS_SECRET_X_C_TOKEN" in found.env_names  # a name of its own: no hash
    assert export_sources(store, secrets_as_env=True).env_names == found.env_names  # stable
    document = yaml.safe_load(found.text)
    placed = {
        s["source_id"]: s["connections"][0]["authentication_config"]["token"]
        for s in document["sources"]
    }
    assert sorted(placed.values()) == sorted(f"${{env:{n}}}" for n in found.env_names)
    assert all(found.text.count(f"#   {name}\n") == 1 for name in found.env_names)

    for sid, reference in placed.items():
        monkeypatch.setenv(reference[len("${env:") : -1], secrets[sid])
    path.write_text(found.text)
    assert {c.source_id: c.action for c in services.apply_file(store, path)} == dict.fromkeys(
        secrets, "unchanged"
    )


def test_apply_refuses_a_placeholder_whose_variable_is_not_set(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.yaml"
    apply(store, path, [file_source("first", "secret-first-1"), api_source()])
    before = {sid: stored(store, sid) for sid in ("first", "mes")}
    found = export_sources(store, secrets_as_env=True)
    for name in found.env_names:
        monkeypatch.delenv(name, raising=False)
    document = yaml.safe_load(found.text)
    document["sources"][0]["priority"] = 3  # a change the failure must not keep either
    monkeypatch.setenv("FS_SECRET_FIRST_C_TOKEN", "secret-first-1")
    path.write_text(yaml.safe_dump(document))

    expected = (
        r"source 'mes': 1 problem\(s\)\n"
        r"  - connections\.primary\.authentication_config\.token: environment variable "
        r"FS_SECRET_MES_PRIMARY_TOKEN is not set"
    )
    for dry_run in (True, False):
        with pytest.raises(ConfigError, match=expected):
            services.apply_file(store, path, dry_run=dry_run)
    assert {sid: stored(store, sid) for sid in before} == before


def test_apply_names_the_unset_variables_of_every_source(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only the first source's: one run of `apply` shows every variable to set."""
    path = tmp_path / "s.yaml"
    apply(store, path, [file_source("first", "secret-first-1"), api_source()])
    before = {sid: stored(store, sid) for sid in ("first", "mes")}
    found = export_sources(store, secrets_as_env=True)
    for name in found.env_names:
        monkeypatch.delenv(name, raising=False)
    path.write_text(found.text)

    with pytest.raises(ConfigError) as caught:
        services.apply_file(store, path)
    assert caught.value.problems == [
        f"source {sid!r}: connections.{conn}.authentication_config.token: environment "
        f"variable {name} is not set, and a secret is stored: set it where the file is "
        "applied, or write '***' to keep the stored secret"
        for sid, conn, name in (
            ("first", "c", "FS_SECRET_FIRST_C_TOKEN"),
            ("mes", "primary", "FS_SECRET_MES_PRIMARY_TOKEN"),
        )
    ]
    assert str(caught.value).startswith("2 sources: 2 problem(s)\n")
    assert {sid: stored(store, sid) for sid in before} == before


def test_a_value_that_only_contains_a_reference_is_a_secret(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANT_SUFFIX", "unused")
    mixed = "pw-${env:PLANT_SUFFIX}-tail"
    source = file_source("mixed", mixed)
    source["connections"][0]["authentication_config"]["api_key"] = "${env:MES_TOKEN}"
    path = tmp_path / "s.yaml"
    apply(store, path, [source])

    masked = export_sources(store)
    assert mixed not in masked.text
    auth = yaml.safe_load(masked.text)["sources"][0]["connections"][0]["authentication_config"]
    assert auth == {"token": "***", "api_key": "${env:MES_TOKEN}"}  # a whole reference stays

    found = export_sources(store, secrets_as_env=True)
    assert mixed not in found.text and found.env_names == ["FS_SECRET_MIXED_C_TOKEN"]
    monkeypatch.setenv("FS_SECRET_MIXED_C_TOKEN", mixed)
    path.write_text(found.text)
    assert [c.action for c in services.apply_file(store, path)] == ["unchanged"]
    assert stored(store, "mixed")["connections"][0]["authentication_config"]["token"] == mixed


def test_export_to_a_file_is_readable_by_its_owner_only(store: Store, tmp_path: Path) -> None:
    apply(store, tmp_path / "s.yaml", [file_source("one", "secret-one-1")])
    out = tmp_path / "export.yaml"
    previous = os.umask(0o022)
    try:
        run_cli("export", "-o", str(out), check=True)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert yaml.safe_load(out.read_text())["sources"][0]["source_id"] == "one"
