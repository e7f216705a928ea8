"""API sources: every kind of authentication, against real HTTP servers."""

from __future__ import annotations

import base64
from collections.abc import Callable
from itertools import count
from urllib.parse import parse_qs

import pytest

from factorysync.connectors.api import auth as http_auth
from factorysync.errors import ConnectorFatal
from tests.connectors.http_server import (
    HttpServer,
    Reply,
    Request,
    api_connector,
    read_all,
)

ROWS = [{"id": 1, "oee": 0.81}, {"id": 2, "oee": 0.77}]


def guarded(accept: Callable[[Request], bool]) -> Callable[[Request], Reply]:
    def app(req: Request) -> Reply:
        if not accept(req):
            return Reply(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
        return Reply(200, ROWS)

    return app


def test_bearer_token_from_authentication_config(serve: Callable[..., HttpServer]) -> None:
    server = serve(guarded(lambda r: r.headers.get("authorization") == "Bearer tok-123"))
    ok = api_connector({"url": server.url, "auth": {"type": "bearer"}}, {"token": "tok-123"})
    assert read_all(ok) == ROWS
    wrong = api_connector({"url": server.url, "auth": {"type": "bearer"}}, {"token": "nope-0"})
    with pytest.raises(ConnectorFatal, match=r"HTTP 401 Unauthorized"):
        read_all(wrong)


def test_bearer_with_a_placeholder_header_and_prefix(serve: Callable[..., HttpServer]) -> None:
    server = serve(guarded(lambda r: r.headers.get("x-mes-auth") == "Token abc-987"))
    connector = api_connector(
        {
            "url": server.url,
            "auth": {
                "type": "bearer",
                "token": "{{mes_token}}",
                "header": "X-MES-Auth",
                "prefix": "Token",
            },
        },
        {"mes_token": "abc-987"},
    )
    assert read_all(connector) == ROWS


def test_auth_block_in_authentication_config(serve: Callable[..., HttpServer]) -> None:
    """The shape of the rest_api template: the kind and the token both in the secrets."""
    server = serve(guarded(lambda r: r.headers.get("authorization") == "Bearer tmpl-55"))
    connector = api_connector({"url": server.url}, {"type": "bearer", "token": "tmpl-55"})
    assert read_all(connector) == ROWS


def test_basic(serve: Callable[..., HttpServer]) -> None:
    expected = "Basic " + base64.b64encode(b"plant:pa:ss word").decode()
    server = serve(guarded(lambda r: r.headers.get("authorization") == expected))
    connector = api_connector(
        {"url": server.url, "auth": {"type": "basic"}},
        {"username": "plant", "password": "pa:ss word"},
    )
    assert read_all(connector) == ROWS


def test_api_key_in_a_header(serve: Callable[..., HttpServer]) -> None:
    server = serve(guarded(lambda r: r.headers.get("x-api-key") == "key-4242"))
    connector = api_connector(
        {"url": server.url, "auth": {"type": "api_key"}}, {"api_key": "key-4242"}
    )
    assert read_all(connector) == ROWS


def test_api_key_in_the_query(serve: Callable[..., HttpServer]) -> None:
    server = serve(guarded(lambda r: r.arg("apikey") == "k/y+1=="))
    connector = api_connector(
        {
            "url": server.url + "/x?line=A",
            "auth": {"type": "api_key", "in": "query", "name": "apikey"},
        },
        {"api_key": "k/y+1=="},
    )
    assert read_all(connector) == ROWS
    assert server.requests[0].arg("line") == "A"


def test_missing_secret_names_the_field(serve: Callable[..., HttpServer]) -> None:
    server = serve(guarded(lambda r: True))
    connector = api_connector({"url": server.url, "auth": {"type": "basic"}}, {"username": "u"})
    with pytest.raises(ConnectorFatal, match=r"auth type basic needs password"):
        connector.check()
    unknown = api_connector({"url": server.url, "headers": {"X-Key": "{{nope}}"}}, {"key": "v"})
    with pytest.raises(ConnectorFatal, match=r"headers.X-Key: placeholder \{\{nope\}\}.*keys: key"):
        unknown.check()
    assert server.requests == []


class TokenServer:
    """An OAuth2 token endpoint and an API that accepts the tokens it issued."""

    def __init__(self, expires_in: float | None = 3600, client_auth: str = "basic") -> None:
        self.expires_in = expires_in
        self.client_auth = client_auth
        self.issued: list[str] = []
        self.valid: set[str] = set()
        self.unauthorized = 0
        self._serial = count(1)

    def __call__(self, req: Request) -> Reply:
        if req.path == "/oauth/token":
            return self.token(req)
        bearer = (req.headers.get("authorization") or "").removeprefix("Bearer ")
        if bearer not in self.valid:
            self.unauthorized += 1
            return Reply(401, {"error": "invalid_token"})
        return Reply(200, {"data": ROWS})

    def token(self, req: Request) -> Reply:
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        if self.client_auth == "basic":
            given = req.headers.get("authorization", "")
            ok = given == "Basic " + base64.b64encode(b"line-7:s%26cret").decode()
        else:
            ok = form.get("client_id") == "line-7" and form.get("client_secret") == "s&cret"
        if not ok or form.get("grant_type") != "client_credentials":
            return Reply(401, {"error": "invalid_client"})
        assert form.get("scope") == "read:production"
        token = f"at-{next(self._serial)}-x9"
        self.issued.append(token)
        self.valid.add(token)
        payload: dict[str, object] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            payload["expires_in"] = self.expires_in
        return Reply(200, payload)


def oauth_config(server: HttpServer, **auth: object) -> dict[str, object]:
    return {
        "url": server.url + "/api/production",
        "records_path": "data",
        "auth": {
            "type": "oauth2_client_credentials",
            "token_url": server.url + "/oauth/token",
            "scope": "read:production",
            **auth,
        },
    }


SECRETS = {"client_id": "line-7", "client_secret": "s&cret"}


def test_oauth2_token_is_fetched_once_and_cached(serve: Callable[..., HttpServer]) -> None:
    app = TokenServer()
    server = serve(app)
    for _ in range(3):
        assert read_all(api_connector(oauth_config(server), SECRETS)) == ROWS
    assert len(app.issued) == 1 and app.unauthorized == 0
    assert server.requests[0].method == "POST" and server.requests[0].path == "/oauth/token"


def test_oauth2_client_secret_in_the_body(serve: Callable[..., HttpServer]) -> None:
    app = TokenServer(client_auth="body")
    server = serve(app)
    assert read_all(api_connector(oauth_config(server, client_auth="body"), SECRETS)) == ROWS
    assert len(app.issued) == 1


class Clock:
    """Stands in for the token cache's clock: it moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_oauth2_token_is_renewed_before_it_expires(
    serve: Callable[..., HttpServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(http_auth, "time", clock)
    app = TokenServer(expires_in=1)
    server = serve(app)
    assert read_all(api_connector(oauth_config(server), SECRETS)) == ROWS
    # Used for 90 % of its lifetime: a new one after 0.9 s, before the server rejects it.
    clock.now += 0.95
    app.valid.clear()  # the server's view: the first token has expired
    assert read_all(api_connector(oauth_config(server), SECRETS)) == ROWS
    assert len(app.issued) == 2 and app.unauthorized == 0


def test_oauth2_token_is_renewed_on_401(serve: Callable[..., HttpServer]) -> None:
    app = TokenServer(expires_in=None)
    server = serve(app)
    assert read_all(api_connector(oauth_config(server), SECRETS)) == ROWS
    app.valid.clear()  # revoked
    assert read_all(api_connector(oauth_config(server), SECRETS)) == ROWS
    assert len(app.issued) == 2 and app.unauthorized == 1


def test_oauth2_bad_client_fails_without_secrets(serve: Callable[..., HttpServer]) -> None:
    app = TokenServer()
    server = serve(app)
    connector = api_connector(oauth_config(server), {**SECRETS, "client_secret": "wrong-secret"})
    with pytest.raises(ConnectorFatal) as failure:
        connector.check()
    message = str(failure.value)
    assert message.startswith("OAuth2 token request failed: POST http://127.0.0.1:")
    assert "HTTP 401 Unauthorized" in message and "invalid_client" in message
    assert "wrong-secret" not in message and "line-7" not in message
    assert [r.path for r in server.requests] == ["/oauth/token"]


def test_oauth2_response_without_a_token(serve: Callable[..., HttpServer]) -> None:
    def token(req: Request) -> Reply:
        return Reply(200, {"error": "temporarily_unavailable", "id_token": "idt-secret"})

    server = serve(token)
    connector = api_connector(oauth_config(server), SECRETS)
    with pytest.raises(ConnectorFatal, match=r"has no access_token \(keys: error, id_token\)") as e:
        connector.check()
    assert "idt-secret" not in str(e.value)
