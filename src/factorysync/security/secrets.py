"""Encryption of ``authentication_config`` values at rest, secret references, and masking.

Each value of an ``authentication_config`` mapping is encrypted on its own with Fernet
(AES-128-CBC + HMAC-SHA256), so a stored config still shows *which* keys it holds while
no value is readable without the key. A stored value looks like ``enc:v1:<fernet token>``.

The key comes from ``FACTORYSYNC_SECRET_KEY`` or from the key file that ``factorysync init``
creates with mode 0600. Several keys may be given, comma separated, newest first: values
are encrypted with the first and decrypted with any (key rotation).

Not every value of an ``authentication_config`` is a secret: ``type``, ``username``,
``client_id``, ``token_url`` … (:data:`IDENTIFIER_KEYS`) say how and as whom to log in.
They are shown in the public view (:func:`mask_config`) and left alone in messages, so a
user ``postgres`` does not turn "postgresql" into "***ql". Every other value is a secret,
and :class:`Redactor` masks it in text in each form a server or library may echo it in:
JSON-escaped, URL-encoded, base64 (HTTP Basic included), Python repr, HTML. Every secret
decrypted or resolved in the process is also known to :func:`redact_known`, which masks
log records (:func:`install_log_redaction`) and text of unknown origin.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from factorysync.errors import ConfigError
from factorysync.settings import Settings

PREFIX = "enc:v1:"
MASK = "***"
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


class Secret(str):
    """A string whose ``repr`` and ``str`` in f-strings of containers never show the value."""

    def __repr__(self) -> str:
        return "Secret('***')"


def create_key_file(path: Path) -> bool:
    """Create a new key file readable by its owner only. Returns False if it already exists."""
    path = path.expanduser()
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(Fernet.generate_key() + b"\n")
    return True


def _load_keys(settings: Settings) -> list[bytes]:
    raw = settings.secret_key.strip()
    origin = "FACTORYSYNC_SECRET_KEY"
    if not raw:
        path = settings.secret_key_file.expanduser()
        origin = str(path)
        if not path.exists():
            raise ConfigError(
                f"no secret key: set FACTORYSYNC_SECRET_KEY or run 'factorysync init' "
                f"to create the key file {path}"
            )
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"secret key file {path} is readable by others (mode {mode:o}); "
                f"run: chmod 600 {path}"
            )
        raw = path.read_text(encoding="ascii").strip()
    keys = [k.strip().encode("ascii") for k in re.split(r"[,\s]+", raw) if k.strip()]
    for key in keys:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(
                f"secret key from {origin} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    return keys


class SecretBox:
    """Encrypts and decrypts single values with the configured key(s)."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigError("no secret key configured")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls(_load_keys(settings))

    def encrypt(self, value: Any) -> str:
        import orjson

        return PREFIX + self._fernet.encrypt(orjson.dumps(value)).decode("ascii")

    def decrypt(self, stored: Any) -> Any:
        import orjson

        if not isinstance(stored, str) or not stored.startswith(PREFIX):
            # Written before encryption was configured, or by hand: treat as plain.
            return stored
        try:
            return orjson.loads(self._fernet.decrypt(stored[len(PREFIX) :].encode("ascii")))
        except InvalidToken:
            raise ConfigError(
                "a stored secret cannot be decrypted with the configured key "
                "(wrong FACTORYSYNC_SECRET_KEY or key file?)"
            ) from None

    def rotate(self, stored: Any) -> Any:
        if not isinstance(stored, str) or not stored.startswith(PREFIX):
            return stored
        return PREFIX + self._fernet.rotate(stored[len(PREFIX) :].encode("ascii")).decode("ascii")

    def encrypt_config(self, config: Mapping[str, Any] | None) -> dict[str, Any]:
        return {k: self.encrypt(v) for k, v in (config or {}).items()}

    def decrypt_config(self, config: Mapping[str, Any] | None) -> dict[str, Any]:
        plain = {k: self.decrypt(v) for k, v in (config or {}).items()}
        _known.add(plain)
        return plain


def resolve_env_refs(value: Any, *, where: str) -> Any:
    """Replace ``${env:NAME}`` references (in strings, recursively) by the variable's value.

    Every caller resolves an authentication config: the secrets of a resolved mapping
    become known to :func:`redact_known`.
    """
    resolved = _resolve(value, where)
    if isinstance(resolved, Mapping):
        _known.add(resolved)
    return resolved


def _resolve(value: Any, where: str) -> Any:
    if isinstance(value, str):

        def _sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.upper().startswith("FACTORYSYNC_"):
                # The service's own settings (its secret key, the store's URL) are not
                # for sources: a source could send them to any host it may reach.
                raise ConfigError(
                    f"{where}: ${{env:{name}}} is not allowed: FACTORYSYNC_* variables "
                    "are the service's own settings"
                )
            if name not in os.environ:
                raise ConfigError(f"{where}: environment variable {name} is not set")
            return os.environ[name]

        return _ENV_REF.sub(_sub, value)
    if isinstance(value, dict):
        return {k: _resolve(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


# -- which values are secrets --------------------------------------------------------------
# Keys of authentication_config (top level) whose values say *how* to authenticate or *who*
# authenticates, not *with what*. Their values are shown and never masked; every other
# value, and everything nested in a mapping or list under another key, is a secret.
IDENTIFIER_KEYS = frozenset(
    {
        "type",
        "username",
        "user",
        "client_id",
        "grant_type",
        "client_auth",
        "token_url",
        "auth_url",
        "scope",
        "audience",
        "header",
        "header_name",
        "name",
        "in",
        "location",
        "prefix",
    }
)
_USER_KEYS = ("username", "user", "client_id")  # sent beside a secret as HTTP Basic
MIN_SECRET = 3  # shorter values are not masked: they would garble every message
SHORT_SECRET = 6  # shorter values are masked only as whole tokens, never inside a word
_ENV_REF_ONLY = re.compile(r"\$\{env:[A-Za-z_][A-Za-z0-9_]*\}")


def is_env_reference(value: Any) -> bool:
    """Whether ``value`` is wholly a ``${env:NAME}`` reference (then it is not the secret:
    a value that only contains one, ``pw${env:X}``, is)."""
    return isinstance(value, str) and _ENV_REF_ONLY.fullmatch(value) is not None


def env_reference_names(text: str) -> list[str]:
    """The variables that the ``${env:NAME}`` references in ``text`` name."""
    return _ENV_REF.findall(text)


def is_identifier(key: Any, value: Any) -> bool:
    """Whether ``authentication_config[key] = value`` names a credential (shown as it is)."""
    return key in IDENTIFIER_KEYS and not isinstance(value, Mapping)


def _scalars(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _scalars(v)]
    if isinstance(value, list | tuple | set):
        return [s for v in value for s in _scalars(v)]
    if isinstance(value, str):
        return [value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]
    return []


def secret_values(config: Mapping[str, Any] | None) -> list[str]:
    """The secret values of an authentication config, as text (``${env:NAME}`` references
    and encrypted values left out: neither is the secret)."""
    found = []
    for key, value in (config or {}).items():
        if not is_identifier(key, value):
            found += [s for s in _scalars(value) if not is_env_reference(s) and PREFIX not in s]
    return found


def mask_config(config: Mapping[str, Any] | None) -> dict[str, str]:
    """The public view of an authentication config: identifier values (``type``,
    ``username`` …) as they are, every other value ``"***"``. Pass the decrypted config:
    an encrypted value is always masked."""
    return {
        key: value
        if isinstance(value, str) and is_identifier(key, value) and not value.startswith(PREFIX)
        else MASK
        for key, value in (config or {}).items()
    }


# -- how a secret may be written ------------------------------------------------------------
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
def _basic_encodings(user: str, secret: str) -> frozenset[str]:
    """HTTP Basic credentials made of ``user`` and ``secret`` (RFC 7617, and RFC 6749's
    form-encoded client credentials), in the forms a server may echo them."""
    plain: set[str] = set()
    for pair in (f"{user}:{secret}", f"{quote_plus(user)}:{quote_plus(secret)}"):
        plain |= _base64(_utf8(pair))
    return frozenset(plain | {e for p in plain for e in _escaped(p)})


# -- masking ---------------------------------------------------------------------------------
class Redactor:
    """Masks known secret values in text, in every form :func:`encodings` lists, and
    credentials in URLs (``scheme://user:***@``, ``?token=***``).

    A value of :data:`SHORT_SECRET` characters or more is masked wherever it appears;
    a shorter one only as a whole token, so a password ``pw1`` does not maul ``pw123``.
    """

    _URL_CREDS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]+):[^@/\s]+@")
    _QUERY_SECRET = re.compile(
        r"(?i)([?&](?:token|access_token|api_key|apikey|key|password|secret|sig)=)[^&\s]+"
    )

    def __init__(self, secrets: Iterable[str] | None = None, keep: int | None = None) -> None:
        """``secrets``: values that are secrets as a whole (see :meth:`add` for configs).
        ``keep``: remember only this many of the most recently learnt values and pairs
        (a long-running process keeps meeting new tokens; its safety net must not grow
        without bound)."""
        # Dicts, not sets: insertion order tells which values are the oldest.
        self._values: dict[str, None] = {}
        self._pairs: dict[tuple[str, str], None] = {}
        self._keep = keep
        self._lock = threading.Lock()
        self._built: _Forms | None = _Forms({})
        for value in secrets or ():
            self.add_secret(value)

    def add(self, value: Any) -> None:
        """Learn the secrets of ``value``: an authentication config (a mapping: its values
        that are not identifiers, see :data:`IDENTIFIER_KEYS`), or secret values."""
        if isinstance(value, Mapping):
            found = secret_values(value)
            users = [value[k] for k in _USER_KEYS if isinstance(value.get(k), str)]
            self._learn(found, [(u, s) for u in users for s in found if u])
        else:
            self._learn(_scalars(value), [])
        if self is not _known:
            _known.add(value)

    def add_secret(self, value: str) -> None:
        self.add([value])

    def _learn(self, values: list[str], pairs: list[tuple[str, str]]) -> None:
        with self._lock:
            if self._values.keys() >= set(values) and self._pairs.keys() >= set(pairs):
                return  # nothing new: the built forms stay
            for value in values:  # a value learnt again becomes the newest
                self._values.pop(value, None)
                self._values[value] = None
            for pair in pairs:
                self._pairs.pop(pair, None)
                self._pairs[pair] = None
            if self._keep is not None:
                _keep_newest(self._values, self._keep)
                _keep_newest(self._pairs, self._keep)
            self._built = None

    def _compiled(self) -> _Forms:
        built = self._built
        if built is not None:
            return built
        with self._lock:
            forms: dict[str, bool] = {}  # form → masked only as a whole token
            for value in self._values:
                if len(value) >= MIN_SECRET:
                    whole = len(value) < SHORT_SECRET
                    for form in encodings(value):
                        forms[form] = forms.get(form, True) and whole
            for user, secret in self._pairs:
                if len(secret) >= MIN_SECRET:
                    forms.update(dict.fromkeys(_basic_encodings(user, secret), False))
            built = self._built = _Forms(forms)
        return built

    def __call__(self, text: str) -> str:
        text = self._compiled().mask(text)
        text = self._URL_CREDS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
        return self._QUERY_SECRET.sub(lambda m: m.group(1) + MASK, text)


def redact_config(value: Any, redact: Redactor) -> Any:
    """A config (``connection_config``) as shown: each string through ``redact``."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_config(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_config(v, redact) for v in value]
    return value


def unmask(new: Any, old: Any, redact: Redactor) -> Any:
    """``new`` with each value sent back as shown (``"***"``, or a string that reads as
    ``redact(old)``: a URL whose password reads ``***``) replaced by the stored ``old``, so
    what was read (the API, an export) can be written back without losing a secret."""
    if new == MASK and old is not None:
        return old  # also a mapping or list shown as one "***"
    if isinstance(new, str) and MASK in new and isinstance(old, str):
        return old if new == redact(old) else new
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: unmask(v, old.get(k), redact) for k, v in new.items()}
    if isinstance(new, list) and isinstance(old, list):
        return [unmask(v, old[i] if i < len(old) else None, redact) for i, v in enumerate(new)]
    return new


def _keep_newest(learnt: dict[Any, None], keep: int) -> None:
    """Forget the oldest entries (insertion order) beyond ``keep``."""
    for old in list(learnt)[: max(0, len(learnt) - keep)]:
        del learnt[old]


class _Forms:
    """The forms to mask, indexed by their first characters, longest first: a scan finds
    the forms starting at each place of a text in one look-up, however many there are."""

    FEW = 1000  # up to this many, a text is first checked for each form (in C, fast)

    def __init__(self, forms: dict[str, bool]) -> None:
        ordered = sorted(forms.items(), key=lambda f: len(f[0]), reverse=True)
        self.forms = tuple(form for form, _ in ordered)
        index: dict[str, list[tuple[str, bool]]] = {}
        for form, whole in ordered:
            index.setdefault(form[:MIN_SECRET], []).append((form, whole))
        self.index = {k: tuple(v) for k, v in index.items()}

    def mask(self, text: str) -> str:
        """``text`` with each form masked, left to right, the longest first; a form of a
        short value only where it is a whole token."""
        if not self.forms:
            return text
        if len(self.forms) <= self.FEW and not any(f in text for f in self.forms):
            return text
        parts, start, i, end = [], 0, 0, len(text) - MIN_SECRET
        while i <= end:
            for form, whole in self.index.get(text[i : i + MIN_SECRET], ()):
                if text.startswith(form, i) and not (
                    whole and (_word_at(text, i - 1) or _word_at(text, i + len(form)))
                ):
                    parts += [text[start:i], MASK]
                    i = start = i + len(form)
                    break
            else:
                i += 1
        return "".join(parts) + text[start:] if parts else text


def _word_at(text: str, i: int) -> bool:
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")


# Every secret this process has decrypted, resolved or been given: the last line of
# defence for text whose source is not known (log records, unexpected API errors).
# Bounded: an OAuth source fetches a new token every hour for months, and only the
# secrets in use now (and recently) can still turn up in a message.
KNOWN_SECRETS_KEPT = 20_000
_known = Redactor(keep=KNOWN_SECRETS_KEPT)


def redact_known(text: str) -> str:
    """``text`` with every secret this process knows masked."""
    return _known(text)


class RedactingFilter(logging.Filter):
    """Masks every known secret in a log record, its traceback included."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: the handler reports it
            return True
        masked = _known(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _known(record.exc_text)
        if record.stack_info:
            record.stack_info = _known(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Put a :class:`RedactingFilter` on the handlers of ``logger`` (the root logger):
    call it once logging is configured."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
