"""Operations shared by the CLI, the API and the console (one way to do each thing)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from factorysync.config import load_sources_file
from factorysync.engine.runner import Runner, RunResult
from factorysync.errors import ConfigError
from factorysync.legacy import declarations, parse_legacy
from factorysync.security.secrets import create_key_file
from factorysync.store.db import plain
from factorysync.store.registry import Change, apply_declarations, list_sources
from factorysync.store.schema import data_source_quarantine as quarantine_t
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
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
    return InitResult(store.upgrade(), key_created, origin)


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
        by_status = dict(
            conn.execute(select(reg_t.c.status, func.count()).group_by(reg_t.c.status)).all()
        )
        running = conn.execute(
            select(func.count()).where(hist_t.c.sync_status == "running")
        ).scalar_one()
        oldest_due = conn.execute(
            select(func.min(reg_t.c.next_sync)).where(reg_t.c.status == "active")
        ).scalar_one()
        since = now - timedelta(hours=24)
        runs = dict(
            conn.execute(
                select(hist_t.c.sync_status, func.count())
                .where(hist_t.c.sync_started_at >= since)
                .group_by(hist_t.c.sync_status)
            ).all()
        )
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
    }
