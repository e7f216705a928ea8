"""Masking secrets in text: in messages, log records and configs shown to people.

:class:`Redactor` masks the secrets it has learnt in each form a server or library may
echo them in (:mod:`factorysync.security.encodings`), and credentials in URLs. Every
secret decrypted or resolved in the process is also known to :func:`redact_known`,
which masks log records (:func:`install_log_redaction`) and text of unknown origin.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from factorysync.security.encodings import (
    MIN_SECRET,
    SHORT_SECRET,
    basic_encodings,
    encodings,
)
from factorysync.security.secret_values import MASK, scalars, secret_values

_USER_KEYS = ("username", "user", "client_id")  # sent beside a secret as HTTP Basic


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
            self._learn(scalars(value), [])
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
                    forms.update(dict.fromkeys(basic_encodings(user, secret), False))
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


def learn_secrets(value: Any) -> None:
    """Make the secrets of ``value`` (an authentication config, or secret values) known
    to :func:`redact_known`."""
    _known.add(value)


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
