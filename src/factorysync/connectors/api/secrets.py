"""Keeping an API connection's secrets out of messages and logs.

:class:`Secrets` holds the values of a connection's ``authentication_config`` (and the
tokens fetched for it) and masks them, also URL-encoded, in any text. Error messages pass
through it; quoted response bodies are masked before they are cut (:func:`snippet`), so
no part of a secret shows; URLs name secret query parameters' values as ``***``
(:func:`mask_url`).

httpx logs each request's URL (INFO) and httpcore each response's headers (DEBUG). A
filter on those loggers masks every query-string value and the secrets of every open
session, so a token in a URL or an echoed header never reaches a log handler either.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx

from factorysync.security.redaction import Redactor
from factorysync.security.secret_values import MASK

SNIPPET_BYTES = 200
_QUERY_VALUE = re.compile(r"([?&][^=&\s#'\"]+=)[^&\s#'\"]+")


class Secrets:
    """The secret values of one connection; masks them in text. Call it on a text."""

    def __init__(self, values: Any = None) -> None:
        self._redact = Redactor()
        self.add(values)

    def add(self, value: Any) -> None:
        """Learn ``value``: an ``authentication_config`` mapping (its secret values, not
        identifiers such as the user name, see ``security.secrets.IDENTIFIER_KEYS``), or
        a secret itself (a fetched token, an encoded Basic credential). The redactor
        masks every encoding of each, URL-encoded ones included."""
        if isinstance(value, dict):
            self._redact.add(value)
        else:
            self._redact.add(list(_strings(value)))

    def __call__(self, text: str) -> str:
        return self._redact(text)

    def opened(self) -> None:
        """A session using these secrets started: mask them in HTTP library logs."""
        with _open_lock:
            _open[self] = _open.get(self, 0) + 1

    def closed(self) -> None:
        with _open_lock:
            left = _open.pop(self, 1) - 1
            if left:
                _open[self] = left


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple | set):
        for v in value:
            yield from _strings(v)


_open: dict[Secrets, int] = {}  # secrets of open sessions: how many sessions use each
_open_lock = threading.Lock()


class _MaskHttpLogs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = _QUERY_VALUE.sub(lambda m: m.group(1) + MASK, text)
        with _open_lock:
            active = list(_open)
        for secrets in active:
            masked = secrets(masked)
        if masked != text:
            record.msg, record.args = masked, None
        return True


_MASK_FILTER = _MaskHttpLogs()
for _name in ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2"):
    logging.getLogger(_name).addFilter(_MASK_FILTER)


def mask_url(url: httpx.URL, secret_params: Iterable[str] = ()) -> str:
    """``url`` with the values of ``secret_params`` (and of well-known ones) masked."""
    hidden = set(secret_params)
    base = str(url.copy_with(query=None, fragment=None))
    if not url.query:
        return base
    pairs = [(k, MASK if k in hidden else v) for k, v in url.params.multi_items()]
    return Redactor()(base + "?" + urlencode(pairs, safe="*,:/"))


def snippet(body: bytes, mask: Callable[[str], str] = str, limit: int = SNIPPET_BYTES) -> str:
    """The start of a body, on one line, for an error message, with ``mask`` applied
    before the text is cut."""
    head = body[: limit + 1024].decode("utf-8", errors="replace")
    text = " ".join(mask(head).split())
    if not text:
        return "(empty body)"
    more = "…" if len(text) > limit or len(body) > limit + 1024 else ""
    return f"'{text[:limit]}'{more}"
