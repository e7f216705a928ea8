"""One flush of a realtime source: a batch of messages written in one transaction.

The records go through each active mapping's record pipeline (:class:`Target`), the rows
are merged into the target tables by key, rejects are quarantined, the stream's state
(not while a reset of the source waits for its stream to restart: see
:mod:`factorysync.engine.state`) and the spool mark of the newest message are saved, and
the history window's counts grow, all in the same transaction. :func:`flush_or_isolate`
finds the one message of a batch whose values the store itself refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from factorysync.engine.quarantine import store_rejects
from factorysync.engine.state import CONNECTOR_KEY, SOURCE_WIDE, reset_pending, save_state
from factorysync.realtime.backlog import Backlog
from factorysync.realtime.incoming import Incoming
from factorysync.realtime.target import Target
from factorysync.realtime.window import HistoryWindow
from factorysync.store.db import describe_db_error, write_transaction
from factorysync.store.targets import MergeCounts
from factorysync.store.types import utcnow


@dataclass
class Written:
    """What a committed flush wrote."""

    run_id: int
    # (target table, rows) merged, for live subscribers.
    published: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    marked: int | None = None  # the highest spool sequence number written


def write_items(
    conn: Connection,
    source_id: str,
    targets: list[Target],
    window: HistoryWindow,
    backlog: Backlog,
    items: list[Incoming],
    gaps: list[dict[str, Any]],
) -> Written:
    """Write ``items`` in one transaction on ``conn`` and commit; ``gaps`` (time ranges
    the source could not be read in) go into the window's history row.

    The caller rolls back the window (and returns the gaps) when this raises."""
    for item in items:
        item.rejections.clear()
    with write_transaction(conn):
        done = Written(window.begin(conn))
        if gaps and window.result is not None:
            window.result.details.setdefault("gaps", []).extend(gaps)
        now = utcnow()
        quarantine: list[dict[str, Any]] = []
        rejected = 0
        counts = MergeCounts()
        processed = sum(max(len(i.records), 1) for i in items)
        for target in targets:
            if target.table.contract == "freeze":
                # The columns as they are now (the first flush makes the table).
                target.table.reload()
                target.mapper.freeze(target.table.frozen_columns())
            rows, hashes = target.rows(items, done.run_id)
            rejected += target.quarantine.refused
            quarantine += target.quarantine.take()
            if rows:
                table = target.table
                table.reload()
                # PostgreSQL upserts the batch in one statement where it can.
                got = table.upsert(rows, hashes, done.run_id, now)
                if got is None:
                    table.stage(rows, hashes)
                    got = table.merge(done.run_id, now, delete_missing=None)
                    table.clear_stage()
                counts.inserted += got.inserted
                counts.updated += got.updated
                done.published.append((target.decl.target_table, rows))
        if quarantine:
            store_rejects(conn, quarantine, now)
        # Messages from the spool: their mark, so that they are written only once.
        seqs = [i.spool_seq for i in items if i.spool_seq is not None]
        done.marked = max(seqs) if seqs else None
        if done.marked is not None:
            backlog.mark(conn, done.marked, done.run_id)
        window.add(conn, processed, counts, rejected)  # updates the source's registry row
        # The stream's state as of the last message that carries one, with the rows it
        # covers (source-wide: mapping 0 of data_source_sync_state) — unless the source
        # was reset and its stream not restarted yet: the state is then the position from
        # before the reset (the rows are written all the same). Checked after the registry
        # row's update: a reset locks that row first, so a reset racing this flush is
        # either seen here or comes after the commit and removes what is stored here.
        state = next((i.state for i in reversed(items) if i.state is not None), None)
        if state is not None and not reset_pending(conn, source_id):
            save_state(conn, source_id, SOURCE_WIDE, CONNECTOR_KEY, state, done.run_id)
    return done


def flush_or_isolate(flush: Callable[[list[Incoming]], None], items: list[Incoming]) -> None:
    """``flush(items)``; when the store refuses the data itself, find and quarantine the
    culprit.

    A lost or locked store is retried by the caller; a value the store cannot hold (e.g.
    a NUL character in PostgreSQL JSON) would fail forever, so the batch is written
    message by message and the one the store refuses is quarantined alone.
    """
    try:
        flush(items)
        return
    except (OperationalError, InterfaceError):
        raise
    except DBAPIError:
        if len(items) == 1 and items[0].error is not None:
            raise
    for item in items:
        try:
            flush([item])
        except (OperationalError, InterfaceError):
            raise
        except DBAPIError as exc:
            reason = f"the store refused the record: {describe_db_error(exc)}"
            raw = item.raw if item.raw is not None else item.records
            blob = orjson.dumps(raw, default=str).decode().replace("\\u0000", "")
            flush(
                [
                    Incoming(
                        [], raw={"text": blob}, error=reason, ack=item.ack, spool_seq=item.spool_seq
                    )
                ]
            )
