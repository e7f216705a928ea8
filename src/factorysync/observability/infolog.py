"""The ``infolog`` table: a structured event log of the engine, mirrored to Python logging."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, insert

from factorysync.store.schema import infolog

log = logging.getLogger("factorysync.infolog")
# A realtime subscription (MQTT broker, OPC UA server) came up: "subscribed since".
SUBSCRIBED_EVENT = "realtime.subscribed"
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def record(
    conn: Connection,
    level: str,
    event: str,
    message: str,
    *,
    source_id: str | None = None,
    run_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Store one event (in the caller's transaction) and log it. Text must be redacted."""
    conn.execute(
        insert(infolog).values(
            level=level,
            event=event,
            message=message,
            source_id=source_id,
            run_id=run_id,
            details=details,
        )
    )
    prefix = f"[{source_id}] " if source_id else ""
    log.log(_LEVELS.get(level, logging.INFO), "%s%s", prefix, message)
