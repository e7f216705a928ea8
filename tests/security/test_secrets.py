"""Secrets: encrypted at rest, key file 0600, never printed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import MetaData, select

from factorysync import services
from factorysync.errors import ConfigError
from factorysync.security.redaction import Redactor, redact_known
from factorysync.security.secrets import Secret, SecretBox, resolve_env_refs
from factorysync.settings import Settings
from factorysync.store.store import Store
from tests.conftest import run_cli, write_json

PLAIN = {
    "password": "Sup3r-Secret-PW!",
    "token": "tok-7f3a9c1e5b",
    "nested": {"k": "api-key-XYZ123"},
}


def test_box_round_trip_and_rotation() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    box = SecretBox([old])
    stored = box.encrypt_config(PLAIN)
    assert all(v.startswith("enc:v1:") for v in stored.values())
    assert box.decrypt_config(stored) == PLAIN
    rotated_box = SecretBox([new, old])
    rotated = {k: rotated_box.rotate(v) for k, v in stored.items()}
    assert SecretBox([new]).decrypt_config(rotated) == PLAIN
    with pytest.raises(ConfigError, match="cannot be decrypted with the configured key"):
        SecretBox([new]).decrypt_config(stored)


def test_key_file_created_with_owner_only_permissions(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/s.db",
        secret_key_file=tmp_path / "keys" / "fs.key",
        data_roots=str(tmp_path / "data"),
    )
    result = services.init_store(Store(settings))
    assert result.key_created
    mode = stat.S_IMODE((tmp_path / "keys" / "fs.key").stat().st_mode)
    assert mode == 0o600
    assert not services.init_store(Store(settings)).key_created  # kept, not replaced
    os.chmod(tmp_path / "keys" / "fs.key", 0o644)
    with pytest.raises(ConfigError, match=r"readable by others .* chmod 600"):
        SecretBox.from_settings(settings)


def test_bad_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a valid Fernet key"):
        SecretBox.from_settings(Settings(secret_key="not-a-key"))
    with pytest.raises(ConfigError, match="run 'factorysync init'"):
        SecretBox.from_settings(Settings(secret_key_file=tmp_path / "missing.key"))


def test_env_references(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MES_TOKEN", "abc")
    assert resolve_env_refs({"t": "Bearer ${env:MES_TOKEN}"}, where="auth") == {"t": "Bearer abc"}
    monkeypatch.delenv("MES_TOKEN")
    with pytest.raises(ConfigError, match=r"auth\.t: environment variable MES_TOKEN is not set"):
        resolve_env_refs({"t": "${env:MES_TOKEN}"}, where="auth")


def test_every_unresolved_reference_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """One error names every reference that cannot be resolved, where each one is."""
    monkeypatch.setenv("MES_USER", "plant")
    for name in ("MES_TOKEN", "MES_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    config = {
        "username": "${env:MES_USER}",
        "password": "${env:MES_PASSWORD}",
        "headers": [{"Authorization": "Bearer ${env:MES_TOKEN}"}],
        "key": "${env:FACTORYSYNC_SECRET_KEY}",
    }
    with pytest.raises(ConfigError) as caught:
        resolve_env_refs(config, where="auth")
    message = str(caught.value)
    assert "auth.password: environment variable MES_PASSWORD is not set" in message
    assert "auth.headers[0].Authorization: environment variable MES_TOKEN is not set" in message
    assert "auth.key: ${env:FACTORYSYNC_SECRET_KEY} is not allowed" in message
    assert "MES_USER" not in message and "plant" not in message
    # What was left of a value whose variable is not set is no secret to mask later.
    assert redact_known("header Bearer q7-unseen") == "header Bearer q7-unseen"


def test_redactor_and_secret_repr() -> None:
    redact = Redactor()
    redact.add(PLAIN)
    text = "login Sup3r-Secret-PW! to postgresql://plant:pw123@db/x?token=abc&x=1 api-key-XYZ123"
    cleaned = redact(text)
    for leaked in ("Sup3r-Secret-PW!", "pw123", "abc&", "api-key-XYZ123"):
        assert leaked not in cleaned
    assert "postgresql://plant:***@db/x?token=***&x=1" in cleaned
    assert "Sup3r" not in repr(Secret("Sup3r-Secret-PW!"))


def _all_text(store: Store) -> str:
    """Every value of every table in the store, as text."""
    chunks = []
    with store.connect() as conn:
        meta = MetaData()
        meta.reflect(conn)
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                chunks.append(repr(tuple(row)))
    return "\n".join(chunks)


def test_store_holds_no_plaintext_secret(store: Store, tmp_path: Path, data_dir: Path) -> None:
    write_json(data_dir / "a.json", [{"id": 1}])
    doc = {
        "sources": [
            {
                "source_id": "secret_src",
                "name": "S",
                "source_type": "json",
                "connections": [
                    {
                        "connection_config": {"file_path": str(data_dir / "a.json")},
                        "authentication_config": PLAIN,
                    }
                ],
                "mappings": [{"target_table": "secret_src"}],
            }
        ]
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    services.apply_file(store, tmp_path / "s.yaml")
    services.sync_many(store, ["secret_src"])
    dump = _all_text(store)
    assert "enc:v1:" in dump
    for value in ("Sup3r-Secret-PW!", "tok-7f3a9c1e5b", "api-key-XYZ123"):
        assert value not in dump
    if store.dialect == "sqlite":
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("factorysync.db*"))
        assert b"Sup3r-Secret-PW!" not in raw and b"tok-7f3a9c1e5b" not in raw
    # Nor does any command print it.
    for args in (
        ["source", "show", "secret_src"],
        ["source", "show", "secret_src", "--json"],
        ["source", "list", "--json"],
        ["history", "--json"],
        ["status"],
    ):
        proc = run_cli(*args, check=True)
        assert "Sup3r-Secret-PW!" not in proc.stdout + proc.stderr
    shown = run_cli("source", "show", "secret_src", "--json", check=True).stdout
    assert '"password": "***"' in shown
