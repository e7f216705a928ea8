"""Run bookkeeping: history rows, registry counters, the circuit, interrupted runs."""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from factorysync.alerts import rules as alert_rules
from factorysync.engine.schedule import next_due
from factorysync.errors import FactorySyncError
from factorysync.observability import infolog
from factorysync.store.registry import data_changed
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.types import utcnow

WORKER = f"{socket.gethostname()}:{os.getpid()}"
CIRCUIT_FAILURES = 5  # consecutive failed runs that put a source in status 'error'
MAX_BACKOFF_S = 3600


class AlreadyRunning(FactorySyncError):
    """A run of this source is in progress."""


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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_here(worker: str | None) -> bool:
    host, _, pid = (worker or "").rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


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
        if lease_owner is None and not _dead_here(row.worker):
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
    # Alert rules see the run's outcome in the same transaction (never failing it).
    alert_rules.after_run(conn, result)


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


def finish_failed(conn: Connection, source: dict[str, Any], result: RunResult) -> None:
    now = utcnow()
    sid = source["source_id"]
    # Batches an incremental run already committed stay: the run is then 'partial'.
    committed = result.records_inserted or result.records_updated
    result.sync_status = "partial" if committed else "failed"
    _close_run(
        conn,
        result,
        now,
        sync_duration_ms=result.sync_duration_ms,
        error_message=result.error_message,
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


def mark_interrupted(conn: Connection, run_ids: list[int] | None = None) -> int:
    """Mark runs left 'running' by a dead process as failed ('interrupted')."""
    stmt = update(hist_t).where(hist_t.c.sync_status == "running")
    if run_ids is not None:
        stmt = stmt.where(hist_t.c.id.in_(run_ids))
    return conn.execute(
        stmt.values(
            sync_status="failed",
            error_message="interrupted: the process running this sync stopped",
            sync_completed_at=utcnow(),
        )
    ).rowcount


def recover_interrupted(conn: Connection) -> list[str]:
    """Fail the runs of dead processes on this host; their sources become due now."""
    rows = conn.execute(
        select(hist_t.c.id, hist_t.c.worker, hist_t.c.source_id).where(
            hist_t.c.sync_status == "running"
        )
    ).all()
    dead = [r for r in rows if _dead_here(r.worker)]
    if dead:
        mark_interrupted(conn, [r.id for r in dead])
        sources = sorted({r.source_id for r in dead})
        conn.execute(update(reg_t).where(reg_t.c.source_id.in_(sources)).values(next_sync=utcnow()))
        for sid in sources:
            infolog.record(
                conn,
                "warning",
                "sync.interrupted",
                "a run was interrupted (process stopped); rescheduled",
                source_id=sid,
            )
        return sources
    return []
