"""A realtime source's health and events, as its stream and writer report them: the
registry's ``last_error``/``error_count`` and the event log, each in a transaction of its
own that fails quietly when the store is what failed."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from sqlalchemy import update

from factorysync.observability import infolog
from factorysync.security.redaction import redact_known
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.store import Store

log = logging.getLogger("factorysync.realtime")


def report_status(
    store: Store, source_id: str, error: str | None, *, subscribed: str | None = None
) -> None:
    """Record a realtime source's health in the registry (``last_error``, ``error_count``).

    ``error`` comes from a broker or server; every secret the process knows is masked
    in it before it is stored. ``subscribed``: the subscription (broker or server) just
    came up, recorded as a ``realtime.subscribed`` event."""
    if error is not None:
        error = redact_known(error)
    if subscribed is not None:
        subscribed = redact_known(subscribed)
    values: dict[str, Any] = {"last_error": error}
    try:
        with store.begin() as conn:
            if error is None:
                values["error_count"] = 0
                status = conn.execute(
                    reg_t.select()
                    .with_only_columns(reg_t.c.status)
                    .where(reg_t.c.source_id == source_id)
                ).scalar_one_or_none()
                if status == "error":
                    values["status"] = "active"
            else:
                values["error_count"] = reg_t.c.error_count + 1
            conn.execute(update(reg_t).where(reg_t.c.source_id == source_id).values(**values))
            if subscribed is not None:
                # "Subscribed since" in status and source views is this event's time.
                infolog.record(
                    conn,
                    "info",
                    infolog.SUBSCRIBED_EVENT,
                    f"subscribed to {subscribed}",
                    source_id=source_id,
                    details={"where": subscribed},
                )
    except Exception as exc:  # the store itself may be what failed
        log.debug("%s: could not record status: %s", source_id, exc)


def record_event(
    store: Store,
    source_id: str,
    level: str,
    event: str,
    message: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Record an event a realtime source reports (a device gone, a rebirth asked for) in
    the event log, in a transaction of its own. Text from a device or server is masked
    against every secret the process knows."""
    message = redact_known(message)
    if details is not None:
        details = orjson.loads(redact_known(orjson.dumps(details, default=str).decode()))
    try:
        with store.begin() as conn:
            infolog.record(conn, level, event, message, source_id=source_id, details=details)
    except Exception as exc:  # the store itself may be what failed
        log.debug("%s: could not record event %s: %s", source_id, event, exc)
