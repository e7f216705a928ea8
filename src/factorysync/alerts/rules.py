"""The alert rules.

Evaluated when a run ends (:func:`evaluate_run`, called for the engine's run-finished
event by :func:`factorysync.alerts.monitor.run_finished`, right after the run's commit):

    consecutive_failures  the last ``alert_failures`` runs all failed      → critical
    rejected_rows         a run rejected ≥ ``alert_rejected_rate`` of its records
    schema_change         a run added, dropped or widened a target column (its
                          ``schema.changed`` infolog events), or failed because
                          ``schema_contract: freeze`` refused a type change → critical

and periodically (:func:`check_sources`, from the monitor thread):

    stale                 no successful run within ``alert_stale_factor`` × refresh_interval
    realtime_silence      a streaming source (MQTT, OPC UA …) wrote nothing for
                          ``alert_silence_s``

and when a local spool crosses 80 % of ``spool_max_mb`` (:func:`spool_alerts`, from the
spool's level event): ``spool_filling`` (critical) for each source with messages in it,
resolved once the spool is below the level again. The spool fills while the store is
unreachable, so the monitor announces these on its channels at once, without the store,
and records them there once it is back (:mod:`factorysync.alerts.monitor`).

A successful run resolves ``consecutive_failures`` and ``stale``; a run under the rejected
rate resolves ``rejected_rows``; a successful run that changed no column resolves
``schema_change`` (its notices and the infolog keep what changed); data from a realtime
source resolves its silence. Sources
that are ``inactive`` or in ``maintenance`` are expected to be quiet: their staleness and
silence alerts resolve.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from factorysync.alerts import records
from factorysync.connectors.registry import types_with
from factorysync.observability import infolog
from factorysync.settings import Settings
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import infolog as infolog_t
from factorysync.store.targets import SchemaContractError

log = logging.getLogger("factorysync.alerts")
FAILED = ("failed", "partial")


def evaluate_run(
    conn: Connection,
    result: Any,
    settings: Settings,
    now: datetime,
    *,
    error: BaseException | None = None,
) -> int:
    """Raise or resolve the run-driven alerts of ``result``'s source; how many changed.
    ``error``: the exception that ended a failed run, if known."""
    sid = result.source_id
    touched, schema_changed = schema_alert(conn, result, now, error)
    if result.sync_status in FAILED:
        n = settings.alert_failures
        last = conn.execute(
            select(hist_t.c.sync_status)
            .where(hist_t.c.source_id == sid, hist_t.c.sync_status != "running")
            .order_by(hist_t.c.id.desc())
            .limit(n)
        ).scalars()
        statuses = list(last)
        if len(statuses) == n and all(s in FAILED for s in statuses):
            errors = conn.execute(
                select(reg_t.c.error_count).where(reg_t.c.source_id == sid)
            ).scalar()
            # The run's own failure is counted: the rules run after its commit.
            count = max(n, errors or 0)
            touched += records.raise_alerts(
                conn,
                [
                    {
                        "source_id": sid,
                        "rule": "consecutive_failures",
                        "severity": "critical",
                        "message": f"{sid}: {count} failed runs in a row; last error: "
                        f"{result.error_message or 'unknown'}",
                        "details": {
                            "failures": count,
                            "run_id": result.run_id,
                            "error": result.error_message,
                        },
                    }
                ],
                now,
            )
        return touched
    if result.sync_status != "success":
        return touched
    # What a successful run clears, resolved in one statement (a run ends with it).
    cleared = ["consecutive_failures", "stale"]
    if not schema_changed:
        cleared.append("schema_change")
    processed, rejected = result.records_processed, result.records_rejected
    total = max(processed, rejected)  # processed counts the rejected records too
    if processed:
        cleared.append("realtime_silence")
    if total and rejected / total >= settings.alert_rejected_rate:
        touched += records.raise_alerts(
            conn,
            [
                {
                    "source_id": sid,
                    "rule": "rejected_rows",
                    "message": f"{sid}: run {result.run_id} rejected {rejected} of {total} "
                    f"records ({rejected / total:.0%})",
                    "details": {"run_id": result.run_id, "rejected": rejected, "total": total},
                }
            ],
            now,
        )
    else:
        cleared.append("rejected_rows")
    return touched + records.resolve(conn, cleared, now, source_ids=[sid])


def schema_alert(
    conn: Connection, result: Any, now: datetime, error: BaseException | None = None
) -> tuple[int, bool]:
    """Raise ``schema_change`` for the columns the run changed (its ``schema.changed``
    events) or that ``schema_contract: freeze`` refused (``error``, written to the
    infolog here: the run's own transaction was rolled back): how many alerts changed,
    and whether the run changed or refused any column (else a successful run resolves
    the alert, with the others it clears)."""
    sid, run_id = result.source_id, result.run_id
    started = select(hist_t.c.sync_started_at).where(hist_t.c.id == run_id).scalar_subquery()
    changes = [
        dict(details)
        for details in conn.execute(
            select(infolog_t.c.details).where(
                infolog_t.c.source_id == sid,
                infolog_t.c.created_at >= started,
                infolog_t.c.run_id == run_id,
                infolog_t.c.event == "schema.changed",
            )
        ).scalars()
        if details
    ]
    refused = []
    if isinstance(error, SchemaContractError) and error.source_id == sid:
        for change in error.changes:
            details = {**change.details(), "refused": True}
            infolog.record(
                conn,
                "error",
                "schema.changed",
                f"{change.message()}: refused (schema_contract freeze)",
                source_id=sid,
                run_id=run_id,
                details=details,
            )
            refused.append(details)
    if not changes and not refused:
        return 0, False
    found = refused + changes
    listed = "; ".join(_change_text(c) for c in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    what = "change refused (schema_contract freeze), run failed: " if refused else "changed: "
    raised = records.raise_alerts(
        conn,
        [
            {
                "source_id": sid,
                "rule": "schema_change",
                "severity": "critical" if refused else "warning",
                "message": f"{sid}: target schema {what}{listed}{more}",
                "details": {"run_id": run_id, "changes": found},
            }
        ],
        now,
    )
    return raised, True


def _change_text(change: dict[str, Any]) -> str:
    where = f"{change.get('table')}.{change.get('column')}"
    kind = change.get("kind")
    if kind == "added":
        return f"{where} added ({change.get('new_type')})"
    if kind == "dropped":
        return f"{where} dropped (was {change.get('old_type')})"
    return f"{where} {change.get('old_type')} → {change.get('new_type')}"


def check_sources(conn: Connection, settings: Settings, now: datetime) -> int:
    """Staleness and realtime silence of every source (one registry read); alerts raised."""
    rows = conn.execute(
        select(
            reg_t.c.source_id,
            reg_t.c.status,
            reg_t.c.connection_type,
            reg_t.c.refresh_interval,
            reg_t.c.last_sync,
            reg_t.c.created_at,
        )
    ).all()
    stale: list[dict[str, Any]] = []
    silent: list[dict[str, Any]] = []
    streaming = set(types_with("streams"))  # the registry's realtime types
    for r in rows:
        if r.status not in ("active", "error"):
            continue
        since = r.last_sync or r.created_at
        quiet_s = (now - since).total_seconds()
        if r.connection_type in streaming:
            if quiet_s >= settings.alert_silence_s:
                silent.append(
                    {
                        "source_id": r.source_id,
                        "rule": "realtime_silence",
                        "message": f"{r.source_id}: no realtime data for {_span(quiet_s)}",
                        "details": {"quiet_s": round(quiet_s)},
                    }
                )
            continue
        limit_s = settings.alert_stale_factor * max(r.refresh_interval, 1)
        if quiet_s >= limit_s:
            what = "last success" if r.last_sync else "no success since it was added"
            stale.append(
                {
                    "source_id": r.source_id,
                    "rule": "stale",
                    "message": f"{r.source_id}: {what} {_span(quiet_s)} ago "
                    f"(expected every {_span(r.refresh_interval)})",
                    "details": {
                        "quiet_s": round(quiet_s),
                        "limit_s": round(limit_s),
                        "expected_s": r.refresh_interval,
                        "succeeded": r.last_sync is not None,
                    },
                }
            )
    records.resolve(conn, ("stale",), now, except_source_ids=[a["source_id"] for a in stale])
    records.resolve(
        conn, ("realtime_silence",), now, except_source_ids=[a["source_id"] for a in silent]
    )
    return records.raise_alerts(conn, stale + silent, now)


def _span(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


SPOOL_RULE = "spool_filling"


def spool_alerts(level: Any) -> list[dict[str, Any]]:
    """The ``spool_filling`` alerts of a spool's level event
    (:class:`factorysync.engine.events.SpoolLevel`), one per source with messages in it."""
    share = level.used_bytes / level.max_bytes if level.max_bytes else 1.0
    used_mb, max_mb = level.used_bytes / 2**20, level.max_bytes / 2**20
    return [
        {
            "source_id": sid,
            "rule": SPOOL_RULE,
            "severity": "critical",
            "message": f"{sid}: the local spool {level.spool} is {share:.0%} full "
            f"({used_mb:.0f} of {max_mb:.0f} MB) because the store is unreachable; {count} "
            f"message(s) of {sid} wait in it. Once it is full no message is acknowledged: "
            "bring the store back, or raise FACTORYSYNC_SPOOL_MAX_MB",
            "details": {
                "spool": level.spool,
                "used_bytes": level.used_bytes,
                "max_bytes": level.max_bytes,
                "messages": count,
            },
        }
        for sid, count in sorted(level.messages.items())
        if count
    ]
