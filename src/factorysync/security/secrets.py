"""Where secret values come from: encrypted at rest, or ``${env:NAME}`` references.

Each value of an ``authentication_config`` mapping is encrypted on its own with Fernet
(AES-128-CBC + HMAC-SHA256), so a stored config still shows *which* keys it holds while
no value is readable without the key. A stored value looks like ``enc:v1:<fernet token>``.

The key comes from ``FACTORYSYNC_SECRET_KEY`` or from the key file that ``factorysync init``
creates with mode 0600. Several keys may be given, comma separated, newest first: values
are encrypted with the first and decrypted with any (key rotation).

Every secret decrypted (:meth:`SecretBox.decrypt_config`) or resolved
(:func:`resolve_env_refs`) becomes known to
:func:`factorysync.security.redaction.redact_known`, which masks it in log records and
text of unknown origin. Which values of a config are secrets, and how they are shown:
:mod:`factorysync.security.secret_values`; masking them in text:
:mod:`factorysync.security.redaction`.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from factorysync.errors import ConfigError
from factorysync.security.redaction import learn_secrets
from factorysync.security.secret_values import ENV_REF, PREFIX
from factorysync.settings import Settings


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
        learn_secrets(plain)
        return plain


def resolve_env_refs(value: Any, *, where: str) -> Any:
    """Replace ``${env:NAME}`` references (in strings, recursively) by the variable's value.

    Every reference that cannot be resolved is reported at once, in one ConfigError
    (an unset variable, a FACTORYSYNC_* one). Every caller resolves an authentication
    config: the secrets of a resolved mapping become known to
    :func:`~factorysync.security.redaction.redact_known`.
    """
    problems: list[str] = []
    resolved = _resolve(value, where, problems)
    if problems:
        raise ConfigError("; ".join(problems))
    if isinstance(resolved, Mapping):
        learn_secrets(resolved)
    return resolved


def _resolve(value: Any, where: str, problems: list[str]) -> Any:
    if isinstance(value, str):

        def _sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.upper().startswith("FACTORYSYNC_"):
                # The service's own settings (its secret key, the store's URL) are not
                # for sources: a source could send them to any host it may reach.
                problems.append(
                    f"{where}: ${{env:{name}}} is not allowed: FACTORYSYNC_* variables "
                    "are the service's own settings"
                )
            elif name not in os.environ:
                problems.append(f"{where}: environment variable {name} is not set")
            else:
                return os.environ[name]
            return ""

        return ENV_REF.sub(_sub, value)
    if isinstance(value, dict):
        return {k: _resolve(v, f"{where}.{k}", problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    return value
