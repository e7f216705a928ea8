"""Run bookkeeping: history rows, registry counters, the circuit, interrupted runs.

Two rules stop a source from being run again and again:

* the circuit: after ``CIRCUIT_FAILURES`` failed runs in a row the source's status is
  ``error``; it is still retried, on a back-off that doubles up to ``MAX_BACKOFF_S``;
* the crash loop: after ``CRASH_LIMIT`` runs in a row that ended in a crash — the process
  running them died (``interrupted``), or a parser child process was stopped by a resource
  limit or a signal (:class:`~factorysync.connectors.file.workbook_process.ReaderStopped`) —
  the source's status is ``error`` and it has no ``next_sync``: it is not run
  automatically until an operator runs it by hand or sets it active. Otherwise a file
  that kills its reader, or the process, would do so on every schedule and every restart.

A successful run resets both counts; an ordinary failure also ends a run of crashes.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from factorysync.connectors.file.workbook_process import ReaderStopped
from factorysync.engine.schedule import next_due
from factorysync.errors import FactorySyncError
from factorysync.observability import infolog
from factorysync.store.processes import dead_here
from factorysync.store.registry import data_changed
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.types import utcnow

WORKER = f"{socket.gethostname()}:{os.getpid()}"
CIRCUIT_FAILURES = 5  # consecutive failed runs that put a source in status 'error'
MAX_BACKOFF_S = 3600
CRASH_LIMIT = 2  # consecutive crashed runs after which a source is no longer scheduled
INTERRUPTED = "interrupted: the process running this sync stopped"
# Realtime windows are open whenever the service runs, so a stop interrupts them
# whatever their source does: they never count as crashes of their source.
REALTIME = "realtime"


class AlreadyRunning(FactorySyncError):
    """A run of this source is in progress."""


class NotPolled(FactorySyncError):
    """A run was asked of a source whose rows arrive by subscription or push, not by runs."""


@dataclass
class RunResult:
    run_id: int
    source_id: str
    sync_type: str
    sync_status: str
    records_processed: int = 0
    records_inserted: int = 0
    records_updated: int = 0
    records_deleted: int = 0
    records_rejected: int = 0
    sync_duration_ms: int = 0
    error_message: str | None = None
    connection_name: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def start_run(
    conn: Connection,
    source_id: str,
    sync_type: str,
    trigger: str,
    started: datetime,
    due: datetime | None,
    lease_owner: str | None = None,
    *,
    alongside: bool = False,
) -> int:
    """Insert the 'running' history row, refusing when another live run holds the source.

    ``lease_owner``: the caller holds the source's lease, so a 'running' row left by any
    other worker belongs to one whose lease expired (it died): that run is interrupted.
    ``alongside``: runs of several workers at once are the design (the windows of an MQTT
    shared subscription): nothing is refused or interrupted.
    """
    from factorysync.engine.leases import held_by_other

    if not alongside and held_by_other(conn, source_id, lease_owner):
        raise AlreadyRunning(f"source {source_id!r} is leased by another worker")
    row = None
    if not alongside:
        row = conn.execute(
            select(hist_t.c.id, hist_t.c.worker, hist_t.c.sync_started_at)
            .where(hist_t.c.source_id == source_id, hist_t.c.sync_status == "running")
            .order_by(hist_t.c.id.desc())
        ).first()
    if row is not None:
        if lease_owner is None and not dead_here(row.worker, row.sync_started_at):
            raise AlreadyRunning(
                f"source {source_id!r} is already syncing (run {row.id} on {row.worker}, "
                f"started {row.sync_started_at:%Y-%m-%d %H:%M:%S} UTC)"
            )
        mark_interrupted(conn, [row.id])
    details = None
    if due is not None:
        details = {"due": due.isoformat(), "lag_ms": int((started - due).total_seconds() * 1000)}
    return int(
        conn.execute(
            insert(hist_t)
            .values(
                source_id=source_id,
                sync_type=sync_type,
                sync_status="running",
                trigger=trigger,
                sync_started_at=started,
                worker=lease_owner or WORKER,
                details=details,
            )
            .returning(hist_t.c.id)
        ).scalar_one()
    )


def _close_run(conn: Connection, result: RunResult, now: datetime, **values: Any) -> None:
    """Write a run's outcome and counts into its history row."""
    conn.execute(
        update(hist_t)
        .where(hist_t.c.id == result.run_id)
        .values(
            sync_status=result.sync_status,
            connection_name=result.connection_name,
            records_processed=result.records_processed,
            records_inserted=result.records_inserted,
            records_updated=result.records_updated,
            records_deleted=result.records_deleted,
            records_rejected=result.records_rejected,
            sync_completed_at=now,
            **values,
        )
    )
    if result.records_inserted or result.records_updated or result.records_deleted:
        data_changed(conn, result.source_id)


def finish_success(
    conn: Connection, source: dict[str, Any], result: RunResult, started: datetime
) -> None:
    now = utcnow()
    details = dict(result.details)
    previous = conn.execute(
        select(hist_t.c.details).where(hist_t.c.id == result.run_id)
    ).scalar_one()
    details = {**(previous or {}), **details}
    _close_run(
        conn,
        result,
        now,
        sync_duration_ms=int((now - started).total_seconds() * 1000),
        details=details or None,
    )
    status = conn.execute(
        select(reg_t.c.status).where(reg_t.c.source_id == source["source_id"])
    ).scalar_one()
    conn.execute(
        update(reg_t)
        .where(reg_t.c.source_id == source["source_id"])
        .values(
            last_sync=now,
            next_sync=next_due(source, started),
            error_count=0,
            last_error=None,
            status="active" if status == "error" else status,
        )
    )
    failover = details.get("failover")
    message = (
        f"sync {result.sync_type} succeeded: {result.records_processed} processed, "
        f"{result.records_inserted} inserted, {result.records_updated} updated, "
        f"{result.records_deleted} deleted, {result.records_rejected} rejected"
    )
    if failover:
        message += f" (served by {result.connection_name!r} after failover)"
    if status == "error":
        message += "; source recovered, circuit closed"
    infolog.record(
        conn,
        "warning" if failover else "info",
        "sync.success",
        message,
        source_id=source["source_id"],
        run_id=result.run_id,
        details={"connection": result.connection_name},
    )


def finish_failed(
    conn: Connection,
    source: dict[str, Any],
    result: RunResult,
    error: BaseException | None = None,
) -> None:
    """Close a failed run: counters, back-off, the circuit and the crash-loop rule.

    ``error`` is the exception that ended the run; by default the one being handled (the
    runner calls this from its ``except`` clause). A :class:`ReaderStopped` makes the run
    count as a crash.
    """
    now = utcnow()
    sid = source["source_id"]
    if error is None:
        error = sys.exc_info()[1]
    crashed = isinstance(error, ReaderStopped)
    # Batches an incremental run already committed stay: the run is then 'partial'.
    committed = result.records_inserted or result.records_updated
    result.sync_status = "partial" if committed else "failed"
    extra: dict[str, Any] = {}
    if crashed:
        previous = conn.execute(
            select(hist_t.c.details).where(hist_t.c.id == result.run_id)
        ).scalar_one()
        extra["details"] = {**(previous or {}), "crash": "parser"}
    _close_run(
        conn,
        result,
        now,
        sync_duration_ms=result.sync_duration_ms,
        error_message=result.error_message,
        **extra,
    )
    errors = (
        conn.execute(select(reg_t.c.error_count).where(reg_t.c.source_id == sid)).scalar_one() + 1
    )
    # Back off: the retry interval doubles with each consecutive failure (≤ 1 h).
    interval = (next_due(source, now) - now).total_seconds()
    delay = min(max(interval, 5) * 2 ** max(errors - 1, 0), MAX_BACKOFF_S)
    values: dict[str, Any] = {
        "error_count": errors,
        "last_error": result.error_message,
        "next_sync": now + timedelta(seconds=delay),
    }
    opened = errors >= CIRCUIT_FAILURES
    if opened:
        values["status"] = "error"
    streak = crash_streak(conn, sid) if crashed and result.sync_type != REALTIME else 0
    conn.execute(
        update(reg_t)
        .where(reg_t.c.source_id == sid, reg_t.c.status.in_(("active", "error")))
        .values(**values)
    )
    infolog.record(
        conn,
        "error",
        "sync.failed",
        f"sync failed: {result.error_message}"
        + (f" ({errors} consecutive failures: circuit open)" if opened else ""),
        source_id=sid,
        run_id=result.run_id,
        details={"error_count": errors, "retry_in_s": round(delay)},
    )
    if streak >= CRASH_LIMIT:
        stop_crash_loop(conn, sid, result.error_message or "a parser was stopped", streak)


def _crashed(error_message: str | None, details: dict[str, Any] | None) -> bool:
    return error_message == INTERRUPTED or bool((details or {}).get("crash"))


def crash_streak(conn: Connection, source_id: str) -> int:
    """How many of the source's latest finished runs in a row ended in a crash (the
    process died, or a parser child was stopped), up to ``CRASH_LIMIT``."""
    rows = conn.execute(
        select(hist_t.c.error_message, hist_t.c.details)
        .where(
            hist_t.c.source_id == source_id,
            hist_t.c.sync_status != "running",
            hist_t.c.sync_type != REALTIME,
        )
        .order_by(hist_t.c.id.desc())
        .limit(CRASH_LIMIT)
    ).all()
    streak = 0
    for row in rows:
        if not _crashed(row.error_message, row.details):
            break
        streak += 1
    return streak


def stop_crash_loop(conn: Connection, source_id: str, cause: str, crashes: int) -> None:
    """Put a source whose runs keep crashing in status 'error', off the schedule."""
    reason = (
        f"{cause}; {crashes} runs in a row ended in a crash, so the source is not run "
        "automatically: fix it, then sync it by hand or set it active"
    )
    conn.execute(
        update(reg_t)
        .where(reg_t.c.source_id == source_id, reg_t.c.status.in_(("active", "error")))
        .values(status="error", next_sync=None, last_error=reason)
    )
    infolog.record(
        conn,
        "error",
        "sync.crash_loop",
        f"crash loop stopped: {reason}",
        source_id=source_id,
        details={"crashed_runs": crashes, "cause": cause},
    )


def _interrupt(conn: Connection, run_ids: list[int] | None) -> list[Row[Any]]:
    """Fail runs still 'running' as interrupted; (source_id, sync_type) of each one this
    call changed (a run another transaction marked first is not among them)."""
    stmt = update(hist_t).where(hist_t.c.sync_status == "running")
    if run_ids is not None:
        stmt = stmt.where(hist_t.c.id.in_(run_ids))
    return list(
        conn.execute(
            stmt.values(
                sync_status="failed", error_message=INTERRUPTED, sync_completed_at=utcnow()
            ).returning(hist_t.c.source_id, hist_t.c.sync_type)
        ).all()
    )


def mark_interrupted(conn: Connection, run_ids: list[int] | None = None) -> int:
    """Mark runs left 'running' by a dead process as failed ('interrupted')."""
    return len(_interrupt(conn, run_ids))


def recover_interrupted(conn: Connection) -> list[str]:
    """Fail the runs of dead processes on this host; returns the sources made due now.

    A source whose last ``CRASH_LIMIT`` runs were all interrupted (or otherwise crashed)
    is not rescheduled: it goes to status 'error' without a next sync (the crash loop).
    """
    rows = conn.execute(
        select(hist_t.c.id, hist_t.c.worker, hist_t.c.sync_started_at).where(
            hist_t.c.sync_status == "running"
        )
    ).all()
    ids = [r.id for r in rows if dead_here(r.worker, r.sync_started_at)]
    if not ids:
        return []
    # Only the runs this call marked count: two recoveries at once (the scheduler's and
    # the realtime service's) handle each run once.
    dead = _interrupt(conn, ids)
    rescheduled = []
    for sid in sorted({r.source_id for r in dead}):
        batch = any(r.sync_type != REALTIME for r in dead if r.source_id == sid)
        crashes = crash_streak(conn, sid) if batch else 0
        if crashes >= CRASH_LIMIT:
            stop_crash_loop(conn, sid, INTERRUPTED, crashes)
            continue
        rescheduled.append(sid)
        infolog.record(
            conn,
            "warning",
            "sync.interrupted",
            "a run was interrupted (process stopped); rescheduled",
            source_id=sid,
        )
    if rescheduled:
        conn.execute(
            update(reg_t).where(reg_t.c.source_id.in_(rescheduled)).values(next_sync=utcnow())
        )
    return rescheduled
