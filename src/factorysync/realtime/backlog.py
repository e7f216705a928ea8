"""A writer's backlog: its source's messages in the process spool, and how they reach the
store exactly once and in order.

While the store takes writes, a writer commits there and acknowledges after the commit;
the spool is not touched. When a write fails because the store cannot be reached, the
writer hands the messages to the spool (:mod:`factorysync.realtime.spool`), acknowledges
them once that commit returned, and from then on puts every new message of the source
behind them: a source with a backlog is written in the order its messages arrived.

Draining. The writer keeps trying the store (with back-off); once a write succeeds it
moves the backlog over, oldest first, in batches through its usual flush. Each flush also
stores the backlog's *mark* — the highest sequence number it wrote, under the key
``spool:<spool id>`` of the source's ``data_source_sync_state`` (mapping 0) — in the
same transaction as the rows; after the commit the messages up to the mark are removed
from the spool. When the backlog is empty, new messages go straight to the store again.

Exactly once. A crash before the commit leaves the messages in the spool, and they are
written by the next start. A crash after the commit but before the removal leaves
messages at or below the stored mark, and a writer that opens removes those without
writing them (:meth:`Backlog.open`). So every spooled message is written once, and after
the ones that came before it. A message is acknowledged after the spool's commit: a crash
in between has the sender deliver it again (an MQTT redelivery, a push sent again), which
the target merges by key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from factorysync.realtime.spool import Message, Spool, Spooled
from factorysync.realtime.spools import ProcessSpool

MARK_PREFIX = "spool:"
# How long a live writer waits for a drain of its source to finish its batch and stop.
HANDOVER_WAIT_S = 120.0


class Backlog:
    """One writer's part of the process spool (see the module docstring).

    ``waiting``: the spool holds messages of this source, so new ones go behind them.
    Only the writer's thread changes it; others may read it."""

    def __init__(self, spools: ProcessSpool, source_id: str) -> None:
        self.spools = spools
        self.source_id = source_id
        self.spool: Spool | None = None
        self.waiting = False
        self._attached = False

    # -- lifecycle -------------------------------------------------------------------
    def attach(self) -> None:
        """A live writer starts: it takes its source's backlog over from a drain."""
        self.spools.attach(self.source_id, HANDOVER_WAIT_S)
        self._attached = True

    def detach(self) -> None:
        if self._attached:
            self._attached = False
            self.spools.detach(self.source_id)

    def open(self, conn: Connection) -> None:
        """Find what the spool holds of the source, dropping what the store already has
        (at or below the stored mark), in the caller's transaction."""
        self.spool = self.spools.get(create=False)
        if self.spool is None or not self.spool.depth(self.source_id):
            return
        from factorysync.engine.state import load_state

        mark = load_state(conn, self.source_id, 0, self.mark_key)
        if isinstance(mark, dict) and isinstance(mark.get("seq"), int):
            self.spool.remove_through(self.source_id, mark["seq"])
        self.waiting = self.spool.depth(self.source_id) > 0

    @property
    def mark_key(self) -> str:
        spool = self.spool
        assert spool is not None
        return f"{MARK_PREFIX}{spool.spool_id}"

    # -- messages ----------------------------------------------------------------------
    def hold(self, messages: Sequence[Message]) -> int:
        """Put the leading ``messages`` into the spool behind the backlog; how many
        fit (the spool is full when fewer)."""
        if self.spool is None:
            self.spool = self.spools.get(create=True)
            assert self.spool is not None
        kept = self.spool.append(self.source_id, messages)
        if kept:
            self.waiting = True
        return kept

    def take(self, limit: int) -> list[Spooled]:
        """The oldest ``limit`` messages of the backlog."""
        if self.spool is None:
            return []
        found = self.spool.read(self.source_id, limit)
        if not found:
            self.waiting = False
        return found

    def mark(self, conn: Connection, seq: int, run_id: int) -> None:
        """Store the backlog's mark (in the transaction writing the messages up to it)."""
        from factorysync.engine.state import save_state

        save_state(conn, self.source_id, 0, self.mark_key, {"seq": seq}, run_id)

    def written(self, seq: int) -> None:
        """The messages up to ``seq`` are committed to the store: out of the spool."""
        assert self.spool is not None
        self.spool.remove_through(self.source_id, seq)
        self.waiting = self.spool.depth(self.source_id) > 0

    def depth(self) -> int:
        return 0 if self.spool is None else self.spool.depth(self.source_id)

    def latest_state(self) -> dict[str, Any] | None:
        """The stream state of the newest spooled message that carries one: a stream
        started while the backlog waits resumes from it, not from the store's."""
        if self.spool is None or not self.waiting:
            return None
        return self.spool.latest_state(self.source_id)
