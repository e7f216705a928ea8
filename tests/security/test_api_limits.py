"""Request bodies are bounded, unexpected errors keep the security headers, sources cannot
read the service's own settings, and the process-wide secret memory stays bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from factorysync.api.headers import SECURITY_HEADERS
from factorysync.connectors.api.secrets import Secrets
from factorysync.errors import ConfigError
from factorysync.security import redaction as secrets_module
from factorysync.security.redaction import Redactor
from factorysync.security.secrets import resolve_env_refs
from factorysync.store.store import Store
from tests.api.conftest import Api, machine_source, make_api

HEADER_NAMES = {name.decode() for name, _ in SECURITY_HEADERS}


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    yield from make_api(store)


def test_a_body_over_the_limit_is_refused_before_it_is_parsed(
    api: Api, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = api.store.settings.api_max_body_bytes
    body = machine_source(data_dir / "m.json")
    body["description"] = "x" * (limit + 10)
    answer = api.post("/api/sources", json=body)
    assert answer.status_code == 413
    assert f"{limit:,} bytes" in answer.json()["detail"]
    assert set(answer.headers) >= HEADER_NAMES
    assert api.get("/api/sources/machines").status_code == 404

    # Sent in chunks without a length, the body is counted as it arrives.
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    answer = api.post(
        "/api/sources", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert api.get("/api/health", role=None).status_code == 200

    # A declaration of ordinary size still goes through.
    assert api.post("/api/sources", json=machine_source(data_dir / "m.json")).status_code == 201


def test_an_unexpected_error_keeps_the_security_headers(api: Api) -> None:
    def boom() -> None:
        raise RuntimeError("unexpected")

    app = api.client.app
    app.add_api_route("/api/boom-test", boom)  # type: ignore[attr-defined]
    with TestClient(app, raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        answer = client.get("/api/boom-test", headers=api.as_("admin"))
    assert answer.status_code == 500
    assert answer.json() == {"detail": "internal error (logged)"}
    assert set(answer.headers) >= HEADER_NAMES


def test_a_source_cannot_reference_the_services_own_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FACTORYSYNC_SECRET_KEY", "the-service-key")
    monkeypatch.setenv("MES_TOKEN", "mes-token-value")
    with pytest.raises(ConfigError, match=r"auth\.token: \$\{env:FACTORYSYNC_SECRET_KEY\}"):
        resolve_env_refs({"token": "${env:FACTORYSYNC_SECRET_KEY}"}, where="auth")
    with pytest.raises(ConfigError, match="not allowed"):
        resolve_env_refs({"token": "x-${env:factorysync_database_url}"}, where="auth")
    assert resolve_env_refs({"token": "${env:MES_TOKEN}"}, where="auth") == {
        "token": "mes-token-value"
    }


def test_the_process_wide_secret_memory_keeps_only_the_newest() -> None:
    redact = Redactor(keep=3)
    tokens = [f"rotating-token-{i:04d}" for i in range(10)]
    for token in tokens:
        redact.add_secret(token)
    text = " ".join(tokens)
    masked = redact(text).split()
    assert masked[-3:] == ["***"] * 3
    assert masked[:7] == tokens[:7]
    # Learnt again, an old value becomes the newest and is kept.
    redact.add_secret(tokens[0])
    assert redact(tokens[0]) == "***"
    assert redact(tokens[7]) == tokens[7]
    assert secrets_module.KNOWN_SECRETS_KEPT >= 1000


def test_api_connection_masks_secrets_not_identifiers() -> None:
    secrets = Secrets({"type": "basic", "username": "root", "password": "PLANT\\svc-key"})
    message = 'login as root failed: {"password": "PLANT\\\\svc-key"}'
    masked = secrets(message)
    assert "root" in masked
    assert "svc-key" not in masked
    secrets.add("fetched-token-123456")
    assert secrets("Bearer fetched-token-123456") == "Bearer ***"
