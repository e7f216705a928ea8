"""Leases: how several workers share one PostgreSQL store without running a source twice.

A worker claims due sources with one statement::

    UPDATE data_source_registry SET lease_owner = :me, lease_expires_at = now() + :ttl
    WHERE id IN (SELECT id … due and unleased (or lease expired) …
                 ORDER BY priority, next_sync LIMIT :n FOR UPDATE SKIP LOCKED)
    RETURNING source_id, next_sync

Row locks make the claim atomic: two workers never get the same source, and a locked
row is skipped rather than waited for. The holder renews its leases while the runs go
on (heartbeat); a worker that dies stops renewing, and after ``lease_s`` its sources are
due for the others, which resume them from their last committed checkpoint, and the
next heartbeat of a live worker marks it ``dead`` in the ``workers`` table
(:func:`mark_dead`). Releasing happens when the run has committed its result. This is
the pattern of Airflow's high-availability scheduler; no protocol of our own runs
between workers.

Realtime sources (subscriptions, file watches) are held the same way, for as long as the
worker runs them (``claim_held``/``renew_held``): each worker takes at most its fair share
(sources ÷ live workers, rounded up), so they spread over the workers, and a dead
worker's subscriptions move to the others once its leases expire.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update

from factorysync.errors import ConfigError
from factorysync.store.registry import is_due
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import workers as workers_t
from factorysync.store.types import utcnow

WORKER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def new_worker_id(name: str | None = None) -> str:
    """``host:pid:name`` (a random name when none is given)."""
    if name is not None and not WORKER_NAME.match(name):
        raise ConfigError(
            f"worker name {name!r}: use 1-64 letters, digits, '_', '.', '-' (e.g. line-a-1)"
        )
    return f"{socket.gethostname()}:{os.getpid()}:{name or uuid.uuid4().hex[:6]}"


def batch_source() -> Any:
    """Sources the scheduler syncs: realtime ones (MQTT, OPC UA) run in the realtime service,
    push sources are written by the API."""
    from factorysync.connectors.registry import types_with

    kind = reg_t.c.connection_type
    return or_(kind.is_(None), kind.not_in(types_with("streams") + types_with("pushes")))


def claim(conn: Connection, owner: str, limit: int, lease_s: float) -> list[tuple[str, datetime]]:
    """Claim up to ``limit`` due sources for ``owner`` (PostgreSQL, in the caller's txn)."""
    if limit <= 0:
        return []
    now = utcnow()
    free = or_(reg_t.c.lease_owner.is_(None), reg_t.c.lease_expires_at < now)
    due = (
        select(reg_t.c.id)
        .where(reg_t.c.status.in_(("active", "error")), is_due(now), free)
        .where(batch_source())
        .order_by(reg_t.c.priority, reg_t.c.next_sync)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    rows = conn.execute(
        update(reg_t)
        .where(reg_t.c.id.in_(due))
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s))
        .returning(reg_t.c.source_id, reg_t.c.next_sync, reg_t.c.priority)
    ).all()
    ordered = sorted(rows, key=lambda r: (r.priority, r.next_sync))
    return [(r.source_id, r.next_sync) for r in ordered]


def claim_held(
    conn: Connection, owner: str, source_ids: list[str], limit: int, lease_s: float
) -> set[str]:
    """Lease up to ``limit`` of ``source_ids`` that no live lease holds (or ``owner``
    holds already) for ``owner``; long-held sources such as realtime subscriptions.
    Returns the ids claimed (PostgreSQL, in the caller's transaction)."""
    if limit <= 0 or not source_ids:
        return set()
    now = utcnow()
    free = or_(
        reg_t.c.lease_owner.is_(None),
        reg_t.c.lease_expires_at < now,
        reg_t.c.lease_owner == owner,
    )
    wanted = (
        select(reg_t.c.id)
        .where(reg_t.c.source_id.in_(source_ids), free)
        .order_by(reg_t.c.priority, reg_t.c.source_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    rows = conn.execute(
        update(reg_t)
        .where(reg_t.c.id.in_(wanted))
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s))
        .returning(reg_t.c.source_id)
    ).all()
    return {r.source_id for r in rows}


def renew_held(conn: Connection, owner: str, source_ids: list[str], lease_s: float) -> set[str]:
    """Renew ``owner``'s leases of ``source_ids``; returns the ones it still holds."""
    if not source_ids:
        return set()
    rows = conn.execute(
        update(reg_t)
        .where(reg_t.c.lease_owner == owner, reg_t.c.source_id.in_(source_ids))
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
        .returning(reg_t.c.source_id)
    ).all()
    return {r.source_id for r in rows}


def alive_workers(conn: Connection, within_s: float) -> int:
    """Workers whose heartbeat is at most ``within_s`` old (at least 1: the caller)."""
    since = utcnow() - timedelta(seconds=within_s)
    count = conn.execute(
        select(func.count()).where(workers_t.c.heartbeat_at >= since, workers_t.c.status == "alive")
    ).scalar_one()
    return max(int(count), 1)


def renew(conn: Connection, owner: str, source_ids: list[str], lease_s: float) -> int:
    if not source_ids:
        return 0
    return conn.execute(
        update(reg_t)
        .where(reg_t.c.lease_owner == owner, reg_t.c.source_id.in_(source_ids))
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
    ).rowcount


def release(conn: Connection, owner: str, source_id: str) -> None:
    conn.execute(
        update(reg_t)
        .where(reg_t.c.lease_owner == owner, reg_t.c.source_id == source_id)
        .values(lease_owner=None, lease_expires_at=None)
    )


def held_by_other(conn: Connection, source_id: str, owner: str | None) -> bool:
    """Whether a live lease of another worker holds this source."""
    row = conn.execute(
        select(reg_t.c.lease_owner, reg_t.c.lease_expires_at).where(reg_t.c.source_id == source_id)
    ).first()
    if row is None or row.lease_owner in (None, owner):
        return False
    return bool(row.lease_expires_at and row.lease_expires_at > utcnow())


def heartbeat(
    conn: Connection, worker_id: str, max_concurrent: int, running: int, status: str = "alive"
) -> None:
    values = {
        "heartbeat_at": utcnow(),
        "running": running,
        "status": status,
        "max_concurrent": max_concurrent,
    }
    found = conn.execute(
        update(workers_t).where(workers_t.c.worker_id == worker_id).values(**values)
    ).rowcount
    if not found:
        host, pid, _ = worker_id.split(":")
        conn.execute(
            insert(workers_t).values(worker_id=worker_id, host=host, pid=int(pid), **values)
        )


def mark_dead(conn: Connection, lease_s: float) -> list[str]:
    """Mark ``dead`` the workers that have not sent a heartbeat for ``lease_s`` (their
    leases have run out, so others have taken their sources over); returns their ids.
    A worker that was only stalled marks itself ``alive`` again at its next heartbeat."""
    cutoff = utcnow() - timedelta(seconds=lease_s)
    rows = conn.execute(
        update(workers_t)
        .where(workers_t.c.status == "alive", workers_t.c.heartbeat_at < cutoff)
        .values(status="dead")
        .returning(workers_t.c.worker_id)
    ).all()
    return sorted(r.worker_id for r in rows)


def workers_summary(
    conn: Connection, lease_s: float, shown_s: float = 3600
) -> list[dict[str, Any]]:
    """Workers with a heartbeat in the last ``shown_s``, with the leases each holds.

    ``status``: ``alive``, ``stopped`` (it shut down) or ``dead`` (no heartbeat for
    ``lease_s``: shown so even before a live worker's beat has marked it in the table).
    """
    now = utcnow()
    held: dict[str, int] = dict(
        conn.execute(
            select(reg_t.c.lease_owner, func.count())
            .where(reg_t.c.lease_owner.is_not(None), reg_t.c.lease_expires_at > now)
            .group_by(reg_t.c.lease_owner)
        ).all()
    )
    rows = conn.execute(
        select(workers_t)
        .where(workers_t.c.heartbeat_at >= now - timedelta(seconds=shown_s))
        .order_by(workers_t.c.worker_id)
    ).mappings()
    silent = now - timedelta(seconds=lease_s)
    found = []
    for r in rows:
        worker = {str(k): v for k, v in r.items()}
        if worker["status"] == "alive" and worker["heartbeat_at"] < silent:
            worker["status"] = "dead"
        worker["leases"] = held.get(worker["worker_id"], 0)
        found.append(worker)
    return found


def forget_worker(conn: Connection, worker_id: str) -> None:
    conn.execute(delete(workers_t).where(workers_t.c.worker_id == worker_id))
