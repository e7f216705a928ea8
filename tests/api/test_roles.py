"""Every endpoint with each role: allowed ones succeed, the others get 403; no token or a
bad one gets 401. Against SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from factorysync.alerts import records as alert_records
from factorysync.store import accounts as auth
from factorysync.store.types import utcnow
from tests.api.conftest import ROLES, Api, machine_source

RANK = {"public": -1, "viewer": 0, "operator": 1, "admin": 2}
_n = itertools.count()


def endpoints(api: Api, data_dir: Path) -> list[tuple[str, str, str, int, Callable[[], Any]]]:
    """(method, path, least role, success status, request body maker)."""

    def new_source() -> dict[str, Any]:
        return machine_source(data_dir / "machines.json", source_id=f"extra_{next(_n)}")

    def throwaway() -> str:
        body = new_source()
        assert api.post("/api/sources", json=body).status_code == 201
        return str(body["source_id"])

    def none() -> None:
        return None

    with api.store.begin() as conn:
        alert = {"source_id": "machines", "rule": "rejected_rows", "message": "m"}
        alert_records.raise_alerts(conn, [alert], utcnow())
        alert_id = alert_records.list_alerts(conn)[0]["id"]

    if api.get("/api/sources/pushed").status_code == 404:
        pushed = {
            "source_id": "pushed",
            "name": "Pushed",
            "source_type": "push",
            "connections": [{"connection_config": {}}],
            "mappings": [{"target_table": "pushed", "mapping_config": {"primary_key": ["id"]}}],
        }
        assert api.post("/api/sources", json=pushed).status_code == 201

    return [
        ("GET", "/api/health", "public", 200, none),
        ("GET", "/api/status", "viewer", 200, none),
        ("GET", "/api/data/machines?limit=5", "viewer", 200, none),
        ("GET", "/api/sources/machines/data", "viewer", 200, none),
        ("GET", "/api/legacy/source_data", "viewer", 200, none),
        ("GET", "/metrics", "viewer", 200, none),
        ("GET", "/api/auth/me", "viewer", 200, none),
        ("GET", "/api/tokens", "viewer", 200, none),
        ("POST", "/api/tokens", "viewer", 201, lambda: {"name": "mine"}),
        ("GET", "/api/sources", "operator", 200, none),
        ("GET", "/api/sources/machines", "operator", 200, none),
        ("POST", "/api/sources/machines/test", "operator", 200, none),
        ("POST", "/api/sources/machines/sync", "operator", 202, none),
        ("GET", "/api/sources/machines/history", "operator", 200, none),
        ("GET", "/api/runs/1", "operator", 200, none),
        ("GET", "/api/runs", "operator", 200, none),
        ("GET", "/api/templates", "operator", 200, none),
        ("GET", "/api/alerts", "viewer", 200, none),
        ("POST", f"/api/alerts/{alert_id}/acknowledge", "operator", 200, none),
        ("POST", "/api/ingest/pushed", "operator", 200, lambda: {"id": next(_n)}),
        ("POST", "/api/sources", "admin", 201, new_source),
        ("PATCH", "/api/sources/machines", "admin", 200, lambda: {"priority": 1}),
        ("DELETE", "/api/sources/{throwaway}", "admin", 204, throwaway),
        ("GET", "/api/users", "admin", 200, none),
        ("POST", "/api/users", "admin", 201, lambda: {"username": f"u{next(_n)}"}),
        ("GET", "/api/users/viewer-user", "admin", 200, none),
        ("PATCH", "/api/users/viewer-user", "admin", 200, lambda: {"full_name": "V. Iewer"}),
    ]


def call(api: Api, method: str, path: str, role: str | None, make: Callable[[], Any]) -> Any:
    body = make()
    if "{throwaway}" in path:
        path, body = path.replace("{throwaway}", body), None
    headers = api.as_(role)
    kwargs = {"json": body} if body is not None else {}
    response = api.client.request(method, path, headers=headers, **kwargs)
    if response.status_code == 202:
        api.wait_run(response.json()["run_id"])
    return response


def test_every_endpoint_by_role(synced: Api, data_dir: Path) -> None:
    api = synced
    wrong: list[str] = []
    for method, path, least, status, make in endpoints(api, data_dir):
        for role in (*ROLES, None):
            allowed = least == "public" or (role is not None and RANK[role] >= RANK[least])
            got = call(api, method, path, role, make).status_code
            want = status if allowed else (401 if role is None else 403)
            if got != want:
                wrong.append(f"{method} {path} as {role or 'nobody'}: {got}, expected {want}")
    assert not wrong, "\n".join(wrong)


def test_stream_refuses_without_a_token(synced: Api) -> None:
    # An allowed stream never ends, so tests/api/test_live.py reads it over real HTTP.
    assert synced.client.get("/api/stream/machines").status_code == 401
    headers = {"Authorization": "Bearer fs_" + "x" * 43}
    assert synced.client.get("/api/stream/machines", headers=headers).status_code == 401


def test_own_tokens_only_unless_admin(api: Api) -> None:
    mine = api.post("/api/tokens", role="viewer", json={"name": "laptop"}).json()
    assert mine["username"] == "viewer-user" and mine["token"].startswith("fs_")
    listed = api.get("/api/tokens", role="viewer").json()
    assert {t["username"] for t in listed} == {"viewer-user"}
    assert len(api.get("/api/tokens", role="admin").json()) >= 4
    others = api.get("/api/tokens", role="admin").json()
    operator_token = next(t for t in others if t["username"] == "operator-user")
    assert api.delete(f"/api/tokens/{operator_token['id']}", role="viewer").status_code == 404
    refused = api.post("/api/tokens", role="viewer", json={"username": "admin-user"})
    assert refused.status_code == 403
    for_other = api.post("/api/tokens", role="admin", json={"username": "viewer-user"})
    assert for_other.status_code == 201 and for_other.json()["username"] == "viewer-user"


def test_bad_tokens_get_401(api: Api) -> None:
    def status(token: str | None, scheme: str = "Bearer") -> int:
        headers = {"Authorization": f"{scheme} {token}"} if token else {}
        return int(api.client.get("/api/status", headers=headers).status_code)

    assert status(None) == 401
    assert status("not-a-token") == 401
    assert status("fs_" + "x" * 43) == 401
    assert status(api.tokens["viewer"], scheme="Basic") == 401
    missing = api.client.get("/api/status")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert status(api.tokens["viewer"]) == 200

    with api.store.begin() as conn:
        expired, row = auth.create_token(
            conn, "viewer-user", expires_at=utcnow() + timedelta(seconds=60)
        )
        conn.execute(
            auth.tokens_t.update()
            .where(auth.tokens_t.c.id == row["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert status(expired) == 401

    mine = api.post("/api/tokens", role="viewer", json={}).json()
    assert status(mine["token"]) == 200
    assert api.delete(f"/api/tokens/{mine['id']}", role="viewer").status_code == 200
    assert status(mine["token"]) == 401

    assert api.patch("/api/users/viewer-user", json={"is_active": False}).status_code == 200
    assert status(api.tokens["viewer"]) == 401
    assert api.patch("/api/users/viewer-user", json={"is_active": True}).status_code == 200
    assert status(api.tokens["viewer"]) == 200


def test_scoped_tokens_reach_only_their_scopes(synced: Api) -> None:
    api = synced
    read = api.post("/api/tokens", role="admin", json={"scopes": ["read"]}).json()["token"]
    as_read = {"Authorization": f"Bearer {read}"}
    assert api.client.get("/api/data/machines", headers=as_read).status_code == 200
    assert api.client.get("/api/status", headers=as_read).status_code == 200
    # An admin's token limited to 'read' cannot manage the registry or make tokens.
    refused = api.client.get("/api/sources", headers=as_read)
    assert refused.status_code == 403 and "'operate'" in refused.json()["detail"]
    assert api.client.post("/api/tokens", headers=as_read, json={}).status_code == 403
    me = api.client.get("/api/auth/me", headers=as_read).json()
    assert me == {
        "username": "admin-user",
        "role": "admin",
        "token_id": me["token_id"],
        "scopes": ["read"],
    }
    bad = api.post("/api/tokens", role="admin", json={"scopes": ["Read me!"]})
    assert bad.status_code == 422 and "scopes" in bad.json()["detail"][0]["msg"]
    ingest = api.post("/api/tokens", role="admin", json={"scopes": ["ingest:machines"]})
    assert ingest.status_code == 201 and ingest.json()["scopes"] == ["ingest:machines"]
