"""How far the central store is behind each site: messages waiting and seconds.

The central ingest counts, every few seconds, the messages of each site still waiting on
the stream after the last applied one (:func:`count_pending`, JetStream) and stores the
counts in ``central_sites`` (:func:`save_pending`). Every surface reads them from the
store (:func:`site_lag`): ``factorysync status``, ``/api/status``, ``/metrics`` and the
console, whichever process serves them.

- ``lag_messages``: messages of the site on the stream not applied yet;
- ``lag_seconds``: while messages wait, now − ``published_at`` of the last applied message
  of the site's table (since the table was first seen, when none was applied yet); 0
  when nothing waits.

Counts are as of ``checked_at``: a central ingest that stopped leaves its last counts,
and their age shows it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from factorysync.forward.central_message import SUBJECT_PREFIX, BadMessage, subject_parts
from factorysync.store.schema import central_sites as sites_t


def site_lag(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """Per site: its lag (messages, seconds), when it was counted, and its tables."""
    by_site: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in conn.execute(select(sites_t).order_by(sites_t.c.site, sites_t.c.table_name)):
        if not row.site:
            continue  # messages on no site's subject (counted, never shown as a site)
        pending = int(row.pending_messages or 0)
        since = row.last_published_at or row.created_at
        seconds = max((now - since).total_seconds(), 0.0) if pending and since else 0.0
        by_site[row.site].append(
            {
                "table": row.table_name,
                "lag_messages": pending,
                "lag_seconds": round(seconds, 3),
                "last_seq": row.last_seq,
                "last_published_at": row.last_published_at,
                "rows_applied": int(row.rows_applied),
                "messages_applied": int(row.messages_applied),
                "messages_rejected": int(row.messages_rejected),
                "last_error": row.last_error,
                "checked_at": row.pending_checked_at,
            }
        )
    found = []
    for site, tables in sorted(by_site.items()):
        checked = [t["checked_at"] for t in tables if t["checked_at"] is not None]
        applied = [t["last_published_at"] for t in tables if t["last_published_at"]]
        found.append(
            {
                "site": site,
                "lag_messages": sum(t["lag_messages"] for t in tables),
                "lag_seconds": max(t["lag_seconds"] for t in tables),
                "last_published_at": max(applied) if applied else None,
                "checked_at": min(checked) if checked else None,
                "rows_applied": sum(t["rows_applied"] for t in tables),
                "messages_rejected": sum(t["messages_rejected"] for t in tables),
                "tables": tables,
            }
        )
    return found


def save_pending(conn: Connection, pending: dict[tuple[str, str], int], now: datetime) -> None:
    """Store the counted messages waiting per (site, table); every other row waits for
    nothing. A (site, table) seen for the first time gets its row."""
    conn.execute(update(sites_t).values(pending_messages=0, pending_checked_at=now))
    if not pending:
        return
    rows = [
        {
            "site": site,
            "table_name": table,
            "pending_messages": count,
            "pending_checked_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for (site, table), count in sorted(pending.items())
    ]
    stmt = pg_insert(sites_t).values(rows)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[sites_t.c.site, sites_t.c.table_name],
            set_={"pending_messages": stmt.excluded.pending_messages},
        )
    )


async def count_pending(js: Any, stream: str, position: int) -> dict[tuple[str, str], int]:
    """Messages after stream sequence ``position``, per (site, table) with any.

    One probe per site (a consumer that is never pulled from, filtered to the site's
    subjects and starting after ``position``: the server counts its pending messages),
    then one per table of the sites that have any."""
    info = await js.stream_info(stream, subjects_filter=f"{SUBJECT_PREFIX}.>")
    subjects: dict[str, int] = info.state.subjects or {}
    tables: dict[str, list[str]] = defaultdict(list)
    for subject in subjects:
        try:
            site, table = subject_parts(subject)
        except BadMessage:
            continue
        tables[site].append(table)
    found: dict[tuple[str, str], int] = {}
    for site, names in sorted(tables.items()):
        if not await _probe(js, stream, f"{SUBJECT_PREFIX}.{site}.>", position):
            continue
        for table in sorted(names):
            count = await _probe(js, stream, f"{SUBJECT_PREFIX}.{site}.{table}", position)
            if count:
                found[(site, table)] = count
    return found


async def _probe(js: Any, stream: str, subject: str, position: int) -> int:
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    name = f"fs-lag-{uuid.uuid4().hex[:16]}"
    config = ConsumerConfig(
        name=name,
        filter_subject=subject,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=position + 1,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=60.0,
        mem_storage=True,
    )
    info = await js.add_consumer(stream, config)
    try:
        return int(info.num_pending or 0)
    finally:
        await js.delete_consumer(stream, name)
