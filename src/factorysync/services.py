"""Operations shared by the CLI, the API and the console (one way to do each thing)."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import func, select, update

from factorysync.config import SourceDecl, load_sources_file, parse_source
from factorysync.engine.runner import Runner, RunResult
from factorysync.errors import ConfigError, FactorySyncError
from factorysync.legacy import declarations, parse_legacy
from factorysync.security.secrets import (
    MASK,
    PREFIX,
    Redactor,
    SecretBox,
    create_key_file,
    mask_config,
    resolve_env_refs,
)
from factorysync.store.db import plain
from factorysync.store.registry import (
    Change,
    apply_declarations,
    declaration_of,
    get_source,
    list_sources,
    remove_source,
    save_source,
)
from factorysync.store.schema import data_source_quarantine as quarantine_t
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.store.templates import seed_templates
from factorysync.store.types import utcnow


@dataclass
class InitResult:
    revision: str | None
    key_created: bool
    key_origin: str


def init_store(store: Store) -> InitResult:
    """Create the key file (unless a key is set) and create/upgrade the schema."""
    settings = store.settings
    key_created = False
    if settings.secret_key:
        origin = "FACTORYSYNC_SECRET_KEY"
    else:
        key_created = create_key_file(settings.secret_key_file)
        origin = str(settings.secret_key_file.expanduser().resolve())
    store.box  # noqa: B018 - fail now on an unusable key, not at the first secret
    revision = store.upgrade()
    with store.begin() as conn:
        seed_templates(conn)
    return InitResult(revision, key_created, origin)


def apply_file(store: Store, path: Path, *, prune: bool = False) -> list[Change]:
    decls = load_sources_file(path)
    store.ensure_ready()
    with store.begin() as conn:
        return apply_declarations(conn, decls, store.box, prune=prune)


def import_legacy(
    store: Store, path: Path, root: Path | None = None
) -> tuple[list[Change], list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    entries = parse_legacy(text, str(path))
    store.ensure_ready()
    with store.begin() as conn:
        existing = {
            r.legacy_id: r.source_id
            for r in conn.execute(
                select(reg_t.c.legacy_id, reg_t.c.source_id).where(reg_t.c.legacy_id.is_not(None))
            )
        }
        decls, notes = declarations(entries, (root or path.parent).resolve(), existing)
        return apply_declarations(conn, decls, store.box, created_by="import-legacy"), notes


def sync_many(
    store: Store,
    source_ids: list[str],
    *,
    trigger: str = "manual",
    progress: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    runner = Runner(store)
    results = []
    for sid in source_ids:
        result = runner.sync(sid, trigger=trigger)
        results.append(result)
        if progress:
            progress(result)
    return results


def run_record(store: Store, run_id: int) -> dict[str, Any] | None:
    """One run of the history, or None when there is no such run."""
    with store.connect() as conn:
        row = conn.execute(select(hist_t).where(hist_t.c.id == run_id)).mappings().first()
    return None if row is None else plain(row)


def history(store: Store, source_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    stmt = select(hist_t).order_by(hist_t.c.id.desc()).limit(limit)
    if source_id:
        stmt = stmt.where(hist_t.c.source_id == source_id)
    with store.connect() as conn:
        return [plain(r) for r in conn.execute(stmt).mappings()]


def quarantined(store: Store, source_id: str, limit: int = 100) -> list[dict[str, Any]]:
    stmt = (
        select(quarantine_t)
        .where(quarantine_t.c.source_id == source_id)
        .order_by(quarantine_t.c.id.desc())
        .limit(limit)
    )
    with store.connect() as conn:
        return [plain(r) for r in conn.execute(stmt).mappings()]


def sources(store: Store, status: str | None = None) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return list_sources(conn, status=status)


def status_summary(store: Store) -> dict[str, Any]:
    now = utcnow()
    with store.connect() as conn:
        by_status: dict[str, int] = {
            status: count
            for status, count in conn.execute(
                select(reg_t.c.status, func.count()).group_by(reg_t.c.status)
            ).all()
        }
        running = conn.execute(
            select(func.count()).where(hist_t.c.sync_status == "running")
        ).scalar_one()
        oldest_due = conn.execute(
            select(func.min(reg_t.c.next_sync)).where(reg_t.c.status == "active")
        ).scalar_one()
        since = now - timedelta(hours=24)
        runs: dict[str, int] = {
            status: count
            for status, count in conn.execute(
                select(hist_t.c.sync_status, func.count())
                .where(hist_t.c.sync_started_at >= since)
                .group_by(hist_t.c.sync_status)
            ).all()
        }
        from factorysync.engine.leases import workers_summary

        workers = workers_summary(conn)
    from factorysync.store.types import UTCDateTime

    if isinstance(oldest_due, str):  # aggregate results skip the column type on SQLite
        oldest_due = UTCDateTime().process_result_value(oldest_due, None)  # type: ignore[arg-type]
    lag = max((now - oldest_due).total_seconds(), 0.0) if oldest_due else 0.0
    return {
        "store": store.safe_url,
        "sources": sum(by_status.values()),
        "by_status": by_status,
        "runs_in_progress": running,
        "scheduler_lag_s": round(lag, 3),
        "runs_last_24h": runs,
        "workers": [
            {
                "worker_id": w["worker_id"],
                "host": w["host"],
                "running": w["running"],
                "max_concurrent": w["max_concurrent"],
                "leases": w["leases"],
                "heartbeat_at": w["heartbeat_at"],
            }
            for w in workers
        ],
    }


# -- sources over the API ----------------------------------------------------------------
def _declaration(raw: Any) -> SourceDecl:
    decl, problems = parse_source(raw, "body")
    if decl is None or problems:
        raise ConfigError(f"invalid source: {len(problems)} problem(s)", problems)
    return decl


def create_source(store: Store, raw: Any, *, created_by: str | None = None) -> Change:
    """Register a new source from a declaration (AlreadyExists if its id is taken)."""
    from factorysync.security.auth import AlreadyExists

    decl = _declaration(raw)
    with store.begin() as conn:
        taken = conn.execute(select(reg_t.c.id).where(reg_t.c.source_id == decl.source_id))
        if taken.first() is not None:
            raise AlreadyExists(f"source {decl.source_id!r} exists already (PATCH changes it)")
        return save_source(conn, decl, store.box, created_by=created_by)


def _unmask(new: Any, old: Any, redact: Redactor) -> Any:
    """A value sent back as shown (``"***"``, or a URL whose password reads ``***``) keeps
    the stored value, so a client can send back what it read."""
    if isinstance(new, str) and MASK in new and isinstance(old, str):
        return old if new in (MASK, redact(old)) else new
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: _unmask(v, old.get(k), redact) for k, v in new.items()}
    if isinstance(new, list) and isinstance(old, list):
        return [_unmask(v, old[i] if i < len(old) else None, redact) for i, v in enumerate(new)]
    return new


def update_source(store: Store, source_id: str, patch: Any) -> Change:
    """Change a source: fields in ``patch`` replace the stored ones (lists as a whole).

    A connection that leaves out ``authentication_config`` keeps its stored secrets, and
    masked values keep theirs.
    """
    if not isinstance(patch, dict):
        raise ConfigError("invalid source", ["body: expected a JSON object"])
    if patch.get("source_id", source_id) != source_id:
        raise ConfigError("invalid source", ["body: source_id: cannot be changed"])
    with store.begin() as conn:
        current = declaration_of(get_source(conn, source_id), store.box)
        stored = current.model_dump(mode="json", by_alias=True)
        redact = Redactor()
        for c in current.connections:
            redact.add(c.authentication_config)
        merged = {**stored, **patch, "source_id": source_id}
        if isinstance(patch.get("connections"), list):
            old = {c["connection_name"]: c for c in stored["connections"]}
            merged["connections"] = []
            for sent in patch["connections"]:
                name = sent.get("connection_name", "primary") if isinstance(sent, dict) else None
                before = old.get(name) if name is not None else None
                if before is not None:
                    sent = dict(sent)
                    for key in ("connection_config", "authentication_config"):
                        sent[key] = _unmask(sent.get(key, before[key]), before[key], redact)
                merged["connections"].append(sent)
        return save_source(conn, _declaration(merged), store.box)


def delete_source(store: Store, source_id: str) -> Change:
    with store.begin() as conn:
        return remove_source(conn, source_id)


def redact_config(value: Any, redact: Redactor) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_config(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_config(v, redact) for v in value]
    return value


def public_source(store: Store, source: dict[str, Any]) -> dict[str, Any]:
    """A stored source as shown to people: secrets masked, credentials in strings redacted."""
    redact = Redactor()
    for c in source["connections"]:
        # An undecryptable config adds nothing here: the masks below still hide it.
        with contextlib.suppress(ConfigError):
            redact.add(store.box.decrypt_config(c["authentication_config"]))
    shown = dict(source)
    shown["connections"] = [
        dict(
            c,
            connection_config=redact_config(c["connection_config"], redact),
            authentication_config=mask_config(c["authentication_config"]),
        )
        for c in source["connections"]
    ]
    shown["last_error"] = redact(source["last_error"]) if source.get("last_error") else None
    return shown


def test_source(store: Store, source_id: str) -> dict[str, Any]:
    """Check every connection of a source (no data is read); messages are redacted."""
    from factorysync.connectors.base import ConnectorContext
    from factorysync.connectors.registry import build_connector

    with store.connect() as conn:
        decl = declaration_of(get_source(conn, source_id), store.box)
    redact = Redactor()
    for c in decl.connections:
        redact.add(c.authentication_config)
    settings = store.settings
    context = ConnectorContext(source_id, settings, settings.batch_size)
    checks = []
    for c in sorted(decl.connections, key=lambda c: not c.is_primary):
        clock = time.perf_counter()
        try:
            assert c.connection_type is not None
            auth = resolve_env_refs(c.authentication_config, where=f"{c.connection_name} auth")
            check = build_connector(c.connection_type, c.connection_config, auth, context).check()
            ok, message = True, check.message
        except Exception as exc:  # every failure is the answer, not an error of the request
            ok = False
            message = str(exc) if isinstance(exc, FactorySyncError | OSError) else repr(exc)
        checks.append(
            {
                "connection_name": c.connection_name,
                "ok": ok,
                "message": redact(message),
                "latency_ms": round((time.perf_counter() - clock) * 1000, 1),
            }
        )
    return {"source_id": source_id, "ok": all(c["ok"] for c in checks), "connections": checks}


# -- accounts ------------------------------------------------------------------------------
def create_first_admin(store: Store) -> tuple[str, str] | None:
    """On a store without users: the admin user and its one-time token, else None."""
    from factorysync.security.auth import ensure_first_admin

    with store.begin() as conn:
        return ensure_first_admin(conn)


# -- key rotation --------------------------------------------------------------------------
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
        for table, name in ((conns_t, "connection"), (templates_t, "template")):
            for row in conn.execute(select(table.c.id, table.c.authentication_config)).all():
                config = row.authentication_config or {}
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
                conn.execute(
                    update(table).where(table.c.id == row.id).values(authentication_config=rotated)
                )
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
