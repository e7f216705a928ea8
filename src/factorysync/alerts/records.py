"""The ``alerts`` table: raise (de-duplicated), resolve, acknowledge, list, deliver.

One alert that is not resolved exists per source and rule (a partial unique index);
raising the same condition again counts an occurrence on it. The API, the console and
the rules all go through these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, or_, select, text, update

from factorysync.errors import ConfigError, NotFoundError
from factorysync.store.db import plain
from factorysync.store.schema import alerts as alerts_t
from factorysync.store.types import utcnow

SEVERITIES = ("info", "warning", "critical")
# The predicate of the partial unique index uq_alerts_active, repeated verbatim so the
# database can match ON CONFLICT to it.
NOT_RESOLVED = text("state != 'resolved'")


def _insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def raise_alerts(conn: Connection, alerts: Iterable[dict[str, Any]], now: datetime) -> int:
    """Open each alert, or count one more occurrence on the one already open.

    Each item holds ``source_id``, ``rule``, ``message`` and optionally ``severity`` and
    ``details``. One statement for all of them; returns how many were given.
    """
    rows = [
        {
            "source_id": a["source_id"],
            "rule": a["rule"],
            "severity": a.get("severity", "warning"),
            "state": "open",
            "message": a["message"],
            "details": a.get("details"),
            "occurrences": 1,
            "opened_at": now,
            "last_seen_at": now,
        }
        for a in alerts
    ]
    if not rows:
        return 0
    stmt = _insert(conn)(alerts_t)
    stmt = stmt.on_conflict_do_update(
        index_elements=[alerts_t.c.source_id, alerts_t.c.rule],
        index_where=NOT_RESOLVED,
        set_={
            "occurrences": alerts_t.c.occurrences + 1,
            "last_seen_at": stmt.excluded.last_seen_at,
            "message": stmt.excluded.message,
            "severity": stmt.excluded.severity,
            "details": stmt.excluded.details,
        },
    )
    conn.execute(stmt, rows)
    return len(rows)


def resolve(
    conn: Connection,
    rules: Iterable[str],
    now: datetime,
    *,
    source_ids: Iterable[str] | None = None,
    except_source_ids: Iterable[str] | None = None,
) -> int:
    """Resolve the not-resolved alerts of ``rules`` (for some sources, or all but some)."""
    stmt = update(alerts_t).where(alerts_t.c.rule.in_(list(rules)), alerts_t.c.state != "resolved")
    if source_ids is not None:
        stmt = stmt.where(alerts_t.c.source_id.in_(list(source_ids)))
    if except_source_ids is not None:
        keep = list(except_source_ids)
        if keep:
            stmt = stmt.where(alerts_t.c.source_id.not_in(keep))
    return int(conn.execute(stmt.values(state="resolved", resolved_at=now)).rowcount)


def get_alert(conn: Connection, alert_id: int) -> dict[str, Any]:
    row = conn.execute(select(alerts_t).where(alerts_t.c.id == alert_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no alert {alert_id} (GET /api/alerts lists them)")
    return _public(row)


def acknowledge(conn: Connection, alert_id: int, username: str) -> dict[str, Any]:
    """Mark an open alert as seen by ``username``; acknowledged or resolved ones stay."""
    found = get_alert(conn, alert_id)
    if found["state"] == "open":
        conn.execute(
            update(alerts_t)
            .where(alerts_t.c.id == alert_id, alerts_t.c.state == "open")
            .values(state="acknowledged", acknowledged_at=utcnow(), acknowledged_by=username)
        )
        found = get_alert(conn, alert_id)
    return found


def list_alerts(
    conn: Connection,
    *,
    states: Iterable[str] | None = None,
    source_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alerts, open first, then acknowledged, then resolved; newest first within each."""
    wanted = list(states) if states is not None else None
    for state in wanted or ():
        if state not in ("open", "acknowledged", "resolved"):
            raise ConfigError(f"state {state!r}: use open, acknowledged or resolved")
    rank = case({"open": 0, "acknowledged": 1}, value=alerts_t.c.state, else_=2)
    stmt = select(alerts_t).order_by(rank, alerts_t.c.last_seen_at.desc(), alerts_t.c.id.desc())
    if wanted is not None:
        stmt = stmt.where(alerts_t.c.state.in_(wanted))
    if source_id is not None:
        stmt = stmt.where(alerts_t.c.source_id == source_id)
    return [_public(r) for r in conn.execute(stmt.limit(limit)).mappings()]


def active_by_source(conn: Connection) -> dict[str, int]:
    """Number of alerts that are not resolved, per source."""
    rows = conn.execute(
        select(alerts_t.c.source_id, func.count())
        .where(alerts_t.c.state != "resolved")
        .group_by(alerts_t.c.source_id)
    ).all()
    return {r[0]: int(r[1]) for r in rows if r[0] is not None}


def _public(row: Any) -> dict[str, Any]:
    alert = plain(row)
    alert.pop("notified_at", None)
    alert.pop("notified_state", None)
    return alert


# -- delivery ---------------------------------------------------------------------------
def announced_state(state: str) -> str:
    """What the channels are told: an acknowledged alert is still an open one."""
    return "resolved" if state == "resolved" else "open"


def claim_notifications(conn: Connection, now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """Alerts whose opening or resolution has not been announced, claimed for delivery.

    Each claim is an ``UPDATE … WHERE`` that only one process can win, so two processes
    sharing a store never both send the same notice. An alert resolved before its opening
    was announced is marked without a notice (nobody was told it was open).
    """
    announce = case((alerts_t.c.state == "resolved", "resolved"), else_="open")
    rows = conn.execute(
        select(alerts_t)
        .where(or_(alerts_t.c.notified_state.is_(None), alerts_t.c.notified_state != announce))
        .order_by(alerts_t.c.id)
        .limit(500)
    ).mappings()
    claimed = []
    for row in list(rows):
        event = announced_state(row["state"])
        won = conn.execute(
            update(alerts_t)
            .where(
                alerts_t.c.id == row["id"],
                or_(alerts_t.c.notified_state.is_(None), alerts_t.c.notified_state != event),
            )
            .values(notified_state=event, notified_at=now)
        ).rowcount
        if won and not (event == "resolved" and row["notified_state"] is None):
            claimed.append((event, _public(row)))
    return claimed


def mark_announced(conn: Connection, rule: str, source_ids: Iterable[str], now: datetime) -> None:
    """Note that the opening of these alerts was announced already (on the channels,
    while the store could not be written), so that it is not announced again."""
    conn.execute(
        update(alerts_t)
        .where(
            alerts_t.c.rule == rule,
            alerts_t.c.source_id.in_(list(source_ids)),
            alerts_t.c.state != "resolved",
            alerts_t.c.notified_state.is_(None),
        )
        .values(notified_state="open", notified_at=now)
    )
