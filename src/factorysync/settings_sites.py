"""The rules of the settings for sites and forwarding between them (``FACTORYSYNC_SITE``,
``FACTORYSYNC_FORWARD_*``, ``FACTORYSYNC_CENTRAL_URL``), used by the validators of
:class:`factorysync.settings.Settings`. A refused value that may hold a password (a URL)
is named by its variable, never echoed."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

DEFAULT_SITE = "main"
# A site's name is part of NATS subject names (``factorysync.<site>.<table>``): no dots,
# wildcards or spaces, and short.
SITE_NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
SITE_NAME_RULE = "use 1 to 32 lower-case letters, digits, '-' or '_'"
# URL schemes of a NATS server (forwarding to the central store).
NATS_SCHEMES = ("nats", "tls", "ws", "wss")
TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def site_name(value: str) -> str:
    if not SITE_NAME.match(value):
        raise ValueError(f"site {value[:40]!r} is not a valid site name: {SITE_NAME_RULE}")
    return value


def nats_urls(value: str, variable: str) -> str:
    """One NATS server URL or several, comma separated (empty: none)."""
    value = value.strip()
    for url in filter(None, (u.strip() for u in value.split(","))):
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in NATS_SCHEMES or not parts.hostname:
            # Named by its variable only: the URL may hold a password.
            raise ValueError(
                f"{variable} must be nats://[user:password@]host[:port] (or tls://, ws://, "
                "wss://), several comma separated"
            )
    return value


def forward_tables(value: str) -> str:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names or names == ["*"]:
        return "*"
    bad = [n for n in names if not TABLE_NAME.fullmatch(n)]
    if bad:
        raise ValueError(
            f"FACTORYSYNC_FORWARD_TABLES: {', '.join(repr(n[:70]) for n in bad)} is not a "
            "target table name (list names separated by commas, or * for all)"
        )
    return ",".join(names)


def stream_name(value: str) -> str:
    if not STREAM_NAME.fullmatch(value):
        raise ValueError(
            f"FACTORYSYNC_FORWARD_STREAM {value[:70]!r} is not a stream name: use 1 to 64 "
            "letters, digits, '-' or '_'"
        )
    return value
