"""The demo's console login: the admin user, with a new random password at every start.

``make demo`` should end in a browser, not in ``factorysync user add``: the demo gives the
admin (``admin``, the store's first user) a password made by :func:`secrets.token_urlsafe`
and the command line prints it once. Only its Argon2 hash is stored, as for any user, and
nothing here logs it. A demo started again on the same store replaces the password (the
old one was printed once and is likely lost), so the engineer is never locked out; the
result says whether that happened, and the command line says so.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from factorysync.errors import NotFoundError
from factorysync.store import accounts
from factorysync.store.store import Store

DEMO_ADMIN = accounts.FIRST_ADMIN
PASSWORD_BYTES = 18  # 24 url-safe characters


@dataclass(frozen=True)
class DemoLogin:
    """Who logs in to the demo's console, and how; ``repr`` hides the secrets."""

    username: str
    password: str = field(repr=False)
    reset: bool  # the user had a password: this one replaced it
    token: str | None = field(default=None, repr=False)  # a new store's first API token


def demo_login(store: Store) -> DemoLogin:
    """Give the demo's admin a new random password, creating the user (and, on a store
    without users, its first API token, as ``init`` would) when it is missing.

    An existing ``admin`` is also made active and an admin again: the demo is there to be
    looked at, and a disabled account would lock the engineer out all the same."""
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    with store.begin() as conn:
        first = accounts.ensure_first_admin(conn)
        try:
            before = accounts.get_user(conn, DEMO_ADMIN)
        except NotFoundError:
            accounts.create_user(conn, DEMO_ADMIN, "admin", password=password)
            return DemoLogin(DEMO_ADMIN, password, reset=False)
        accounts.update_user(conn, DEMO_ADMIN, password=password, role="admin", is_active=True)
    token = first[1] if first is not None else None
    return DemoLogin(DEMO_ADMIN, password, reset=bool(before["has_password"]), token=token)
