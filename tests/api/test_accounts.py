"""Accounts: passwords (Argon2) and tokens (SHA-256) stored hashed, login and its rate
limit, users over the API, and the ``init`` / ``user`` / ``token`` commands."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from factorysync.store import accounts as auth
from factorysync.store.schema import api_tokens, users
from tests.api.conftest import PASSWORD, Api, cli_with_input, make_api
from tests.conftest import run_cli


def test_passwords_and_tokens_are_stored_hashed(api: Api) -> None:
    created = api.post(
        "/api/users", json={"username": "ops", "role": "operator", "password": PASSWORD}
    )
    assert created.status_code == 201 and created.json()["has_password"] is True
    assert "password_hash" not in created.text and PASSWORD not in created.text
    token = api.post("/api/tokens", json={"username": "ops", "name": "scada"}).json()
    with api.store.connect() as conn:
        stored_hash = conn.execute(
            select(users.c.password_hash).where(users.c.username == "ops")
        ).scalar_one()
        row = conn.execute(select(api_tokens).where(api_tokens.c.id == token["id"])).one()
    assert stored_hash.startswith("$argon2id$") and PASSWORD not in stored_hash
    assert row.token_hash == auth.hash_token(token["token"]) and token["token"] not in str(row)
    assert row.token_prefix == token["token"][:10] == token["token_prefix"]
    listed = api.get("/api/tokens").json()
    assert all("token" not in t and "token_hash" not in t for t in listed)


def test_login_gives_an_expiring_token(api: Api) -> None:
    api.post("/api/users", json={"username": "ops", "role": "operator", "password": PASSWORD})
    ok = api.client.post("/api/auth/login", json={"username": "ops", "password": PASSWORD})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["token_type"] == "bearer" and body["user"]["role"] == "operator"
    headers = {"Authorization": f"Bearer {body['token']}"}
    assert api.client.get("/api/sources", headers=headers).status_code == 200
    assert api.client.get("/api/users", headers=headers).status_code == 403
    assert api.get("/api/users/ops").json()["last_login"] is not None
    tokens = api.get("/api/tokens?username=ops").json()
    assert tokens[0]["name"] == "login" and tokens[0]["expires_at"] is not None
    wrong = api.client.post("/api/auth/login", json={"username": "ops", "password": "nope-nope"})
    assert wrong.status_code == 401
    nobody = api.client.post("/api/auth/login", json={"username": "ghost", "password": PASSWORD})
    assert nobody.status_code == 401 and nobody.json() == wrong.json()
    api.patch("/api/users/ops", json={"is_active": False})
    assert (
        api.client.post(
            "/api/auth/login", json={"username": "ops", "password": PASSWORD}
        ).status_code
        == 401
    )
    token_only = api.client.post(
        "/api/auth/login", json={"username": "viewer-user", "password": PASSWORD}
    )
    assert token_only.status_code == 401  # a user without a password cannot log in
    assert api.client.post("/api/auth/login", json={"username": "ops"}).status_code == 422


def test_failed_logins_are_throttled_per_user_and_address(store: object) -> None:
    for api in make_api(store, login_max_failures=3, login_backoff_s=30):  # type: ignore[arg-type]
        api.post("/api/users", json={"username": "ops", "password": PASSWORD})
        for _ in range(3):
            wrong = api.client.post(
                "/api/auth/login", json={"username": "ops", "password": "guess-123"}
            )
            assert wrong.status_code == 401
        limited = api.client.post("/api/auth/login", json={"username": "ops", "password": PASSWORD})
        assert limited.status_code == 429 and 0 < int(limited.headers["retry-after"]) <= 30
        assert "for 'ops' from this address" in limited.json()["detail"]
        # Only this user name from this address waits: other accounts from here do not.
        other = api.post("/api/users", json={"username": "qc", "password": PASSWORD})
        assert other.status_code == 201
        ok = api.client.post("/api/auth/login", json={"username": "qc", "password": PASSWORD})
        assert ok.status_code == 200, ok.text


def test_scoped_token_cannot_mint_a_broader_token(api: Api) -> None:
    made = api.post("/api/tokens", role="operator", json={"scopes": ["tokens", "read"]})
    assert made.status_code == 201, made.text
    scoped = {"Authorization": f"Bearer {made.json()['token']}"}

    unscoped = api.client.post("/api/tokens", headers=scoped, json={"name": "escalate"})
    assert unscoped.status_code == 403
    assert "cannot make a token without scopes" in unscoped.json()["detail"]
    broader = api.client.post(
        "/api/tokens", headers=scoped, json={"scopes": ["read", "operate", "tokens"]}
    )
    assert broader.status_code == 403
    assert "scopes ['operate'] are beyond this token's scopes" in broader.json()["detail"]

    subset = api.client.post("/api/tokens", headers=scoped, json={"scopes": ["read"]})
    assert subset.status_code == 201 and subset.json()["scopes"] == ["read"]
    same = api.client.post("/api/tokens", headers=scoped, json={"scopes": ["tokens", "read"]})
    assert same.status_code == 201 and same.json()["scopes"] == ["read", "tokens"]
    # The subset token reaches what 'read' allows and nothing more.
    as_subset = {"Authorization": f"Bearer {subset.json()['token']}"}
    assert api.client.get("/api/status", headers=as_subset).status_code == 200
    assert api.client.get("/api/sources", headers=as_subset).status_code == 403
    assert api.client.post("/api/tokens", headers=as_subset, json={}).status_code == 403
    with api.store.connect() as conn:
        scopes = [t["scopes"] for t in auth.list_tokens(conn, "operator-user")]
    assert scopes == [None, ["read", "tokens"], ["read"], ["read", "tokens"]]


def test_operator_cannot_mint_an_admin_token(api: Api) -> None:
    refused = api.post("/api/tokens", role="operator", json={"username": "admin-user"})
    assert refused.status_code == 403
    assert refused.json()["detail"] == "only admins make tokens for other users"
    ghost = api.post("/api/tokens", role="operator", json={"username": "ghost"})
    assert ghost.status_code == 403  # no hint whether the account exists
    own = api.post("/api/tokens", role="operator", json={})
    assert own.status_code == 201
    me = api.client.get("/api/auth/me", headers={"Authorization": f"Bearer {own.json()['token']}"})
    assert me.json()["role"] == "operator"


def test_tokens_for_other_users_need_the_admin_scope(api: Api) -> None:
    only_tokens = api.post("/api/tokens", json={"scopes": ["tokens"]}).json()["token"]
    as_tokens = {"Authorization": f"Bearer {only_tokens}"}
    for_viewer = api.client.post(
        "/api/tokens", headers=as_tokens, json={"username": "viewer-user", "scopes": ["tokens"]}
    )
    assert for_viewer.status_code == 403
    assert for_viewer.json()["detail"] == "only admins make tokens for other users"
    listed = api.client.get("/api/tokens", headers=as_tokens).json()
    assert {t["username"] for t in listed} == {"admin-user"}
    viewer_token = api.get("/api/tokens?username=viewer-user").json()[0]
    revoke = api.client.delete(f"/api/tokens/{viewer_token['id']}", headers=as_tokens)
    assert revoke.status_code == 404

    admin_scoped = api.post("/api/tokens", json={"scopes": ["admin", "tokens"]}).json()["token"]
    as_admin = {"Authorization": f"Bearer {admin_scoped}"}
    made = api.client.post(
        "/api/tokens", headers=as_admin, json={"username": "viewer-user", "scopes": ["tokens"]}
    )
    assert made.status_code == 201 and made.json()["username"] == "viewer-user"


def test_token_role_never_exceeds_its_creator(api: Api) -> None:
    """A principal checked before its user was promoted (cached for api_cache_s) still
    cannot make a token above the role it was checked with."""
    with api.store.begin() as conn:
        who = auth.authenticate(conn, api.tokens["operator"])
        assert who is not None and who.role == "operator"
        auth.update_user(conn, "operator-user", role="admin")
        with pytest.raises(auth.NotAllowed, match="role 'admin', above this token's role"):
            auth.create_token(conn, "operator-user", creator=who)
        token, _ = auth.create_token(conn, "operator-user")  # the CLI: no creator to limit
        assert token.startswith("fs_")


def test_users_over_the_api(api: Api) -> None:
    created = api.post(
        "/api/users",
        json={"username": "qc.lead@plant", "role": "viewer", "email": "qc@plant.example"},
    )
    assert created.status_code == 201 and created.json()["has_password"] is False
    assert api.post("/api/users", json={"username": "qc.lead@plant"}).status_code == 409
    for body, field in [
        ({"username": "bad name"}, "username"),
        ({"username": "x", "role": "root"}, "role"),
        ({"username": "x", "password": "short"}, "password"),
        ({"username": "x", "colour": "red"}, "colour"),
    ]:
        response = api.post("/api/users", json=body)
        assert response.status_code == 422, body
        assert field in response.json()["detail"][0]["msg"], response.json()
    promoted = api.patch(
        "/api/users/qc.lead@plant", json={"role": "operator", "password": PASSWORD}
    )
    assert promoted.json()["role"] == "operator" and promoted.json()["has_password"]
    assert api.patch("/api/users/ghost", json={"role": "viewer"}).status_code == 404
    assert api.get("/api/users/ghost").status_code == 404
    assert api.patch("/api/users/qc.lead@plant", json={"role": "boss"}).status_code == 422
    names = [u["username"] for u in api.get("/api/users").json()]
    assert names == sorted(names) and "qc.lead@plant" in names


def test_init_user_and_token_commands(env: dict[str, str]) -> None:
    init = run_cli("init", check=True)
    lines = init.stdout.strip().splitlines()
    assert "admin     user 'admin' created" in lines[-2]
    admin_token = lines[-1]
    assert admin_token.startswith("fs_") and len(admin_token) == 46
    again = run_cli("init", check=True)
    assert "admin" not in again.stdout  # only the first init makes the admin

    added = cli_with_input(
        "user",
        "add",
        "ops",
        "--role",
        "operator",
        "--password-stdin",
        "--json",
        text=PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["has_password"] is True
    assert run_cli("user", "add", "ops").returncode == 1
    bad_role = run_cli("user", "add", "x", "--role", "root")
    assert bad_role.returncode == 2 and "role 'root'" in bad_role.stderr
    listed = json.loads(run_cli("user", "list", "--json", check=True).stdout)
    assert [u["username"] for u in listed] == ["admin", "ops"]

    created = run_cli(
        "token",
        "create",
        "--user",
        "ops",
        "--name",
        "scada",
        "--expires-in",
        "30d",
        "--scope",
        "read",
        check=True,
    )
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("fs_") and "scopes read" in created.stdout
    tokens = json.loads(run_cli("token", "list", "--user", "ops", "--json", check=True).stdout)
    assert [(t["name"], t["scopes"]) for t in tokens] == [("scada", ["read"])]
    assert token not in run_cli("token", "list", check=True).stdout

    revoked = run_cli("token", "revoke", tokens[0]["token_prefix"], check=True)
    assert "revoked" in revoked.stdout
    assert run_cli("token", "revoke", "fs_nothere").returncode == 1
    assert run_cli("user", "disable", "ops", check=True).returncode == 0
    assert json.loads(run_cli("user", "list", "--json", check=True).stdout)[1]["is_active"] is False
    assert run_cli("token", "create", "--user", "ops").returncode == 2
    run_cli("user", "enable", "ops", check=True)
    assert run_cli("token", "create", "--user", "ghost").returncode == 1
    bad = run_cli("token", "create", "--user", "ops", "--expires-in", "soon")
    assert bad.returncode == 2 and "duration 'soon'" in bad.stderr

    from factorysync.settings import Settings
    from factorysync.store.store import Store

    store = Store(Settings())
    with store.connect() as conn:
        assert auth.authenticate(conn, admin_token).role == "admin"  # type: ignore[union-attr]
        assert auth.authenticate(conn, token) is None
    store.dispose()


def test_a_password_changed_over_the_api_ends_the_login_sessions(api: Api) -> None:
    """PATCH sets it as ``user set-password`` does (one store function): the user's
    logins end, its tokens made on purpose stay, and no token may pass for a login."""
    api.post("/api/users", json={"username": "ops", "role": "operator", "password": PASSWORD})
    login = api.client.post("/api/auth/login", json={"username": "ops", "password": PASSWORD})
    session = {"Authorization": f"Bearer {login.json()['token']}"}
    made = api.post("/api/tokens", json={"username": "ops", "name": "scada"}).json()
    kept = {"Authorization": f"Bearer {made['token']}"}
    assert api.client.get("/api/sources", headers=session).status_code == 200

    refused = api.patch("/api/users/ops", json={"password": "x" * 1025})
    assert refused.status_code == 422
    assert api.client.get("/api/sources", headers=session).status_code == 200
    changed = api.patch("/api/users/ops", json={"password": "Battery-Staple-77"})
    assert changed.status_code == 200 and "Battery" not in changed.text
    assert api.client.get("/api/sources", headers=session).status_code == 401
    assert api.client.get("/api/sources", headers=kept).status_code == 200
    with api.store.begin() as conn:
        assert auth.login(conn, "ops", PASSWORD) is None
        assert auth.login(conn, "ops", "Battery-Staple-77") is not None
    for name in auth.SESSION_NAMES:
        named = api.post("/api/tokens", json={"username": "ops", "name": name})
        assert named.status_code == 422 and "kept for login sessions" in named.text
