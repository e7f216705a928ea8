"""Operations shared by the CLI, the API and the console (one way to do each thing)."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import func, or_, select, update

from factorysync import alerts  # noqa: F401 - its rules hear the runs this process ends
from factorysync.config import SourceDecl
from factorysync.connectors.registry import validate_authentication_config
from factorysync.engine.runner import Runner, RunResult
from factorysync.errors import ConfigError, FactorySyncError
from factorysync.intake import load_sources_file, parse_source
from factorysync.legacy import Merge, parse_legacy, plan_import
from factorysync.observability.infolog import SUBSCRIBED_EVENT
from factorysync.security.secrets import (
    PREFIX,
    Redactor,
    SecretBox,
    create_key_file,
    mask_config,
    redact_config,
    unmask,
)
from factorysync.settings import DEFAULT_DATA_ROOT, Settings
from factorysync.store.db import plain
from factorysync.store.registry import (
    Change,
    apply_declarations,
    declaration_of,
    get_source,
    list_sources,
    registry_id,
    remove_source,
    save_source,
)
from factorysync.store.schema import HISTORY_ROW
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import infolog as infolog_t
from factorysync.store.store import Store
from factorysync.store.templates import seed_templates
from factorysync.store.types import utcnow


@dataclass
class InitResult:
    revision: str | None
    key_created: bool
    key_origin: str
    # The default data root, when this init created it.
    data_root_created: Path | None = None
    # Store files that were readable by others and are now 0600.
    tightened: list[Path] = field(default_factory=list)
    # Data roots that hold the store or the key (Settings.data_root_problems).
    data_root_problems: list[str] = field(default_factory=list)


def init_store(store: Store) -> InitResult:
    """Create the key file (unless a key is set), create/upgrade the schema, make the
    default data root and make a SQLite store's files private."""
    settings = store.settings
    # Before the store is opened, so that new WAL and shared-memory files take 0600 too.
    tightened = store.tighten_files()
    root_created = None
    if settings.data_roots == DEFAULT_DATA_ROOT:
        root = settings.data_root_paths()[0]
        if not root.exists():
            root.mkdir(parents=True)
            root_created = root
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
    return InitResult(
        revision, key_created, origin, root_created, tightened, settings.data_root_problems()
    )


_T = TypeVar("_T")


class _DryRun(Exception):
    """Raised inside a dry run's transaction so that it is rolled back."""


def _registry_change(store: Store, work: Callable[[Any], _T], *, dry_run: bool) -> _T:
    """``work(conn)`` in one write transaction: committed, or with ``dry_run`` rolled back.

    A dry run goes through the very code that applies a change, so the diff it reports is
    the one a real run makes; nothing of it is kept."""
    found: list[_T] = []
    try:
        with store.begin() as conn:
            found.append(work(conn))
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return found[0]


def apply_file(
    store: Store,
    path: Path,
    *,
    prune: bool = False,
    dry_run: bool = False,
    created_by: str | None = None,
) -> list[Change]:
    """Make the registry match a sources file; with ``dry_run``, only report the changes.
    ``created_by``: the acting user's name (None: the OS user running the command)."""
    decls = load_sources_file(path)  # every source of the file, in order, or an error
    problems = [
        problem
        for i, d in enumerate(decls)
        for problem in secret_problems(
            d, store.settings, f"sources[{i}] (source_id {d.source_id!r})"
        )
    ]
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    store.ensure_ready()
    return _registry_change(
        store,
        lambda conn: apply_declarations(conn, decls, store.box, prune=prune, created_by=created_by),
        dry_run=dry_run,
    )


def _sources_with_connections(conn: Any) -> list[dict[str, Any]]:
    from factorysync.store.schema import data_source_connections as conns_t

    stored = list_sources(conn)
    connections: dict[int, list[dict[str, Any]]] = {}
    for row in conn.execute(select(conns_t).order_by(conns_t.c.id)).mappings():
        connections.setdefault(row["source_id"], []).append(plain(row))
    return [dict(s, connections=connections.get(s["id"], [])) for s in stored]


def _merge_legacy(conn: Any, merge: Merge) -> None:
    """Set only what an import owns on an existing source (see factorysync.legacy)."""
    from factorysync.store.schema import data_source_connections as conns_t

    now = utcnow()
    if merge.values:
        conn.execute(
            update(reg_t)
            .where(reg_t.c.source_id == merge.source_id)
            .values(**merge.values, updated_at=now)
        )
    if merge.connection_config is not None:
        conn.execute(
            update(conns_t)
            .where(
                conns_t.c.registry_id == registry_id(conn, merge.source_id),
                conns_t.c.connection_name == merge.connection_name,
            )
            .values(connection_config=merge.connection_config, updated_at=now)
        )


def import_legacy(
    store: Store,
    path: Path,
    root: Path | None = None,
    *,
    dry_run: bool = False,
    created_by: str | None = None,
) -> tuple[list[Change], list[str]]:
    """Register a front end's legacy sources: new ones are created, existing ones get
    only what the list owns (name, file, legacy id). With ``dry_run``, only report."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    entries = parse_legacy(text, str(path))
    store.ensure_ready()
    base = (root or path.parent).resolve()
    roots = store.settings.data_root_paths()

    def work(conn: Any) -> tuple[list[Change], list[str]]:
        plan = plan_import(entries, base, _sources_with_connections(conn), roots)
        changes = []
        for item in plan.items:
            if isinstance(item, Merge):
                _merge_legacy(conn, item)
                action = "updated" if item.details else "unchanged"
                changes.append(Change(item.source_id, action, item.details))
            else:
                change = save_source(conn, item.decl, store.box, created_by=created_by)
                changes.append(Change(change.source_id, change.action, item.details))
        return changes, plan.notes

    return _registry_change(store, work, dry_run=dry_run)


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


def reset_source(
    store: Store, source_id: str, *, target_table: str | None = None, reset_by: str
) -> dict[str, Any]:
    """Forget where a source's reads stopped, so its next run reads everything again.

    Removes the incremental cursor and the connector state of each mapping (or only of
    the one writing ``target_table``); rows already synced stay, and the next run upserts
    over them, so unchanged rows count as neither inserted nor updated. Refused while a
    run of the source is in progress (its next checkpoint would store the cursor again).
    An infolog event ``source_reset`` records who reset what, with the cursors removed.
    """
    from factorysync.engine.history import AlreadyRunning, _dead_here
    from factorysync.engine.runner import run_slot
    from factorysync.engine.state import reset_state
    from factorysync.errors import NotFoundError
    from factorysync.observability import infolog

    # The slot keeps runs of this process out meanwhile; the history, those of others.
    with run_slot(source_id), store.begin() as conn:
        source = get_source(conn, source_id)
        mappings = source["mappings"]
        if target_table is not None:
            mappings = [m for m in mappings if m["target_table"] == target_table]
            if not mappings:
                have = ", ".join(m["target_table"] for m in source["mappings"]) or "none"
                raise NotFoundError(
                    f"source {source_id!r} has no mapping to target table {target_table!r} "
                    f"(its mappings: {have})"
                )
        running = conn.execute(
            select(hist_t.c.id, hist_t.c.worker, hist_t.c.sync_started_at)
            .where(hist_t.c.source_id == source_id, hist_t.c.sync_status == "running")
            .order_by(hist_t.c.id.desc())
        ).first()
        if running is not None and not _dead_here(running.worker, running.sync_started_at):
            raise AlreadyRunning(
                f"source {source_id!r} is syncing (run {running.id} on {running.worker}): "
                "reset it when the run has ended"
            )
        reset = {m["target_table"]: reset_state(conn, source_id, m["id"]) for m in mappings}
        tables = ", ".join(reset)
        infolog.record(
            conn,
            "info",
            "source_reset",
            f"cursor and connector state of {tables} reset by {reset_by}: "
            "the next run reads the whole source again",
            source_id=source_id,
            details={"reset_by": reset_by, "mappings": reset},
        )
    return {"source_id": source_id, "reset_by": reset_by, "mappings": reset}


def run_record(store: Store, run_id: int) -> dict[str, Any] | None:
    """One run of the history, or None when there is no such run."""
    with store.connect() as conn:
        row = conn.execute(select(*HISTORY_ROW).where(hist_t.c.id == run_id)).mappings().first()
    return None if row is None else plain(row)


def history(store: Store, source_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    stmt = select(*HISTORY_ROW).order_by(hist_t.c.id.desc()).limit(limit)
    if source_id:
        stmt = stmt.where(hist_t.c.source_id == source_id)
    with store.connect() as conn:
        return [plain(r) for r in conn.execute(stmt).mappings()]


def quarantine_page(
    store: Store, source_id: str, *, limit: int | None = 100, offset: int = 0
) -> dict[str, Any]:
    """One page of the source's quarantine, most recently refused first, with the total.

    NotFoundError for a source that neither exists nor has entries (the entries of a
    removed source stay readable until they are cleared)."""
    from factorysync.engine import quality

    with store.connect() as conn:
        total = quality.count_entries(conn, source_id)
        if not total:
            get_source(conn, source_id)
        entries = quality.list_entries(conn, source_id, limit=limit, offset=offset)
    return {
        "source_id": source_id,
        "total": total,
        "limit": limit,
        "offset": offset,
        "entries": entries,
    }


def quarantined(store: Store, source_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The source's latest quarantine entries (the first page of :func:`quarantine_page`)."""
    entries: list[dict[str, Any]] = quarantine_page(store, source_id, limit=limit)["entries"]
    return entries


def quarantine_csv(entries: list[dict[str, Any]]) -> str:
    """Quarantine entries as CSV: one line each, reasons joined by "; ", the record as JSON."""
    import csv
    import io

    import orjson

    from factorysync.engine.quality import ENTRY_COLUMNS

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ENTRY_COLUMNS)
    for entry in entries:
        line = []
        for column in ENTRY_COLUMNS:
            value = entry[column]
            if column == "reasons":
                value = "; ".join(value)
            elif column == "record":
                value = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
            elif hasattr(value, "isoformat"):
                value = value.isoformat()
            elif isinstance(value, bool):
                value = str(value).lower()
            line.append("" if value is None else value)
        writer.writerow(line)
    return buffer.getvalue()


def replay_quarantine(store: Store, source_id: str, *, trigger: str = "manual") -> dict[str, Any]:
    """Load the source's quarantined records that now pass its mapping and rules
    (:func:`factorysync.engine.quality.replay`); the counts and the history run id."""
    from factorysync.engine import quality

    return quality.replay(store, source_id, trigger=trigger).as_dict()


def clear_quarantine(store: Store, source_id: str, *, cleared_by: str) -> dict[str, Any]:
    """Remove every quarantine entry of the source; logged (infolog) with who did it."""
    from factorysync.engine import quality
    from factorysync.observability import infolog

    with store.begin() as conn:
        removed = quality.clear_entries(conn, source_id)
        if not removed:
            get_source(conn, source_id)
        infolog.record(
            conn,
            "info",
            "quarantine.cleared",
            f"quarantine cleared by {cleared_by}: {removed} entries removed",
            source_id=source_id,
            details={"removed": removed, "by": cleared_by},
        )
    return {"source_id": source_id, "removed": removed}


# -- how sources are doing ---------------------------------------------------------------
# "The last minute" of a realtime or push source's live state.
LIVE_SPAN_S = 60.0
# Dead and stopped workers stay in `status` this long after their last heartbeat.
WORKERS_SHOWN_S = 3600.0


def _as_time(value: Any) -> datetime | None:
    """A timestamp from an aggregate, which SQLite returns as text (no column type)."""
    from factorysync.store.types import UTCDateTime

    if isinstance(value, str):
        return UTCDateTime().process_result_value(value, None)  # type: ignore[arg-type]
    return value


def live_states(
    conn: Any, sources: list[dict[str, Any]], now: datetime, window_s: float
) -> dict[str, dict[str, Any]]:
    """What subscription (MQTT, OPC UA) and push sources are doing, from the store alone.

    ``subscribed_since``: when the subscription last came up (a ``realtime.subscribed``
    event), while it is up. ``last_message_at`` is the commit of the latest data
    (``last_sync``, which every flush moves); ``records_last_minute`` is read from the
    history windows, a window reaching into the last minute counting with the share of
    its span that does (so an estimate).
    ``state``: ``receiving`` (data within the last minute), ``quiet`` (none since),
    ``waiting`` (none ever), ``error`` (the connection or the store failed: ``last_error``)
    or ``stopped`` (the source is inactive or in maintenance).
    """
    if not sources:
        return {}
    since = now - timedelta(seconds=LIVE_SPAN_S)
    # A window lasts window_s, and up to a flush longer: older ones end before `since`.
    earliest = since - timedelta(seconds=window_s + 30)
    counted: dict[str, float] = {}
    windows = conn.execute(
        select(
            hist_t.c.source_id,
            hist_t.c.sync_started_at,
            hist_t.c.sync_duration_ms,
            hist_t.c.records_processed,
        ).where(
            hist_t.c.source_id.in_([s["source_id"] for s in sources]),
            hist_t.c.sync_type == "realtime",
            hist_t.c.sync_started_at >= earliest,
        )
    )
    for sid, started, duration_ms, processed in windows:
        ended = started + timedelta(milliseconds=duration_ms or 0)
        if ended < since or not processed:
            continue
        span_s = (ended - started).total_seconds()
        share = 1.0 if span_s <= 0 else (ended - max(started, since)).total_seconds() / span_s
        counted[sid] = counted.get(sid, 0.0) + processed * min(max(share, 0.0), 1.0)
    subscribed = dict(
        conn.execute(
            select(infolog_t.c.source_id, func.max(infolog_t.c.created_at))
            .where(
                infolog_t.c.source_id.in_([s["source_id"] for s in sources]),
                infolog_t.c.event == SUBSCRIBED_EVENT,
            )
            .group_by(infolog_t.c.source_id)
        ).all()
    )
    states = {}
    for s in sources:
        last = s.get("last_sync")
        age = None if last is None else max((now - last).total_seconds(), 0.0)
        if s["status"] not in ("active", "error"):
            state = "stopped"
        elif s.get("last_error"):
            state = "error"
        elif age is None:
            state = "waiting"
        else:
            state = "receiving" if age <= LIVE_SPAN_S else "quiet"
        states[s["source_id"]] = {
            "state": state,
            "last_message_at": last,
            "last_message_age_s": None if age is None else round(age, 3),
            "records_last_minute": round(counted.get(s["source_id"], 0.0)),
            # When the subscription last came up (push sources have none).
            "subscribed_since": None
            if state in ("stopped", "error")
            else _as_time(subscribed.get(s["source_id"])),
        }
    return states


def describe_sources(
    conn: Any,
    rows: list[dict[str, Any]],
    settings: Settings,
    frequencies: dict[str, list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Add to registry rows how each source is doing, the same on every surface:

    ``cadence`` (when it runs, and what in its declaration says so), ``failing`` (active,
    and its last run failed: still ``active`` until the circuit opens),
    ``consecutive_failures`` and ``live`` (subscription and push sources, which have no
    next run: see :func:`live_states`; None for polled sources). ``frequencies``: the
    mappings' frequencies by source, when the rows carry no ``mappings``.
    """
    from factorysync.engine.schedule import cadence

    now = utcnow()
    cadences = {}
    for row in rows:
        mappings = row.get("mappings")
        if mappings is None and frequencies is not None:
            mappings = frequencies.get(row["source_id"], [])
        cadences[row["source_id"]] = cadence({**row, "mappings": mappings}, settings.timezone)
    live = live_states(
        conn,
        [r for r in rows if not cadences[r["source_id"]].polled],
        now,
        settings.realtime_window_s,
    )
    for row in rows:
        row["cadence"] = cadences[row["source_id"]].as_dict()
        row["failing"] = row["status"] == "active" and bool(row["error_count"])
        row["consecutive_failures"] = int(row["error_count"] or 0)
        row["live"] = live.get(row["source_id"])
    return rows


def sources(store: Store, status: str | None = None) -> list[dict[str, Any]]:
    """Registered sources with their cadence, health and live state (describe_sources)."""
    from factorysync.store.registry import mapping_frequencies

    with store.connect() as conn:
        rows = list_sources(conn, status=status)
        return describe_sources(conn, rows, store.settings, mapping_frequencies(conn))


def _scheduler_lag(conn: Any, now: datetime) -> float:
    """How late the most overdue source is that the scheduler should have started.

    Only polled sources count (subscription and push sources have no next run), and not
    those being run now (their ``next_sync`` moves when the run ends)."""
    from factorysync.engine.leases import batch_source

    running = select(hist_t.c.source_id).where(hist_t.c.sync_status == "running")
    oldest = conn.execute(
        select(func.min(reg_t.c.next_sync)).where(
            reg_t.c.status == "active",
            batch_source(),
            reg_t.c.source_id.not_in(running),
            or_(reg_t.c.lease_expires_at.is_(None), reg_t.c.lease_expires_at <= now),
        )
    ).scalar_one()
    oldest = _as_time(oldest)
    return max((now - oldest).total_seconds(), 0.0) if oldest else 0.0


def status_summary(store: Store) -> dict[str, Any]:
    """The state of the whole service, as ``status``, ``/api/status``, ``/metrics`` and
    the console overview show it.

    ``by_status`` counts the registry's four statuses; ``failing`` counts active sources
    whose last run failed (listed in ``failing_sources``); ``scheduler_lag_s`` is about
    polled sources only (:func:`_scheduler_lag`); ``realtime`` gives the live state of
    subscription and push sources; ``workers`` are the schedulers seen in the last hour,
    ``dead`` once they missed their heartbeat for a lease (PostgreSQL store).
    """
    from factorysync.engine.leases import batch_source, workers_summary

    now = utcnow()
    settings = store.settings
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
        lag = _scheduler_lag(conn, now)
        since = now - timedelta(hours=24)
        runs: dict[str, int] = {
            status: count
            for status, count in conn.execute(
                select(hist_t.c.sync_status, func.count())
                .where(hist_t.c.sync_started_at >= since)
                .group_by(hist_t.c.sync_status)
            ).all()
        }
        failing = [
            {
                "source_id": r.source_id,
                "consecutive_failures": int(r.error_count),
                "last_error": r.last_error,
                "last_sync": r.last_sync,
            }
            for r in conn.execute(
                select(
                    reg_t.c.source_id, reg_t.c.error_count, reg_t.c.last_error, reg_t.c.last_sync
                )
                .where(reg_t.c.status == "active", reg_t.c.error_count > 0)
                .order_by(reg_t.c.error_count.desc(), reg_t.c.source_id)
            )
        ]
        unpolled = [
            plain(r)
            for r in conn.execute(
                select(
                    reg_t.c.source_id,
                    reg_t.c.connection_type,
                    reg_t.c.status,
                    reg_t.c.last_sync,
                    reg_t.c.last_error,
                )
                .where(reg_t.c.status.in_(("active", "error")), ~batch_source())
                .order_by(reg_t.c.source_id)
            ).mappings()
        ]
        live = live_states(conn, unpolled, now, settings.realtime_window_s)
        workers = workers_summary(conn, settings.lease_s, WORKERS_SHOWN_S)
    return {
        "store": store.safe_url,
        "sources": sum(by_status.values()),
        "by_status": by_status,
        "failing": len(failing),
        "failing_sources": failing,
        "runs_in_progress": running,
        "scheduler_lag_s": round(lag, 3),
        "realtime": [
            {
                "source_id": r["source_id"],
                "connection_type": r["connection_type"],
                **live[r["source_id"]],
            }
            for r in unpolled
        ],
        "runs_last_24h": runs,
        "workers": [
            {
                "worker_id": w["worker_id"],
                "host": w["host"],
                "status": w["status"],
                "running": w["running"],
                "max_concurrent": w["max_concurrent"],
                "leases": w["leases"],
                "started_at": w["started_at"],
                "heartbeat_at": w["heartbeat_at"],
            }
            for w in workers
        ],
    }


# -- sources over the API ----------------------------------------------------------------
def secret_problems(decl: SourceDecl, settings: Settings, where: str) -> list[str]:
    """Problems of the connections' ``authentication_config`` (parse_source checks the
    rest). Checked here, before it is encrypted, by every way a source is saved."""
    return [
        f"{where}: connections[{i}].authentication_config.{problem}"
        for i, c in enumerate(decl.connections)
        if c.connection_type is not None
        for problem in validate_authentication_config(
            c.connection_type, c.authentication_config, settings
        )
    ]


def _declaration(raw: Any, settings: Settings) -> SourceDecl:
    decl, problems = parse_source(raw, "body")
    if decl is not None:
        problems += secret_problems(decl, settings, "body")
    if decl is None or problems:
        raise ConfigError(f"invalid source: {len(problems)} problem(s)", problems)
    return decl


def create_source(store: Store, raw: Any, *, created_by: str | None = None) -> Change:
    """Register a new source from a declaration (AlreadyExists if its id is taken)."""
    from factorysync.store.accounts import AlreadyExists

    decl = _declaration(raw, store.settings)
    with store.begin() as conn:
        taken = conn.execute(select(reg_t.c.id).where(reg_t.c.source_id == decl.source_id))
        if taken.first() is not None:
            raise AlreadyExists(f"source {decl.source_id!r} exists already (PATCH changes it)")
        return save_source(conn, decl, store.box, created_by=created_by)


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
        if not current.refresh_interval_declared:
            # Only what the frequency gives: a patched frequency sets it anew.
            del stored["refresh_interval"]
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
                        sent[key] = unmask(sent.get(key, before[key]), before[key], redact)
                merged["connections"].append(sent)
        return save_source(conn, _declaration(merged, store.settings), store.box)


def delete_source(store: Store, source_id: str) -> Change:
    with store.begin() as conn:
        return remove_source(conn, source_id)


def public_source(store: Store, source: dict[str, Any]) -> dict[str, Any]:
    """A stored source as shown to people: secrets masked, credentials in strings redacted,
    with its cadence, health and live state (:func:`describe_sources`)."""
    redact = Redactor()
    auths = []
    for c in source["connections"]:
        auth = c["authentication_config"]
        # An undecryptable config adds nothing here: mask_config hides its values.
        with contextlib.suppress(ConfigError):
            auth = store.box.decrypt_config(auth)
            redact.add(auth)
        auths.append(auth)
    shown = dict(source)
    shown["connections"] = [
        dict(
            c,
            connection_config=redact_config(c["connection_config"], redact),
            authentication_config=mask_config(auth),
        )
        for c, auth in zip(source["connections"], auths, strict=True)
    ]
    shown["last_error"] = redact(source["last_error"]) if source.get("last_error") else None
    with store.connect() as conn:
        describe_sources(conn, [shown], store.settings)
    return shown


def test_source(store: Store, source_id: str) -> dict[str, Any]:
    """Check every connection of a source (no data is read); messages are redacted."""
    from factorysync.connectors.registry import open_connection

    with store.connect() as conn:
        decl = declaration_of(get_source(conn, source_id), store.box)
    redact = Redactor()
    for c in decl.connections:
        redact.add(c.authentication_config)
    checks = []
    for c in sorted(decl.connections, key=lambda c: not c.is_primary):
        clock = time.perf_counter()
        try:
            check = open_connection(c, source_id, store.settings, redact=redact).check()
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
    from factorysync.store.accounts import ensure_first_admin

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
