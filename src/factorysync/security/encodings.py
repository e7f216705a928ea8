"""How a secret may be written when a server or a library echoes it: URL-encoded,
base64 (HTTP Basic included), JSON-escaped, as a Python repr, HTML-escaped, and those
forms within each other. :class:`factorysync.security.redaction.Redactor` masks each.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import re
from urllib.parse import quote, quote_plus

MIN_SECRET = 3  # shorter values are not masked: they would garble every message
SHORT_SECRET = 6  # shorter values are masked only as whole tokens, never inside a word


def _json_forms(text: str) -> set[str]:
    utf8 = json.dumps(text, ensure_ascii=False)[1:-1]
    ascii_only = json.dumps(text)[1:-1]
    return {
        utf8,
        ascii_only,
        # PHP's json_encode escapes "/" too.
        utf8.replace("/", "\\/"),
        ascii_only.replace("/", "\\/"),
        re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), ascii_only),
        # Encoders that keep JSON safe inside HTML (Go's encoding/json, PHP's JSON_HEX_*).
        re.sub(r"[<>&']", lambda m: f"\\u{ord(m.group()):04x}", ascii_only),
    }


def _repr_forms(text: str) -> set[str]:
    # repr() quotes with ' and escapes it when the text holds both quote marks; inside a
    # longer text either may happen, so both forms are kept. Adding '"' forces the first.
    forms = set()
    for quoted in (repr(text + '"')[1:-2], ascii(text + '"')[1:-2], repr(_utf8(text) + b'"')[2:-2]):
        forms |= {quoted, quoted.replace("\\'", "'")}
    return forms


def _html_forms(text: str) -> set[str]:
    return {
        html.escape(text),
        html.escape(text, quote=False),
        # markupsafe (Jinja's autoescape) and Go's html/template
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;"),
        html.escape(text).replace("&quot;", "&#34;").replace("&#x27;", "&#39;"),
    }


def _escaped(text: str) -> set[str]:
    """``text`` as it reads inside a JSON string, a Python repr or HTML."""
    return _json_forms(text) | _repr_forms(text) | _html_forms(text)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _base64(raw: bytes) -> set[str]:
    forms = set()
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms |= {encoded, encoded.rstrip("=")}
    return forms


def _base64_inside(raw: bytes) -> set[str]:
    """What any base64 text holding ``raw`` shows of it, whatever comes before: for each
    of the three alignments, the characters that only ``raw``'s bits decide."""
    forms = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        part = encoded[-(-8 * shift // 6) : 8 * (shift + len(raw)) // 6]
        forms |= {part, part.translate(_URLSAFE)}
    return forms


_URLSAFE = str.maketrans("+/", "-_")


def _percent(text: str) -> set[str]:
    forms = {
        quote(text, safe=""),
        quote(text),  # keeps "/"
        quote(text, safe="!'()*~"),  # JavaScript's encodeURIComponent
        quote_plus(text),
    }
    return forms | {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), f) for f in forms}


@functools.lru_cache(maxsize=4096)
def encodings(value: str) -> frozenset[str]:
    """Every form in which ``value`` may come back from a server or a library: as it is,
    URL-encoded, base64 (its own, and inside longer base64 when ``value`` is long), and
    each of those JSON-escaped, repr'd or HTML-escaped, up to twice (a repr of a JSON
    body)."""
    raw = _utf8(value)
    plain = {value} | _percent(value) | _base64(raw)
    if len(value) >= SHORT_SECRET:
        plain |= _base64_inside(raw) | _base64_inside(_utf8(json.dumps(value)[1:-1]))
    once = {e for p in plain for e in _escaped(p)}
    twice = {e for p in once for e in _escaped(p)}
    return frozenset(f for f in plain | once | twice if f)


@functools.lru_cache(maxsize=4096)
def basic_encodings(user: str, secret: str) -> frozenset[str]:
    """HTTP Basic credentials made of ``user`` and ``secret`` (RFC 7617, and RFC 6749's
    form-encoded client credentials), in the forms a server may echo them."""
    plain: set[str] = set()
    for pair in (f"{user}:{secret}", f"{quote_plus(user)}:{quote_plus(secret)}"):
        plain |= _base64(_utf8(pair))
    return frozenset(plain | {e for p in plain for e in _escaped(p)})
