"""How sources are doing, the same on every surface: each source's cadence, health and
live state, a source as shown to people, and the state of the whole service."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select

from factorysync.errors import ConfigError
from factorysync.observability.infolog import SUBSCRIBED_EVENT
from factorysync.security.redaction import Redactor, redact_config
from factorysync.security.secret_values import mask_config
from factorysync.settings import Settings
from factorysync.store.db import plain
from factorysync.store.registry import list_sources
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import infolog as infolog_t
from factorysync.store.sites import check_site
from factorysync.store.store import Store
from factorysync.store.types import utcnow

if TYPE_CHECKING:
    from factorysync.realtime.spools import SourceSpooled

# "The last minute" of a realtime or push source's live state.
LIVE_SPAN_S = 60.0
# Dead and stopped workers stay in `status` this long after their last heartbeat.
WORKERS_SHOWN_S = 3600.0


def _as_time(value: Any) -> datetime | None:
    """A timestamp from an aggregate, which SQLite returns as text (no column type)."""
    from factorysync.store.types import UTCDateTime

    if isinstance(value, str):
        return UTCDateTime().process_result_value(value, None)  # type: ignore[arg-type]
    found: datetime | None = value  # a datetime, or None where the aggregate found no row
    return found


def spool_contents(settings: Settings) -> dict[str, SourceSpooled]:
    """What the local spools of this host hold, by source."""
    from factorysync.realtime.spools import spooled_by_source

    return spooled_by_source(settings)


def live_states(
    conn: Any,
    sources: list[dict[str, Any]],
    now: datetime,
    window_s: float,
    spooled: dict[str, SourceSpooled] | None = None,
) -> dict[str, dict[str, Any]]:
    """What subscription (MQTT, OPC UA) and push sources are doing, from the store and
    the local spools (``spooled``: :func:`spool_contents`).

    ``subscribed_since``: when the subscription last came up (a ``realtime.subscribed``
    event), while it is up. ``last_message_at`` is the latest data: its commit
    (``last_sync``, which every flush moves) or, when newer, the arrival of the newest
    message waiting in a spool; ``records_last_minute`` is read from the history windows,
    a window reaching into the last minute counting with the share of its span that does
    (so an estimate); ``messages_per_minute`` adds the messages spooled in the last
    minute to it. ``spool_depth``: messages waiting in the spools of this host for the
    store.
    ``state``: ``receiving`` (data within the last minute), ``quiet`` (none since),
    ``waiting`` (none ever), ``error`` (the connection or the store failed: ``last_error``)
    or ``stopped`` (the source is inactive or in maintenance).
    """
    if not sources:
        return {}
    since = now - timedelta(seconds=LIVE_SPAN_S)
    # A window lasts window_s, and up to a flush longer: older ones end before `since`.
    earliest = since - timedelta(seconds=window_s + 30)
    counted: dict[str, float] = {}
    windows = conn.execute(
        select(
            hist_t.c.source_id,
            hist_t.c.sync_started_at,
            hist_t.c.sync_duration_ms,
            hist_t.c.records_processed,
        ).where(
            hist_t.c.source_id.in_([s["source_id"] for s in sources]),
            hist_t.c.sync_type == "realtime",
            hist_t.c.sync_started_at >= earliest,
        )
    )
    for sid, started, duration_ms, processed in windows:
        ended = started + timedelta(milliseconds=duration_ms or 0)
        if ended < since or not processed:
            continue
        span_s = (ended - started).total_seconds()
        share = 1.0 if span_s <= 0 else (ended - max(started, since)).total_seconds() / span_s
        counted[sid] = counted.get(sid, 0.0) + processed * min(max(share, 0.0), 1.0)
    subscribed = dict(
        conn.execute(
            select(infolog_t.c.source_id, func.max(infolog_t.c.created_at))
            .where(
                infolog_t.c.source_id.in_([s["source_id"] for s in sources]),
                infolog_t.c.event == SUBSCRIBED_EVENT,
            )
            .group_by(infolog_t.c.source_id)
        ).all()
    )
    spooled = spooled or {}
    states = {}
    for s in sources:
        held = spooled.get(s["source_id"])
        last = s.get("last_sync")
        if held is not None and held.newest is not None:
            newest = datetime.fromtimestamp(held.newest, UTC)
            last = newest if last is None or newest > last else last
        age = None if last is None else max((now - last).total_seconds(), 0.0)
        if s["status"] not in ("active", "error"):
            state = "stopped"
        elif s.get("last_error"):
            state = "error"
        elif age is None:
            state = "waiting"
        else:
            state = "receiving" if age <= LIVE_SPAN_S else "quiet"
        states[s["source_id"]] = {
            "state": state,
            "last_message_at": last,
            "last_message_age_s": None if age is None else round(age, 3),
            "records_last_minute": round(counted.get(s["source_id"], 0.0)),
            "messages_per_minute": round(counted.get(s["source_id"], 0.0))
            + (held.last_minute if held else 0),
            "spool_depth": held.messages if held else 0,
            # When the subscription last came up (push sources have none).
            "subscribed_since": None
            if state in ("stopped", "error")
            else _as_time(subscribed.get(s["source_id"])),
        }
    return states


def describe_sources(
    conn: Any,
    rows: list[dict[str, Any]],
    settings: Settings,
    frequencies: dict[str, list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Add to registry rows how each source is doing, the same on every surface:

    ``cadence`` (when it runs, and what in its declaration says so), ``failing`` (active,
    and its last run failed: still ``active`` until the circuit opens),
    ``consecutive_failures`` and ``live`` (subscription and push sources, which have no
    next run: see :func:`live_states`; None for polled sources). ``frequencies``: the
    mappings' frequencies by source, when the rows carry no ``mappings``.
    """
    from factorysync.engine.schedule import cadence

    now = utcnow()
    cadences = {}
    for row in rows:
        mappings = row.get("mappings")
        if mappings is None and frequencies is not None:
            mappings = frequencies.get(row["source_id"], [])
        cadences[row["source_id"]] = cadence({**row, "mappings": mappings}, settings.timezone)
    live = live_states(
        conn,
        [r for r in rows if not cadences[r["source_id"]].polled],
        now,
        settings.realtime_window_s,
        spool_contents(settings),
    )
    for row in rows:
        row["cadence"] = cadences[row["source_id"]].as_dict()
        row["failing"] = row["status"] == "active" and bool(row["error_count"])
        row["consecutive_failures"] = int(row["error_count"] or 0)
        row["live"] = live.get(row["source_id"])
    return rows


def sources(
    store: Store, status: str | None = None, site: str | None = None
) -> list[dict[str, Any]]:
    """Registered sources with their cadence, health and live state (describe_sources);
    ``site``: only that site's (NotFoundError when there is no such site)."""
    from factorysync.store.registry import mapping_frequencies

    with store.connect() as conn:
        check_site(conn, site)
        rows = list_sources(conn, status=status, site=site)
        return describe_sources(conn, rows, store.settings, mapping_frequencies(conn))


def forwarded_lag(conn: Any, now: datetime, site: str | None = None) -> list[dict[str, Any]]:
    """Central store: how far behind each site's forwarded changes are (messages waiting
    on the stream, seconds), with its tables (empty elsewhere)."""
    from factorysync.forward.central_lag import site_lag

    return [s for s in site_lag(conn, now) if site is None or s["site"] == site]


def runs_of_site(site: str) -> Any:
    """History rows of the sources of ``site`` (a WHERE clause)."""
    return hist_t.c.registry_id.in_(select(reg_t.c.id).where(reg_t.c.site == site))


def _scheduler_lag(conn: Any, now: datetime, site: str | None = None) -> float:
    """How late the most overdue source is that the scheduler should have started.

    Only polled sources count (subscription and push sources have no next run), and not
    those being run now (their ``next_sync`` moves when the run ends)."""
    from factorysync.engine.leases import batch_source

    running = select(hist_t.c.source_id).where(hist_t.c.sync_status == "running")
    stmt = select(func.min(reg_t.c.next_sync)).where(
        reg_t.c.status == "active",
        batch_source(),
        reg_t.c.source_id.not_in(running),
        or_(reg_t.c.lease_expires_at.is_(None), reg_t.c.lease_expires_at <= now),
    )
    if site is not None:
        stmt = stmt.where(reg_t.c.site == site)
    oldest = conn.execute(stmt).scalar_one()
    oldest = _as_time(oldest)
    return max((now - oldest).total_seconds(), 0.0) if oldest else 0.0


def status_summary(store: Store, site: str | None = None) -> dict[str, Any]:
    """The state of the whole service, as ``status``, ``/api/status``, ``/metrics`` and
    the console overview show it; ``site``: of that site's sources only (workers are
    shared by all sites and always listed; NotFoundError when there is no such site).

    ``by_status`` counts the registry's four statuses; ``failing`` counts active sources
    whose last run failed (listed in ``failing_sources``); ``scheduler_lag_s`` is about
    polled sources only (:func:`_scheduler_lag`); ``realtime`` gives the live state of
    subscription and push sources; ``workers`` are the schedulers seen in the last hour,
    ``dead`` once they missed their heartbeat for a lease (PostgreSQL store).
    """
    from factorysync.engine.leases import batch_source, workers_summary

    now = utcnow()
    settings = store.settings
    of_site = [] if site is None else [reg_t.c.site == site]
    runs_of = [] if site is None else [runs_of_site(site)]  # history rows of the site
    with store.connect() as conn:
        check_site(conn, site)
        # Sources by site and status in one query: by_site counts every site, by_status
        # the sites asked for.
        by_site: dict[str, int] = {}
        by_status: dict[str, int] = {}
        for name, status, count in conn.execute(
            select(reg_t.c.site, reg_t.c.status, func.count())
            .group_by(reg_t.c.site, reg_t.c.status)
            .order_by(reg_t.c.site)
        ).all():
            by_site[name] = by_site.get(name, 0) + count
            if site is None or name == site:
                by_status[status] = by_status.get(status, 0) + count
        running = conn.execute(
            select(func.count()).where(hist_t.c.sync_status == "running", *runs_of)
        ).scalar_one()
        lag = _scheduler_lag(conn, now, site)
        since = now - timedelta(hours=24)
        runs: dict[str, int] = {
            status: count
            for status, count in conn.execute(
                select(hist_t.c.sync_status, func.count())
                .where(hist_t.c.sync_started_at >= since, *runs_of)
                .group_by(hist_t.c.sync_status)
            ).all()
        }
        failing = [
            {
                "source_id": r.source_id,
                "consecutive_failures": int(r.error_count),
                "last_error": r.last_error,
                "last_sync": r.last_sync,
            }
            for r in conn.execute(
                select(
                    reg_t.c.source_id, reg_t.c.error_count, reg_t.c.last_error, reg_t.c.last_sync
                )
                .where(reg_t.c.status == "active", reg_t.c.error_count > 0, *of_site)
                .order_by(reg_t.c.error_count.desc(), reg_t.c.source_id)
            )
        ]
        unpolled = [
            plain(r)
            for r in conn.execute(
                select(
                    reg_t.c.source_id,
                    reg_t.c.connection_type,
                    reg_t.c.status,
                    reg_t.c.last_sync,
                    reg_t.c.last_error,
                )
                .where(reg_t.c.status.in_(("active", "error")), ~batch_source(), *of_site)
                .order_by(reg_t.c.source_id)
            ).mappings()
        ]
        live = live_states(
            conn, unpolled, now, settings.realtime_window_s, spool_contents(settings)
        )
        workers = workers_summary(conn, settings.lease_s, WORKERS_SHOWN_S)
        forward_lag = forwarded_lag(conn, now, site)
    return {
        "store": store.safe_url,
        "site": site,
        "sources": sum(by_status.values()),
        "by_status": by_status,
        "by_site": by_site,
        "failing": len(failing),
        "failing_sources": failing,
        "runs_in_progress": running,
        "scheduler_lag_s": round(lag, 3),
        "realtime": [
            {
                "source_id": r["source_id"],
                "connection_type": r["connection_type"],
                **live[r["source_id"]],
            }
            for r in unpolled
        ],
        "runs_last_24h": runs,
        "workers": [
            {
                "worker_id": w["worker_id"],
                "host": w["host"],
                "status": w["status"],
                "running": w["running"],
                "max_concurrent": w["max_concurrent"],
                "leases": w["leases"],
                "started_at": w["started_at"],
                "heartbeat_at": w["heartbeat_at"],
            }
            for w in workers
        ],
        "forward_lag": forward_lag,
        "forwarding": _forwarding(store),
    }


def _forwarding(store: Store) -> dict[str, Any] | None:
    """Plant: the outbox and the publisher (None when forwarding is off and nothing waits)."""
    from factorysync.forward import forward_status

    return forward_status(store)


def public_source(store: Store, source: dict[str, Any]) -> dict[str, Any]:
    """A stored source as shown to people: secrets masked, credentials in strings redacted,
    with its cadence, health and live state (:func:`describe_sources`)."""
    redact = Redactor()
    auths = []
    for c in source["connections"]:
        auth = c["authentication_config"]
        # An undecryptable config adds nothing here: mask_config hides its values.
        with contextlib.suppress(ConfigError):
            auth = store.box.decrypt_config(auth)
            redact.add(auth)
        auths.append(auth)
    shown = dict(source)
    shown["connections"] = [
        dict(
            c,
            connection_config=redact_config(c["connection_config"], redact),
            authentication_config=mask_config(auth),
        )
        for c, auth in zip(source["connections"], auths, strict=True)
    ]
    shown["last_error"] = redact(source["last_error"]) if source.get("last_error") else None
    with store.connect() as conn:
        describe_sources(conn, [shown], store.settings)
    return shown
