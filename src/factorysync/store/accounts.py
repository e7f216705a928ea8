"""Accounts, roles and API tokens.

Roles, each allowed what the one below it is:

    admin      everything: sources, users, anyone's tokens
    operator   test and sync sources; read the registry, history, runs and templates
    viewer     read status and data

An API token is ``fs_`` followed by 43 url-safe characters (32 random bytes). It is shown
once; only its SHA-256 is stored (a random 256-bit token needs no slow hash), next to
its first characters so a person can tell tokens apart. Tokens may expire and can be
revoked; disabling a user stops all of its tokens. Passwords are hashed with Argon2id.

A token may carry ``scopes``; it then reaches only endpoints that ask for one of them,
still within its user's role. The API asks for ``read`` (status, data, metrics),
``operate`` (registry reads, test, sync), ``admin`` (changes to sources and users) and
``tokens`` (managing one's own tokens); ``ingest:<source_id>`` is for pushing one
source's data. A dashboard's token is typically a viewer's, or any user's with
``scopes: [read]``.

A token never makes one stronger than itself (:func:`check_grant`): a scoped token makes
only tokens whose scopes are a subset of its own (never an unscoped one), and tokens for
other users take an admin token that reaches admin endpoints. A password login, which
proves the whole account, gets an unscoped token of the user's role.

Such a login token (named ``login`` or ``console``) is a session of the password: a new
password (:func:`set_password`) ends them all. Tokens made on purpose (``token create``,
``POST /api/tokens``) are credentials of their own and stay valid; they may not take a
session's name, so they are never taken for one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, func, insert, select, update

from factorysync.errors import ConfigError, FactorySyncError, NotFoundError
from factorysync.store.db import plain
from factorysync.store.schema import api_tokens as tokens_t
from factorysync.store.schema import users as users_t
from factorysync.store.types import utcnow

ROLES = ("viewer", "operator", "admin")  # lowest first
TOKEN_PREFIX = "fs_"
SHOWN_CHARS = 10  # characters of a token kept in clear to tell tokens apart
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
SCOPE = re.compile(r"^[a-z]+(:[a-z0-9][a-z0-9_.-]{0,99})?$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # as the API's login takes: a longer one could never log in
SESSION_NAMES = ("login", "console")  # the tokens login_token makes, by who asked
FIRST_ADMIN = "admin"
_hasher = PasswordHasher()


class AlreadyExists(FactorySyncError):
    """An object with that name exists already."""


class NotAllowed(FactorySyncError):
    """The caller's role or token scopes do not allow this (answered 403)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user behind a valid token."""

    user_id: int
    username: str
    role: str
    token_id: int | None = None
    scopes: tuple[str, ...] | None = None

    def has_role(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def has_scope(self, scope: str | None) -> bool:
        """Unscoped tokens reach everything their role allows; scoped ones only their scopes."""
        return self.scopes is None or (scope is not None and scope in self.scopes)

    @property
    def is_admin(self) -> bool:
        """Reaches admin endpoints: an admin's token, unscoped or with the ``admin`` scope."""
        return self.has_role("admin") and self.has_scope("admin")


# -- hashing ------------------------------------------------------------------------
def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so both cases take the same time."""
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# -- users --------------------------------------------------------------------------
def _check_role(role: str) -> str:
    if role not in ROLES:
        raise ConfigError(f"role {role!r} is not one of {', '.join(reversed(ROLES))}")
    return role


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ConfigError(f"password: at most {MAX_PASSWORD} characters")
    return password


def _no_user(username: str) -> NotFoundError:
    return NotFoundError(f"no user {username!r} (see 'factorysync user list')")


def public_user(row: Any) -> dict[str, Any]:
    user = plain(row)
    user["has_password"] = bool(user.pop("password_hash", None))
    return user


def create_user(
    conn: Connection,
    username: str,
    role: str,
    *,
    password: str | None = None,
    email: str | None = None,
    full_name: str | None = None,
) -> dict[str, Any]:
    if not USERNAME.match(username):
        raise ConfigError(
            f"username {username!r}: letters, digits and '_.@-', starting with a letter "
            "or digit, at most 100 characters"
        )
    _check_role(role)
    exists = conn.execute(select(users_t.c.id).where(users_t.c.username == username)).first()
    if exists:
        raise AlreadyExists(f"user {username!r} exists already")
    values = {
        "username": username,
        "role": role,
        "email": email,
        "full_name": full_name,
        "is_active": True,
        "password_hash": hash_password(_check_password(password)) if password else None,
    }
    conn.execute(insert(users_t).values(**values))
    return get_user(conn, username)


def get_user(conn: Connection, username: str) -> dict[str, Any]:
    row = conn.execute(select(users_t).where(users_t.c.username == username)).mappings().first()
    if row is None:
        raise _no_user(username)
    return public_user(row)


def list_users(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(users_t).order_by(users_t.c.username)).mappings()
    return [public_user(r) for r in rows]


def update_user(
    conn: Connection,
    username: str,
    *,
    role: str | None = None,
    is_active: bool | None = None,
    password: str | None = None,
    email: str | None = None,
    full_name: str | None = None,
) -> dict[str, Any]:
    """Change what is given; a new password as :func:`set_password` sets it."""
    values: dict[str, Any] = {}
    if role is not None:
        values["role"] = _check_role(role)
    if password is not None:
        _check_password(password)  # refused before anything changes
    if is_active is not None:
        values["is_active"] = is_active
    if email is not None:
        values["email"] = email
    if full_name is not None:
        values["full_name"] = full_name
    if values:
        found = conn.execute(
            update(users_t).where(users_t.c.username == username).values(**values)
        ).rowcount
        if not found:
            raise _no_user(username)
    if password is not None:
        set_password(conn, username, password)
    return get_user(conn, username)


def set_password(conn: Connection, username: str, password: str) -> int:
    """Give ``username`` a new password and end its login sessions: the number ended.

    The one way a password changes (``user set-password``, ``PATCH /api/users``, the
    demo), so none of them leaves a session of the old password alive."""
    password_hash = hash_password(_check_password(password))
    user_id = conn.execute(select(users_t.c.id).where(users_t.c.username == username)).scalar()
    if user_id is None:
        raise _no_user(username)
    conn.execute(update(users_t).where(users_t.c.id == user_id).values(password_hash=password_hash))
    return end_sessions(conn, user_id)


def end_sessions(conn: Connection, user_id: int) -> int:
    """Revoke the user's live login sessions (tokens :func:`login_token` made): how many.

    Its other tokens stay valid: revoke them one by one, or disable the user."""
    now = utcnow()
    ended = conn.execute(
        update(tokens_t)
        .where(
            tokens_t.c.user_id == user_id,
            tokens_t.c.name.in_(SESSION_NAMES),
            tokens_t.c.revoked_at.is_(None),
            tokens_t.c.expires_at > now,
        )
        .values(revoked_at=now)
    )
    return int(ended.rowcount)


def count_users(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(users_t)).scalar_one())


def login(conn: Connection, username: str, password: str) -> dict[str, Any] | None:
    """The active user with that password (and its last_login set), else None."""
    row = conn.execute(select(users_t).where(users_t.c.username == username)).mappings().first()
    stored = row["password_hash"] if row is not None else None
    if not verify_password(stored, password) or row is None or not row["is_active"]:
        return None
    conn.execute(update(users_t).where(users_t.c.id == row["id"]).values(last_login=utcnow()))
    return public_user(row)


def login_token(
    conn: Connection, username: str, password: str, *, name: str, ttl_s: int
) -> tuple[str, datetime, dict[str, Any]] | None:
    """For a valid password: (a new token, when it expires, the user), else None.

    The API's login and the console's session both come through here (callers throttle
    attempts first, see :mod:`factorysync.security.throttle`).
    """
    if name not in SESSION_NAMES:  # else set_password would not end it
        raise ValueError(f"login token {name!r}: not one of {SESSION_NAMES}")
    user = login(conn, username, password)
    if user is None:
        return None
    expires = utcnow() + timedelta(seconds=ttl_s)
    token, _ = create_token(conn, user["username"], name=name, expires_at=expires, session=True)
    return token, expires, user


# -- tokens -------------------------------------------------------------------------
def check_scopes(scopes: list[str] | None) -> list[str] | None:
    if scopes is None:
        return None
    bad = [s for s in scopes if not SCOPE.match(s)]
    if bad:
        raise ConfigError(
            f"scopes: {', '.join(map(repr, bad))} are not scopes (e.g. 'read', 'ingest:SOURCE_ID')"
        )
    return sorted(set(scopes))


def public_token(row: Any) -> dict[str, Any]:
    token = plain(row)
    token.pop("token_hash", None)
    return token


def check_grant(
    creator: Principal, username: str, role: str | None, scopes: list[str] | None
) -> None:
    """Raise NotAllowed unless ``creator`` may make a token for ``username`` (of ``role``)
    with ``scopes``.

    The rules: tokens for another user take :attr:`Principal.is_admin`; the user's role
    may not exceed the creator's; a scoped creator gives only a subset of its own scopes,
    and never no scopes at all. ``role`` None skips the role rule (the user is not
    looked up yet, so a non-admin learns nothing about other accounts).
    """
    if username != creator.username and not creator.is_admin:
        raise NotAllowed("only admins make tokens for other users")
    if role is not None and ROLES.index(role) > ROLES.index(creator.role):
        raise NotAllowed(
            f"user {username!r} has role {role!r}, above this token's role {creator.role!r}"
        )
    if creator.scopes is None:
        return
    held = list(creator.scopes)
    if scopes is None:
        raise NotAllowed(
            f"this token is limited to scopes {held}: it cannot make a token without scopes; "
            "pass 'scopes', a subset of these"
        )
    beyond = sorted(set(scopes) - set(held))
    if beyond:
        raise NotAllowed(
            f"scopes {beyond} are beyond this token's scopes {held}: a token can only pass "
            "on scopes it holds"
        )


def create_token(
    conn: Connection,
    username: str,
    *,
    name: str | None = None,
    expires_at: datetime | None = None,
    scopes: list[str] | None = None,
    creator: Principal | None = None,
    session: bool = False,
) -> tuple[str, dict[str, Any]]:
    """A new token for ``username``: (the token, shown only now; its stored row).

    ``creator`` is the token asking for it (over the API), held to :func:`check_grant`;
    None is the local administrator (the CLI, the first admin, a password login).
    ``session`` is :func:`login_token`'s: only it may use the names in SESSION_NAMES.
    """
    if name in SESSION_NAMES and not session:
        raise ConfigError(f"name {name!r} is kept for login sessions: choose another")
    scopes = check_scopes(scopes)
    if creator is not None:
        check_grant(creator, username, None, scopes)
    user = get_user(conn, username)
    if creator is not None:
        check_grant(creator, username, user["role"], scopes)
    if not user["is_active"]:
        raise ConfigError(f"user {username!r} is disabled")
    if expires_at is not None and expires_at <= utcnow():
        raise ConfigError("expires_at: must be in the future")
    token = new_token()
    token_id = conn.execute(
        insert(tokens_t)
        .values(
            user_id=user["id"],
            name=name,
            token_hash=hash_token(token),
            token_prefix=token[:SHOWN_CHARS],
            scopes=scopes,
            expires_at=expires_at,
        )
        .returning(tokens_t.c.id)
    ).scalar_one()
    return token, get_token(conn, token_id)


def _token_query() -> Any:
    return select(
        tokens_t.c.id,
        tokens_t.c.user_id,
        users_t.c.username,
        tokens_t.c.name,
        tokens_t.c.token_prefix,
        tokens_t.c.scopes,
        tokens_t.c.created_at,
        tokens_t.c.expires_at,
        tokens_t.c.revoked_at,
        tokens_t.c.last_used_at,
    ).join(users_t, users_t.c.id == tokens_t.c.user_id)


def get_token(conn: Connection, token_id: int) -> dict[str, Any]:
    row = conn.execute(_token_query().where(tokens_t.c.id == token_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no token {token_id} (see 'factorysync token list')")
    return plain(row)


def list_tokens(conn: Connection, username: str | None = None) -> list[dict[str, Any]]:
    stmt = _token_query().order_by(tokens_t.c.id)
    if username is not None:
        stmt = stmt.where(users_t.c.username == username)
    return [plain(r) for r in conn.execute(stmt).mappings()]


def find_token(conn: Connection, ident: str | int) -> dict[str, Any]:
    """A token by id or by its shown prefix (``fs_AbCdEfG``)."""
    text = str(ident)
    if text.isdigit():
        return get_token(conn, int(text))
    rows = conn.execute(_token_query().where(tokens_t.c.token_prefix == text)).mappings().all()
    if len(rows) != 1:
        what = "no token" if not rows else f"{len(rows)} tokens"
        raise NotFoundError(f"{what} with prefix {text!r}: give the token id instead")
    return plain(rows[0])


def revoke_token(conn: Connection, token_id: int) -> dict[str, Any]:
    conn.execute(
        update(tokens_t)
        .where(tokens_t.c.id == token_id, tokens_t.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return get_token(conn, token_id)


def authenticate(conn: Connection, token: str) -> Principal | None:
    """The principal behind a presented token, or None (unknown, revoked, expired, disabled)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = conn.execute(
        select(
            tokens_t.c.id,
            tokens_t.c.scopes,
            tokens_t.c.expires_at,
            tokens_t.c.revoked_at,
            users_t.c.id.label("user_id"),
            users_t.c.username,
            users_t.c.role,
            users_t.c.is_active,
        )
        .join(users_t, users_t.c.id == tokens_t.c.user_id)
        .where(tokens_t.c.token_hash == hash_token(token))
    ).first()
    if row is None or row.revoked_at is not None or not row.is_active:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    scopes = tuple(row.scopes) if row.scopes is not None else None
    return Principal(row.user_id, row.username, row.role, row.id, scopes)


def ensure_first_admin(conn: Connection) -> tuple[str, str] | None:
    """On a store without users: create the admin and its first token (username, token)."""
    if count_users(conn):
        return None
    create_user(conn, FIRST_ADMIN, "admin")
    token, _ = create_token(conn, FIRST_ADMIN, name="created by init")
    return FIRST_ADMIN, token


def parse_duration(text: str) -> timedelta:
    """``90m``, ``12h``, ``30d``, ``2w`` (or plain seconds) as a timedelta."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if not match:
        raise ConfigError(f"duration {text!r}: use e.g. 90m, 12h, 30d or 2w")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    return timedelta(seconds=int(match.group(1)) * unit)


# -- runtime helpers ---------------------------------------------------------------
class UsageRecorder:
    """When tokens were last used, written to ``api_tokens.last_used_at`` in batches.

    Requests only note the time in memory: a write per request would queue API reads
    behind sync transactions on SQLite.
    """

    def __init__(self) -> None:
        self._seen: dict[int, datetime] = {}
        self._lock = threading.Lock()

    def note(self, token_id: int) -> None:
        with self._lock:
            self._seen[token_id] = utcnow()

    def flush(self, conn: Connection) -> int:
        with self._lock:
            seen, self._seen = self._seen, {}
        for token_id, when in seen.items():
            conn.execute(
                update(tokens_t).where(tokens_t.c.id == token_id).values(last_used_at=when)
            )
        return len(seen)
