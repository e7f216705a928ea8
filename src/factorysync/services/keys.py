"""Rotating the secret key while services keep running (``factorysync secrets rotate-key``)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select, update

from factorysync.errors import ConfigError
from factorysync.security.secret_values import PREFIX
from factorysync.security.secrets import SecretBox
from factorysync.store.store import Store


@dataclass
class KeyRotation:
    values: int  # stored secret values re-encrypted
    key_file: str | None  # the key file rewritten, None when the key is in the environment
    old_keys_dropped: bool


def _split_keys(text: str) -> list[str]:
    return [k for k in re.split(r"[,\s]+", text.strip()) if k]


def _write_key_file(path: Path, keys: list[str]) -> None:
    """Replace the key file atomically (mode 0600 from the start)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(",".join(keys) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, path)


def _reencrypt(store: Store, box: SecretBox) -> int:
    """Every encrypted value re-encrypted under the box's first key, in one transaction.

    Plain values (a template's ``${env:NAME}`` references) are not secrets and stay."""
    from factorysync.store.schema import data_source_connections as conns_t
    from factorysync.store.schema import data_source_templates as templates_t

    count = 0
    with store.begin() as conn:
        # A template keeps its authentication config inside template_config.
        inner = templates_t.c.template_config["authentication_config"].label("config")
        for table, name in ((conns_t, "connection"), (templates_t, "template")):
            column = table.c.authentication_config.label("config") if table is conns_t else inner
            for row in conn.execute(select(table.c.id, column)).all():
                config = row.config if isinstance(row.config, dict) else {}
                secret = [
                    k for k, v in config.items() if isinstance(v, str) and v.startswith(PREFIX)
                ]
                if not secret:
                    continue
                try:
                    rotated = {k: box.rotate(v) if k in secret else v for k, v in config.items()}
                except InvalidToken:
                    raise ConfigError(
                        f"{name} {row.id}: a stored secret cannot be decrypted with any "
                        "configured key; nothing was re-encrypted"
                    ) from None
                count += len(secret)
                if table is templates_t:
                    whole = conn.execute(
                        select(table.c.template_config).where(table.c.id == row.id)
                    ).scalar_one()
                    values = {"template_config": dict(whole, authentication_config=rotated)}
                else:
                    values = {"authentication_config": rotated}
                conn.execute(update(table).where(table.c.id == row.id).values(**values))
    return count


def rotate_secret_key(
    store: Store,
    *,
    grace_s: float = 5.0,
    keep_old: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> KeyRotation:
    """Re-encrypt every stored secret under a new key while services keep running.

    With the key file: (1) a new key is written first in the file ("NEW,OLD"); running
    services reload the file within a second and can then decrypt under both keys;
    (2) after ``grace_s`` every stored secret is re-encrypted under the new key in one
    transaction; (3) the old key is dropped from the file (unless ``keep_old``). A failure
    before (3) leaves both keys in the file, so nothing becomes unreadable.

    With ``FACTORYSYNC_SECRET_KEY``: the variable cannot be changed for running processes,
    so it must already list the new key first ("NEW,OLD", on every process); this then
    re-encrypts, after which OLD can be removed from the variable.
    """
    settings = store.settings
    if settings.secret_key:
        keys = _split_keys(settings.secret_key)
        if len(keys) < 2:
            raise ConfigError(
                "FACTORYSYNC_SECRET_KEY holds one key: set it to 'NEW,OLD' on every process "
                "(`factorysync secrets generate-key` prints a new key), then run rotate-key"
            )
        return KeyRotation(_reencrypt(store, SecretBox.from_settings(settings)), None, False)
    path = settings.secret_key_file.expanduser()
    old = _split_keys(path.read_text(encoding="ascii")) if path.exists() else []
    if not old:
        raise ConfigError(f"no key file {path}: run 'factorysync init' first")
    SecretBox([k.encode("ascii") for k in old])  # refuse to rotate from an unusable file
    new = Fernet.generate_key().decode("ascii")
    _write_key_file(path, [new, *old])
    sleep(grace_s)
    box = SecretBox([k.encode("ascii") for k in (new, *old)])
    count = _reencrypt(store, box)
    if not keep_old:
        _write_key_file(path, [new])
    store.__dict__.pop("box", None)  # this process reads the new key file at next use
    return KeyRotation(count, str(path.resolve()), not keep_old)
