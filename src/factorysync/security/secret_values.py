"""Which values of an ``authentication_config`` are secrets, and what stands in for one.

Not every value is a secret: ``type``, ``username``, ``client_id``, ``token_url`` …
(:data:`IDENTIFIER_KEYS`) say how and as whom to log in. They are shown in the public
view (:func:`mask_config`) and left alone in messages, so a user ``postgres`` does not
turn "postgresql" into "***ql". Every other value is a secret.

In place of a secret a config may hold an encrypted value (:data:`PREFIX`), the mask
shown to people (:data:`MASK`), or an ``${env:NAME}`` reference; none of them is the
secret itself. Nothing here imports the rest of the package.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PREFIX = "enc:v1:"  # an encrypted value (factorysync.security.secrets.SecretBox)
MASK = "***"  # a secret as shown to people
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_REF_ONLY = re.compile(r"\$\{env:[A-Za-z_][A-Za-z0-9_]*\}")

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


def is_env_reference(value: Any) -> bool:
    """Whether ``value`` is wholly a ``${env:NAME}`` reference (then it is not the secret:
    a value that only contains one, ``pw${env:X}``, is)."""
    return isinstance(value, str) and _ENV_REF_ONLY.fullmatch(value) is not None


def env_reference_names(text: str) -> list[str]:
    """The variables that the ``${env:NAME}`` references in ``text`` name."""
    return ENV_REF.findall(text)


def is_identifier(key: Any, value: Any) -> bool:
    """Whether ``authentication_config[key] = value`` names a credential (shown as it is)."""
    return key in IDENTIFIER_KEYS and not isinstance(value, Mapping)


def scalars(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in scalars(v)]
    if isinstance(value, list | tuple | set):
        return [s for v in value for s in scalars(v)]
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
            found += [s for s in scalars(value) if not is_env_reference(s) and PREFIX not in s]
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
