"""Authentication of API sources: ``connection_config.auth``.

    type                       sends                                     secrets
    none                       nothing
    bearer                     Authorization: Bearer <token>             token
    basic                      Authorization: Basic <username:password>  username, password
    api_key                    header <name>: <key>, or ?<name>=<key>    api_key
    oauth2_client_credentials  Authorization: Bearer <access token>      client_id, client_secret
                               from token_url (RFC 6749, section 4.4)

The block is not secret and is validated with the rest of the connection_config. Each
secret may be written there as a ``{{placeholder}}``; left out, it is the
``authentication_config`` value of the same name. Without an ``auth`` block, an
``authentication_config`` holding a ``type`` is the block itself.

OAuth2 access tokens are cached in the process per token URL, client and scope; a token
is fetched again shortly before it expires (at 90 % of ``expires_in``, at most 60 s
early) and after a 401.
"""

from __future__ import annotations

import base64
import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote_plus

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from factorysync.connectors.api.client import Credentials, HttpSession, check_url
from factorysync.connectors.api.secrets import snippet
from factorysync.errors import ConnectorError, ConnectorFatal

HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"


class AuthBlock(BaseModel):
    """What every auth kind shares."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    # Fields taken from authentication_config when left out.
    secret_fields: ClassVar[tuple[str, ...]] = ()


class NoAuth(AuthBlock):
    type: Literal["none"] = Field(description="none: requests carry no credentials.")


class BearerAuth(AuthBlock):
    type: Literal["bearer"] = Field(
        description="bearer: a token in a header, Authorization: Bearer <token>."
    )
    token: str | None = Field(
        default=None,
        description="The token. Leave it out to use authentication_config.token (stored "
        "encrypted), or write a placeholder such as {{mes_token}}.",
    )
    header: str = Field(
        default="Authorization",
        pattern=HEADER_NAME,
        description="Header that carries the token, e.g. X-Auth-Token.",
    )
    prefix: str = Field(
        default="Bearer",
        description="Text before the token in the header; empty: the token alone.",
    )
    secret_fields = ("token",)


class BasicAuth(AuthBlock):
    type: Literal["basic"] = Field(
        description="basic: HTTP Basic authentication with a user name and password."
    )
    username: str | None = Field(
        default=None,
        description="User name. Leave it out to use authentication_config.username, or "
        "write a {{placeholder}}.",
    )
    password: str | None = Field(
        default=None,
        description="Password. Leave it out to use authentication_config.password "
        "(stored encrypted), or write a {{placeholder}}; never the password itself.",
    )
    secret_fields = ("username", "password")


class ApiKeyAuth(AuthBlock):
    type: Literal["api_key"] = Field(
        description="api_key: a key sent in a header or a query parameter."
    )
    name: str = Field(
        default="X-API-Key",
        min_length=1,
        description="Name of the header or query parameter that carries the key, e.g. apikey.",
    )
    location: Literal["header", "query"] = Field(
        default="header",
        alias="in",
        description="Where the key goes: header, or query (the query string; its value "
        "is masked in messages and logs).",
    )
    api_key: str | None = Field(
        default=None,
        description="The key. Leave it out to use authentication_config.api_key (stored "
        "encrypted), or write a {{placeholder}}.",
    )
    secret_fields = ("api_key",)


class OAuth2Auth(AuthBlock):
    type: Literal["oauth2_client_credentials"] = Field(
        description="oauth2_client_credentials: a bearer token from token_url by the "
        "client credentials grant (RFC 6749, section 4.4), cached and fetched again "
        "before it expires."
    )
    token_url: str = Field(
        description="The token endpoint of the identity provider, e.g. "
        "https://login.plant.local/oauth/token."
    )
    client_id: str | None = Field(
        default=None,
        description="Client id. Leave it out to use authentication_config.client_id, or "
        "write a {{placeholder}}.",
    )
    client_secret: str | None = Field(
        default=None,
        description="Client secret. Leave it out to use authentication_config."
        "client_secret (stored encrypted), or write a {{placeholder}}.",
    )
    scope: str | None = Field(
        default=None,
        description="Scope asked for, e.g. read:production (several: separated by "
        "spaces). Default: none sent.",
    )
    audience: str | None = Field(
        default=None,
        description="audience parameter of the token request, which some identity "
        "providers require (the API's identifier). Default: none sent.",
    )
    # client_secret_basic (RFC 6749's default) or client_secret_post.
    client_auth: Literal["basic", "body"] = Field(
        default="basic",
        description="How the client credentials reach token_url: basic (an HTTP Basic "
        "header, the RFC 6749 default) or body (client_id and client_secret in the form).",
    )
    secret_fields = ("client_id", "client_secret")

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, v: str) -> str:
        return check_url(v, "token_url")


AuthConfig = Annotated[
    NoAuth | BearerAuth | BasicAuth | ApiKeyAuth | OAuth2Auth, Field(discriminator="type")
]
AUTH_MODELS: dict[str, type[AuthBlock]] = {
    "none": NoAuth,
    "bearer": BearerAuth,
    "basic": BasicAuth,
    "api_key": ApiKeyAuth,
    "oauth2_client_credentials": OAuth2Auth,
}


def auth_from_secrets(auth: dict[str, Any]) -> AuthBlock | None:
    """The auth block an ``authentication_config`` holds (one with a ``type``), if any."""
    kind = auth.get("type")
    if kind is None:
        return None
    model = AUTH_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ConnectorFatal(
            f"authentication_config.type: unknown kind (use one of {', '.join(AUTH_MODELS)})"
        )
    keys = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    try:
        return TypeAdapter(AuthConfig).validate_python({k: v for k, v in auth.items() if k in keys})
    except ValidationError as exc:
        from factorysync.connectors.registry import format_validation_error

        problems = "; ".join(format_validation_error(e) for e in exc.errors())
        raise ConnectorFatal(f"authentication_config: {problems}") from None


class HeaderCredentials(Credentials):
    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value

    def apply(self, headers: dict[str, str], url: httpx.URL) -> httpx.URL:
        headers[self.name] = self.value
        return url


class QueryCredentials(Credentials):
    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value

    def apply(self, headers: dict[str, str], url: httpx.URL) -> httpx.URL:
        return url.copy_set_param(self.name, self.value)


def credentials(
    block: AuthBlock | None, value_of: Callable[[AuthBlock, str], str], session: HttpSession
) -> Credentials:
    """What puts ``block``'s credentials on requests; ``value_of(block, field)`` gives a
    field's value (placeholders filled, secrets looked up)."""
    if isinstance(block, BearerAuth):
        value = value_of(block, "token")
        return HeaderCredentials(block.header, f"{block.prefix} {value}".strip())
    if isinstance(block, BasicAuth):
        pair = f"{value_of(block, 'username')}:{value_of(block, 'password')}".encode()
        encoded = base64.b64encode(pair).decode("ascii")
        session.secrets.add(encoded)
        return HeaderCredentials("Authorization", f"Basic {encoded}")
    if isinstance(block, ApiKeyAuth):
        value = value_of(block, "api_key")
        if block.location == "query":
            return QueryCredentials(block.name, value)
        return HeaderCredentials(block.name, value)
    if isinstance(block, OAuth2Auth):
        return OAuth2Credentials(
            session,
            value_of(block, "token_url"),
            value_of(block, "client_id"),
            value_of(block, "client_secret"),
            block,
        )
    return Credentials()


# -- OAuth2 client credentials ---------------------------------------------------------------
@dataclass
class _Token:
    value: str
    refresh_at: float  # time.monotonic()


_tokens: dict[str, _Token] = {}
_token_locks: dict[str, threading.Lock] = {}
_tokens_guard = threading.Lock()


def _lock_for(key: str) -> threading.Lock:
    with _tokens_guard:
        return _token_locks.setdefault(key, threading.Lock())


def forget_tokens() -> None:
    """Drop every cached OAuth2 token of this process."""
    with _tokens_guard:
        _tokens.clear()


class OAuth2Credentials(Credentials):
    """A bearer token from the client credentials grant, cached and renewed."""

    def __init__(
        self,
        session: HttpSession,
        token_url: str,
        client_id: str,
        client_secret: str,
        block: OAuth2Auth,
    ) -> None:
        self.session = session
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.block = block
        parts = (token_url, client_id, client_secret, block.scope or "", block.audience or "")
        self._key = hashlib.sha256("\0".join(parts).encode()).hexdigest()
        self._used: str | None = None

    def apply(self, headers: dict[str, str], url: httpx.URL) -> httpx.URL:
        with _lock_for(self._key):
            token = _tokens.get(self._key)
            if token is None or time.monotonic() >= token.refresh_at:
                token = self._fetch()
                _tokens[self._key] = token
        self.session.secrets.add(token.value)
        self._used = token.value
        headers["Authorization"] = f"Bearer {token.value}"
        return url

    def renew(self) -> bool:
        with _lock_for(self._key):
            cached = _tokens.get(self._key)
            if cached is not None and cached.value == self._used:
                del _tokens[self._key]
        return True

    def _fetch(self) -> _Token:
        block = self.block
        form = {"grant_type": "client_credentials"}
        headers = {"Accept": "application/json"}
        if block.client_auth == "basic":
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}".encode()
            encoded = base64.b64encode(pair).decode("ascii")
            self.session.secrets.add(encoded)
            headers["Authorization"] = f"Basic {encoded}"
        else:
            form |= {"client_id": self.client_id, "client_secret": self.client_secret}
        if block.scope:
            form["scope"] = block.scope
        if block.audience:
            form["audience"] = block.audience
        started = time.monotonic()
        try:
            reply = self.session.request(
                "POST", self.token_url, headers=headers, form=form, limited=False
            )
        except ConnectorError as exc:
            raise type(exc)(f"OAuth2 token request failed: {exc}") from None
        label = self.session.label("POST", reply.url)
        try:
            payload = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            raise self.session.fail(
                f"OAuth2 token response of {label} is not JSON: "
                + snippet(reply.body, self.session.secrets)
            ) from None
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            keys = ", ".join(map(str, payload)) if isinstance(payload, dict) else "none"
            error = payload.get("error") if isinstance(payload, dict) else None
            raise self.session.fail(
                f"OAuth2 token response of {label} has no access_token (keys: {keys})"
                + (f", error {error!r}" if isinstance(error, str) else "")
            )
        self.session.secrets.add(token)
        kind = payload.get("token_type", "bearer")
        if not isinstance(kind, str) or kind.lower() != "bearer":
            raise self.session.fail(
                f"OAuth2 token response of {label}: token_type {kind!r} is not supported "
                "(only bearer)"
            )
        return _Token(token, started + _lifetime(payload.get("expires_in")))


def _lifetime(expires_in: Any) -> float:
    """Seconds a token is used: 90 % of its lifetime, at most 60 s less (no expiry: forever)."""
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return math.inf
    if not math.isfinite(seconds):
        return math.inf
    if seconds <= 0:
        return 0.0
    return max(seconds - 60.0, seconds * 0.9)
