"""Sync state kept between runs: the incremental cursor of each mapping.

The cursor is written in the same transaction as the rows it covers, so after a crash
the next run starts exactly where the last committed one ended.

A reset (:func:`reset_state`, ``factorysync source reset``) removes the cursor and the
connector's own state (e.g. per-file markers) of a mapping, so its next run reads the
whole source again; the shape of the source's records is kept (the API serves rows in
it meanwhile).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from factorysync.store.schema import data_source_sync_state as state_t

CURSOR_KEY = "cursor"
CONNECTOR_KEY = "connector"
# How the source's records looked (document envelope, column -> source field), so the API
# can serve rows in the source's own shape.
SHAPE_KEY = "shape"
# What a reset removes: where the next run starts reading.
RESET_KEYS = (CURSOR_KEY, CONNECTOR_KEY)


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
    conn: Connection, source_id: str, mapping_id: int, key: str, state: Any, run_id: int
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
