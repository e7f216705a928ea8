"""Secrets never leave: not in API answers, history, the event log or logs; and key
rotation re-encrypts every stored secret while a server keeps serving."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import httpx2
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from factorysync import services
from factorysync.errors import ConfigError
from factorysync.security.secret_values import PREFIX
from factorysync.security.secrets import SecretBox
from factorysync.store.schema import data_source_connections as conns_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import infolog
from factorysync.store.store import Store
from tests.api.conftest import Api, machine_source, machines, start_server
from tests.conftest import run_cli, write_json

PASSWORD = "Pl4nt-S3cret-Pa55"
TOKEN = "tok-9f8e7d6c5b4a"
DB_PASSWORD = "Db-Pa55w0rd-77"
SECRETS = (PASSWORD, TOKEN, DB_PASSWORD)


def leaky_source(data_dir: Path) -> dict[str, Any]:
    """A source whose secrets also turn up in paths and connection strings."""
    source = machine_source(data_dir / "missing" / PASSWORD / "m.json", source_id="leaky")
    primary = source["connections"][0]
    primary["authentication_config"] = {"password": PASSWORD, "token": TOKEN}
    primary["connection_config"]["legacy_path"] = f"postgresql://mes:{DB_PASSWORD}@db.plant/mes"
    primary["connection_config"]["file_name"] = f"export-{TOKEN}.json"
    source["connections"].append(
        {
            "connection_name": "backup",
            "is_backup": True,
            "connection_config": {"file_path": str(data_dir / TOKEN / "m.json")},
        }
    )
    source["legacy_id"] = "99"
    return source


def test_no_secret_in_answers_history_infolog_or_logs(
    api: Api, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []

    def keep(response: Any) -> Any:
        answers.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    keep(api.post("/api/sources", json=leaky_source(data_dir)))
    tested = keep(api.post("/api/sources/leaky/test")).json()
    assert not tested["ok"] and "***" in tested["connections"][0]["message"]
    run = keep(api.post("/api/sources/leaky/sync")).json()
    failed = api.wait_run(run["run_id"])
    assert failed["sync_status"] == "failed" and "***" in failed["error_message"]
    keep(api.patch("/api/sources/leaky", json={"description": "still secret"}))
    for url in [
        "/api/sources",
        "/api/sources/leaky",
        "/api/sources/leaky/history",
        f"/api/runs/{run['run_id']}",
        "/api/status",
        "/api/templates",
        "/api/legacy/source_data",
        "/api/sources/leaky/data",
        "/metrics",
        "/api/tokens",
        "/api/users",
        "/openapi.json",
    ]:
        keep(api.get(url))
    # Bad requests do not echo what was sent.
    keep(api.post("/api/sources", json={**leaky_source(data_dir), "priority": PASSWORD}))
    keep(api.patch("/api/sources/leaky", json={"refresh_interval": TOKEN}))
    keep(api.client.post("/api/auth/login", json={"username": "admin-user", "password": PASSWORD}))
    keep(api.client.post("/api/auth/login", json={"username": TOKEN, "password": PASSWORD * 100}))
    keep(api.post("/api/users", json={"username": "x", "password": PASSWORD, "role": TOKEN}))

    with api.store.connect() as conn:
        history = [str(r) for r in conn.execute(select(hist_t)).all()]
        events = [str(r) for r in conn.execute(select(infolog)).all()]
        stored_auth = [
            str(v) for v in conn.execute(select(conns_t.c.authentication_config)).scalars()
        ]
    # The service's own logs (the test client's are left out: it logs what it sends).
    logs = [
        r.getMessage() + str(r.exc_info or "")
        for r in caplog.records
        if not r.name.startswith("httpx")
    ]
    assert any("***" in e for e in events)
    for where, texts in [
        ("API answers", answers),
        ("history", history),
        ("infolog", events),
        ("logs", logs),
        ("stored authentication_config", stored_auth),
    ]:
        for secret in SECRETS:
            leaks = [t for t in texts if secret in t]
            assert not leaks, f"{secret!r} found in {where}: {leaks[0][:300]}"
    assert all(v.startswith("{") and PREFIX in v for v in stored_auth if v != "{}")


def test_public_view_shows_identifiers_and_takes_itself_back(api: Api, data_dir: Path) -> None:
    """``type`` and user names are shown; secrets, nested ones included, are masked, and
    sending the view back keeps every stored value."""
    source = machine_source(data_dir / "m.json")
    auth = {
        "type": "basic",
        "username": "mes-reader",
        "password": PASSWORD,
        "environment": {"MES_TOKEN": TOKEN},
    }
    source["connections"][0]["authentication_config"] = auth
    assert api.post("/api/sources", json=source).status_code == 201
    connection = api.get("/api/sources/machines").json()["connections"][0]
    assert connection["authentication_config"] == {
        "type": "basic",
        "username": "mes-reader",
        "password": "***",
        "environment": "***",
    }
    sent = {k: connection[k] for k in ("connection_name", "connection_config")}
    sent["authentication_config"] = connection["authentication_config"]
    assert api.patch("/api/sources/machines", json={"connections": [sent]}).status_code == 200
    with api.store.connect() as conn:
        stored = conn.execute(select(conns_t.c.authentication_config)).scalar_one()
    assert api.store.box.decrypt_config(stored) == auth
    # Renaming the user keeps the masked secrets.
    sent["authentication_config"] = {**sent["authentication_config"], "username": "mes-2"}
    assert api.patch("/api/sources/machines", json={"connections": [sent]}).status_code == 200
    with api.store.connect() as conn:
        stored = conn.execute(select(conns_t.c.authentication_config)).scalar_one()
    assert api.store.box.decrypt_config(stored) == {**auth, "username": "mes-2"}


def _decrypts_with(store: Store, key: bytes) -> bool:
    box = SecretBox([key])
    with store.connect() as conn:
        configs = list(conn.execute(select(conns_t.c.authentication_config)).scalars())
    try:
        return all(box.decrypt_config(c) for c in configs if c)
    except ConfigError:
        return False


def test_rotate_key_reencrypts_everything(api: Api, data_dir: Path, env: dict[str, str]) -> None:
    api.post("/api/sources", json=leaky_source(data_dir))
    key_file = Path(env["FACTORYSYNC_SECRET_KEY_FILE"])
    old = key_file.read_bytes().strip()
    result = services.rotate_secret_key(api.store, grace_s=0)
    new = key_file.read_bytes().strip()
    assert result.values == 2 and result.old_keys_dropped and new != old and b"," not in new
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert _decrypts_with(api.store, new) and not _decrypts_with(api.store, old)
    shown = api.get("/api/sources/leaky").json()  # this process follows the new key file
    assert shown["connections"][0]["authentication_config"] == {"password": "***", "token": "***"}

    kept = services.rotate_secret_key(api.store, grace_s=0, keep_old=True)
    assert not kept.old_keys_dropped and key_file.read_text().strip().endswith(new.decode())


def test_rotate_key_with_the_environment_key(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    old = Fernet.generate_key().decode()
    monkeypatch.setenv("FACTORYSYNC_SECRET_KEY", old)
    from factorysync.settings import Settings

    single = Store(Settings())
    with pytest.raises(ConfigError, match="holds one key"):
        services.rotate_secret_key(single)
    with single.begin() as conn:
        conn.execute(text("DELETE FROM data_source_connections"))
    new = Fernet.generate_key().decode()
    monkeypatch.setenv("FACTORYSYNC_SECRET_KEY", f"{new},{old}")
    both = Store(Settings())
    assert services.rotate_secret_key(both).key_file is None
    single.dispose()
    both.dispose()


def test_rotate_key_while_a_server_serves(env: dict[str, str], data_dir: Path) -> None:
    """`secrets rotate-key` against a running `factorysync serve`: no request fails."""
    init = run_cli("init", check=True)
    token = init.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    write_json(data_dir / "m.json", {"data": machines(4)})
    source = machine_source(data_dir / "m.json")
    source["connections"][0]["authentication_config"] = {"password": PASSWORD}
    server = start_server("serve", env=env)
    failures: list[str] = []
    stop = threading.Event()

    def keep_testing() -> None:
        with httpx2.Client(base_url=server.url, headers=headers, timeout=30) as client:
            while not stop.is_set():
                # Reading the source's secrets needs the current key.
                response = client.post("/api/sources/machines/test")
                if response.status_code != 200 or not response.json()["ok"]:
                    failures.append(response.text)

    try:
        with httpx2.Client(base_url=server.url, headers=headers, timeout=30) as client:
            assert client.post("/api/sources", json=source).status_code == 201
            poller = threading.Thread(target=keep_testing)
            poller.start()
            rotated = run_cli("secrets", "rotate-key", "--grace", "2.5")
            stop.set()
            poller.join()
            assert rotated.returncode == 0, rotated.stderr
            assert "1 stored secret value(s) re-encrypted" in rotated.stdout
            run = client.post("/api/sources/machines/sync").json()
            for _ in range(300):
                done = client.get(f"/api/runs/{run['run_id']}").json()
                if done["sync_status"] != "running":
                    break
                threading.Event().wait(0.05)
            assert done["sync_status"] == "success", done
    finally:
        stop.set()
        _, out, err = server.stop()
    assert not failures, failures[:3]
    assert PASSWORD not in out + err
    new = Path(env["FACTORYSYNC_SECRET_KEY_FILE"]).read_bytes().strip()
    checker = Store()
    assert _decrypts_with(checker, new)
    checker.dispose()
