"""Sync state kept between runs: the incremental cursor of each mapping.

The cursor is written in the same transaction as the rows it covers, so after a crash
the next run starts exactly where the last committed one ended.

A reset (:func:`reset_state`, ``factorysync source reset``) removes the cursor and the
connector's own state (e.g. per-file markers) of a mapping, so its next run reads the
whole source again; the shape of the source's records is kept (the API serves rows in
it meanwhile).

A streaming source keeps its position source-wide (mapping 0, :data:`CONNECTOR_KEY`,
stored by each realtime flush), and a running stream also holds it in memory. Its reset
(:func:`reset_stream`) removes the stored one and leaves a *reset mark* until the realtime
service has restarted the stream (:func:`take_reset`): meanwhile no flush stores a stream
state (:func:`reset_pending`), so neither the stream still running nor its last flush as
it stops writes the old position back, and the new stream starts with none, as a fresh
source's does.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from factorysync.store.schema import data_source_sync_state as state_t
from factorysync.store.types import utcnow

CURSOR_KEY = "cursor"
CONNECTOR_KEY = "connector"
# How the source's records looked (document envelope, column -> source field), so the API
# can serve rows in the source's own shape.
SHAPE_KEY = "shape"
# What a reset removes: where the next run starts reading.
RESET_KEYS = (CURSOR_KEY, CONNECTOR_KEY)
# The source-wide entries (a stream's position, the reset mark) are kept under mapping 0.
SOURCE_WIDE = 0
# A reset of a streaming source whose stream has not been restarted yet.
RESET_MARK_KEY = "reset"


def _encode(value: Any) -> dict[str, Any]:
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    return {"type": "plain", "value": value}


def _decode(state: dict[str, Any]) -> Any:
    kind, value = state.get("type"), state.get("value")
    if value is None:
        return None
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "decimal":
        return Decimal(value)
    return value


def load_state(conn: Connection, source_id: str, mapping_id: int, key: str) -> Any:
    return conn.execute(
        select(state_t.c.state).where(
            state_t.c.source_id == source_id,
            state_t.c.mapping_id == mapping_id,
            state_t.c.state_key == key,
        )
    ).scalar_one_or_none()


def save_state(
    conn: Connection, source_id: str, mapping_id: int, key: str, state: Any, run_id: int | None
) -> None:
    """Upsert one state entry (in the caller's transaction, next to the rows it covers)."""
    where = (
        state_t.c.source_id == source_id,
        state_t.c.mapping_id == mapping_id,
        state_t.c.state_key == key,
    )
    found = conn.execute(update(state_t).where(*where).values(state=state, run_id=run_id)).rowcount
    if not found:
        conn.execute(
            insert(state_t).values(
                source_id=source_id,
                mapping_id=mapping_id,
                state_key=key,
                state=state,
                run_id=run_id,
            )
        )


def load_cursor(conn: Connection, source_id: str, mapping_id: int) -> Any:
    state = load_state(conn, source_id, mapping_id, CURSOR_KEY)
    return None if state is None else _decode(state)


def save_cursor(conn: Connection, source_id: str, mapping_id: int, value: Any, run_id: int) -> None:
    save_state(conn, source_id, mapping_id, CURSOR_KEY, _encode(value), run_id)


def reset_state(conn: Connection, source_id: str, mapping_id: int) -> dict[str, Any]:
    """Remove the cursor and connector state of one mapping (in the caller's transaction).

    Returns what was removed: ``cursor`` (the stored value as JSON holds it, an ISO text
    for a time, or None) and ``connector_state`` (whether the connector had any).
    """
    where = (
        state_t.c.source_id == source_id,
        state_t.c.mapping_id == mapping_id,
        state_t.c.state_key.in_(RESET_KEYS),
    )
    found = dict(conn.execute(select(state_t.c.state_key, state_t.c.state).where(*where)).all())
    conn.execute(delete(state_t).where(*where))
    cursor = found.get(CURSOR_KEY)
    return {
        "cursor": None if cursor is None else cursor.get("value"),
        "connector_state": CONNECTOR_KEY in found,
    }


def reset_stream(conn: Connection, source_id: str, reset_by: str) -> bool:
    """Forget the position of the source's stream and mark the reset as pending until its
    stream is restarted (in the caller's transaction); returns whether a stored position
    was removed.

    The caller holds the source's registry row lock (``SELECT ... FOR UPDATE``): a flush
    checks the mark after updating that row (:func:`reset_pending`), so a flush racing
    the reset either sees the mark or commits first and has its state removed here."""
    removed = reset_state(conn, source_id, SOURCE_WIDE)["connector_state"]
    # A fresh stamp: a restart takes only the reset it saw (take_reset), not a newer one.
    mark = {"stamp": secrets.token_hex(8), "at": utcnow().isoformat(), "by": reset_by}
    save_state(conn, source_id, SOURCE_WIDE, RESET_MARK_KEY, mark, None)
    return bool(removed)


def _mark_of(source_id: str) -> tuple[Any, ...]:
    return (
        state_t.c.source_id == source_id,
        state_t.c.mapping_id == SOURCE_WIDE,
        state_t.c.state_key == RESET_MARK_KEY,
    )


def pending_resets(conn: Connection) -> dict[str, str]:
    """Every source whose stream waits to be restarted after a reset, with the stamp of
    its reset (one query for all sources)."""
    rows = conn.execute(
        select(state_t.c.source_id, state_t.c.state).where(
            state_t.c.mapping_id == SOURCE_WIDE, state_t.c.state_key == RESET_MARK_KEY
        )
    ).all()
    return {r.source_id: str((r.state or {}).get("stamp")) for r in rows}


def reset_pending(conn: Connection, source_id: str) -> bool:
    """Whether a reset of the source waits for its stream to be restarted: no stream
    state may be stored meanwhile (it would be the position from before the reset)."""
    return conn.execute(select(state_t.c.id).where(*_mark_of(source_id))).first() is not None


def take_reset(conn: Connection, source_id: str, stamp: str) -> bool:
    """The stream of the source is being restarted after the reset ``stamp``: remove its
    mark, unless a newer reset replaced it (which then waits for the next restart).
    Returns whether the mark was removed."""
    found = conn.execute(
        select(state_t.c.id, state_t.c.state).where(*_mark_of(source_id)).with_for_update()
    ).first()
    if found is None or (found.state or {}).get("stamp") != stamp:
        return False
    conn.execute(delete(state_t).where(state_t.c.id == found.id))
    return True


def comparable(value: Any) -> Any:
    """Cursor values compare as what they are: ISO timestamps as instants, not as text."""
    from factorysync.kinds import infer_kind, to_kind

    kind = infer_kind(value)
    if kind in ("datetime", "date") and isinstance(value, str):
        return to_kind(value, kind)[1]
    return value


def passes_cursor(value: Any, cursor: Any) -> bool:
    """Rows at or after the stored cursor are read again (ties on the cursor never lose rows)."""
    if cursor is None:
        return True
    if value is None:
        return False
    try:
        return bool(value >= cursor)
    except TypeError:
        return str(value) >= str(cursor)
