"""Which stored secrets a declaration keeps when it is saved
(:func:`factorysync.store.registry_save.save_source`).

A declaration read back from the API or an export shows each secret as ``"***"`` or as
an ``${env:NAME}`` reference (an export's placeholder). Applied again, ``"***"`` keeps
the stored value, a reference whose variable holds the stored value changes nothing, and
a reference whose variable is not set where the file is applied is refused rather than
let replace a stored secret.
"""

from __future__ import annotations

import os
from typing import Any

from factorysync.errors import ConfigError
from factorysync.security.secret_values import MASK, env_reference_names
from factorysync.security.secrets import resolve_env_refs


def unset_variables(declared: Any, stored: Any, where: str) -> list[str]:
    """Where ``declared`` puts ``${env:NAME}`` references in place of a different stored
    value and a variable is not set here. Applied, the reference would replace the stored
    secret (an export's placeholders applied without their variables): refused instead."""
    if isinstance(declared, dict):
        have = stored if isinstance(stored, dict) else {}
        return [
            problem
            for k, v in declared.items()
            for problem in unset_variables(v, have.get(k), f"{where}.{k}")
        ]
    if isinstance(declared, list):
        items = stored if isinstance(stored, list) else []
        return [
            problem
            for i, v in enumerate(declared)
            for problem in unset_variables(v, items[i] if i < len(items) else None, f"{where}[{i}]")
        ]
    if not isinstance(declared, str) or stored is None or declared == stored:
        return []
    return [
        f"{where}: environment variable {name} is not set, and a secret is stored: set it "
        "where the file is applied, or write '***' to keep the stored secret"
        for name in env_reference_names(declared)
        if name not in os.environ
    ]


def same_secrets(stored: Any, declared: Any) -> bool:
    """Whether declared secrets give the stored ones, value by value: equal, or
    ``${env:NAME}`` references (an export's placeholders) whose variables hold the stored
    values. A reference stored as it is declared is the same, set here or not."""
    if stored == declared:
        return True
    if isinstance(declared, dict) and isinstance(stored, dict):
        return declared.keys() == stored.keys() and all(
            same_secrets(stored[k], v) for k, v in declared.items()
        )
    if isinstance(declared, list) and isinstance(stored, list):
        return len(declared) == len(stored) and all(
            same_secrets(s, d) for s, d in zip(stored, declared, strict=True)
        )
    if not isinstance(declared, str):
        return False
    try:
        return bool(resolve_env_refs(declared, where="authentication_config") == stored)
    except ConfigError:  # a variable not set (where nothing was stored): they differ
        return False


def kept_secrets(declared: Any, stored: Any, where: str) -> Any:
    """``declared`` with each ``"***"`` (a secret as exports and the API show it) replaced
    by the stored value it stands for."""
    if declared == MASK:
        if stored is None:
            raise ConfigError(
                f"{where}: '***' keeps a stored secret, and none is stored here: write the "
                "value, or a ${env:NAME} reference"
            )
        return stored
    if isinstance(declared, dict):
        have = stored if isinstance(stored, dict) else {}
        return {k: kept_secrets(v, have.get(k), f"{where}.{k}") for k, v in declared.items()}
    if isinstance(declared, list):
        items = stored if isinstance(stored, list) else []
        return [
            kept_secrets(v, items[i] if i < len(items) else None, f"{where}[{i}]")
            for i, v in enumerate(declared)
        ]
    return declared
