"""Console sessions on top of the API's tokens.

Logging in makes an ordinary expiring API token (named ``console``) and hands it to the
browser in an ``HttpOnly``, ``SameSite=Strict`` cookie: scripts cannot read it and other
sites cannot send it. Logging out revokes it. Every form carries a CSRF token derived
from the session token (an HMAC), checked on every POST; the login form, before there is
a session, uses a random double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select, update
from starlette.responses import Response

from factorysync.api.context import ApiContext
from factorysync.store import accounts
from factorysync.store.accounts import Principal
from factorysync.store.schema import users as users_t
from factorysync.web.i18n import LANGUAGES

SESSION_COOKIE = "fs_session"
LOGIN_CSRF_COOKIE = "fs_login_csrf"
LANG_COOKIE = "fs_lang"


class LoginRequired(Exception):
    """No valid session: pages redirect to the login page, other requests get 401."""


class Forbidden(Exception):
    """The user's role does not allow the action (answered 403)."""

    def __init__(self, role: str, needed: str) -> None:
        super().__init__(f"needs role {needed!r}; this user has role {role!r}")
        self.role, self.needed = role, needed
        self.role = role
        self.needed = needed


class CsrfFailed(Exception):
    """A POST without the form's CSRF token (answered 403)."""


@dataclass(frozen=True)
class ConsoleUser:
    principal: Principal
    language: str
    token: str

    @property
    def username(self) -> str:
        return self.principal.username

    @property
    def role(self) -> str:
        return self.principal.role

    def can(self, role: str) -> bool:
        return self.principal.has_role(role)

    def require(self, role: str) -> None:
        if not self.can(role):
            raise Forbidden(self.role, role)

    @property
    def csrf(self) -> str:
        return csrf_for(self.token)


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"factorysync-console-csrf", hashlib.sha256).hexdigest()


def check_csrf(user: ConsoleUser, sent: Any) -> None:
    if not isinstance(sent, str) or not hmac.compare_digest(sent, user.csrf):
        raise CsrfFailed()


def _lookup(ctx: ApiContext, token: str) -> tuple[Principal, str | None] | None:
    with ctx.store.connect() as conn:
        who = accounts.authenticate(conn, token)
        if who is None:
            return None
        language = conn.execute(
            select(users_t.c.language).where(users_t.c.id == who.user_id)
        ).scalar()
        return who, language


async def current_user(request: Request) -> ConsoleUser:
    """The user of the session cookie (LoginRequired when there is none or it expired)."""
    ctx: ApiContext = request.app.state.ctx
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired()
    found = await run_in_threadpool(_lookup, ctx, token)
    if found is None:
        raise LoginRequired()
    who, language = found
    if who.token_id is not None:
        ctx.usage.note(who.token_id)
    fallback = request.cookies.get(LANG_COOKIE) or ctx.store.settings.console_language
    return ConsoleUser(who, language if language in LANGUAGES else _language(fallback), token)


def _language(value: str | None) -> str:
    return value if value in LANGUAGES else "en"


def guest_language(request: Request) -> str:
    ctx: ApiContext = request.app.state.ctx
    return _language(request.cookies.get(LANG_COOKIE) or ctx.store.settings.console_language)


def log_in(
    ctx: ApiContext, username: str, password: str, address: str
) -> tuple[str, dict[str, Any]] | None:
    """A new console token for valid credentials (and the user), else None.

    Attempts share the API login's throttle (raises LoginThrottled while ``address``
    must wait)."""
    ttl = ctx.store.settings.login_token_ttl_s
    with ctx.logins.admit(username, address) as attempt, ctx.store.begin() as conn:
        found = accounts.login_token(conn, username, password, name="console", ttl_s=ttl)
        attempt.ok = found is not None
    if found is None:
        return None
    token, _, user = found
    return token, user


def log_out(ctx: ApiContext, user: ConsoleUser) -> None:
    if user.principal.token_id is not None:
        with ctx.store.begin() as conn:
            accounts.revoke_token(conn, user.principal.token_id)
    ctx.accounts_changed()


def set_language(ctx: ApiContext, user: ConsoleUser, language: str) -> None:
    """Remember the user's console language (``users.language``)."""
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r}: use one of {', '.join(LANGUAGES)}")
    with ctx.store.begin() as conn:
        conn.execute(
            update(users_t).where(users_t.c.id == user.principal.user_id).values(language=language)
        )


def set_session_cookie(response: Response, ctx: ApiContext, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=ctx.store.settings.login_token_ttl_s,
        httponly=True,
        samesite="strict",
        secure=ctx.store.settings.console_secure_cookie,
        path="/",
    )


def set_language_cookie(response: Response, ctx: ApiContext, language: str) -> None:
    response.set_cookie(
        LANG_COOKIE,
        language,
        max_age=365 * 86400,
        samesite="strict",
        secure=ctx.store.settings.console_secure_cookie,
        path="/",
    )


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def safe_next(value: str | None) -> str:
    """Only a path on this site (never ``//host`` or ``https://…``) to go to after login."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?next=" + quote(target, safe="")
