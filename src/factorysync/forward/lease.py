"""One publisher per plant store: the lease that says which process sends the outbox.

Two processes may be told to publish the same store: ``factorysync run`` with
FACTORYSYNC_FORWARD_URL set beside a ``factorysync forward`` unit, two ``forward`` units,
or a ``forward --drain`` while the service runs. Both would send every entry (JetStream
drops the second copy by its ``Nats-Msg-Id``, so the data stays right, but the uplink
carries everything twice and the two race for the same entries).

So a publisher holds a lease, one row of ``data_source_sync_state`` (source ``_forward``,
key ``publisher_lease``) that names it and whose ``updated_at`` it renews while it runs.
Another publisher finds the lease held and stands by: it sends nothing, and ``status``
names the holder. It takes over at its next try (every few seconds) when the holder
releases the lease (a clean stop), or stops renewing it for ``lease_s`` (a host gone),
or is a process of this host that is gone (a crash: a restarted service takes over at
its first try). The lease is taken in a write transaction, with the row locked on
PostgreSQL (SQLite's write lock is taken up front), so two publishers never both hold
it. The holder's renewals are stamped with its own clock: hosts that share a store keep
their clocks in step (NTP), as the workers' leases need too.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from factorysync.store.db import write_transaction
from factorysync.store.processes import dead_here
from factorysync.store.schema import data_source_sync_state as state_t
from factorysync.store.store import Store
from factorysync.store.types import utcnow

LEASE_SOURCE = "_forward"  # no source id starts with "_"
LEASE_KEY = "publisher_lease"
LEASE_S = 30.0  # a holder silent this long has stopped: another publisher takes over
RENEW_S = 5.0  # how often the holder renews


def _where() -> tuple[Any, ...]:
    return (
        state_t.c.source_id == LEASE_SOURCE,
        state_t.c.mapping_id == 0,
        state_t.c.state_key == LEASE_KEY,
    )


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=utcnow().tzinfo)


class PublisherLease:
    """This process's claim on the outbox of ``store``; ``owner`` is ``host:pid:random``."""

    def __init__(self, store: Store, *, lease_s: float = LEASE_S) -> None:
        self.store = store
        self.lease_s = lease_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def acquire(self) -> str | None:
        """Take or renew the lease: None when this process holds it now, else the holder
        that does (``host:pid:…``)."""
        with self.store.connect() as conn, write_transaction(conn):
            return self._acquire(conn)

    def _acquire(self, conn: Connection) -> str | None:
        now = utcnow()
        mine = {"owner": self.owner, "since": now.isoformat()}
        row = conn.execute(
            select(state_t.c.state, state_t.c.updated_at).where(*_where()).with_for_update()
        ).first()
        if row is None:
            try:
                with conn.begin_nested():  # another publisher may insert it first
                    conn.execute(
                        insert(state_t).values(
                            source_id=LEASE_SOURCE,
                            mapping_id=0,
                            state_key=LEASE_KEY,
                            state=mine,
                            run_id=0,
                            updated_at=now,
                        )
                    )
            except IntegrityError:  # it did: the lease is its own
                found = conn.execute(select(state_t.c.state).where(*_where())).scalar()
                held = found if isinstance(found, dict) else {}
                return str(held.get("owner") or "another publisher")
            return None
        held = row.state if isinstance(row.state, dict) else {}
        holder = str(held.get("owner") or "")
        # Run out, or its process is gone from this host (a restart after a crash takes
        # over at once, not lease_s later).
        stale = _aware(row.updated_at) < now - timedelta(seconds=self.lease_s) or _gone(held)
        if holder and holder != self.owner and not stale:
            return holder
        if holder == self.owner:
            mine["since"] = str(held.get("since") or mine["since"])
        conn.execute(update(state_t).where(*_where()).values(state=mine, updated_at=now))
        return None

    def release(self) -> None:
        """Give the lease up (a clean stop), if this process holds it: a publisher
        standing by takes over at its next try, not ``lease_s`` later."""
        with self.store.connect() as conn, write_transaction(conn):
            row = conn.execute(select(state_t.c.state).where(*_where())).first()
            held = row.state if row is not None and isinstance(row.state, dict) else {}
            if held.get("owner") == self.owner:
                conn.execute(delete(state_t).where(*_where()))


def lease_holder(store: Store, lease_s: float = LEASE_S) -> str | None:
    """The publisher that holds the lease now (None: none does, or its lease ran out)."""
    with store.connect() as conn:
        row = conn.execute(select(state_t.c.state, state_t.c.updated_at).where(*_where())).first()
    if row is None or not isinstance(row.state, dict):
        return None
    owner = str(row.state.get("owner") or "")
    if _aware(row.updated_at) < utcnow() - timedelta(seconds=lease_s) or _gone(row.state):
        return None
    return owner or None


def _gone(held: dict[str, Any]) -> bool:
    """Whether the lease's holder was a process of this host that is gone: also one with
    this process's id that took the lease before this process started (a restarted
    container's service often gets the id it had)."""
    since = held.get("since")
    try:
        started = datetime.fromisoformat(since) if isinstance(since, str) else None
    except ValueError:
        started = None
    return dead_here(str(held.get("owner") or ""), started)
