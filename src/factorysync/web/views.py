"""What each console page shows, read with a few set-based queries (never one per source).

The pages stay fast with hundreds of sources and a long run history: the sources list is
one query (the registry joined to each source's latest run through a grouped subquery)
plus one for alert counts; the overview aggregates in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, or_, select

from factorysync import services
from factorysync.alerts import records as alert_records
from factorysync.settings import Settings, get_settings
from factorysync.store.db import plain
from factorysync.store.registry import mapping_frequencies as frequencies
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.types import UTCDateTime, utcnow

# The registry's statuses, then two the list filters by: a run in progress, and active
# sources whose last run failed (still 'active' until the circuit opens).
SOURCE_STATUSES = ("active", "inactive", "error", "maintenance", "running", "failing")
LIST_COLUMNS = (
    reg_t.c.source_id,
    reg_t.c.name,
    reg_t.c.source_type,
    reg_t.c.connection_type,
    reg_t.c.status,
    reg_t.c.category,
    reg_t.c.priority,
    reg_t.c.refresh_interval,
    reg_t.c.schedule,
    reg_t.c.last_sync,
    reg_t.c.next_sync,
    reg_t.c.error_count,
    reg_t.c.last_error,
)


@dataclass
class SourceFilter:
    source_type: str | None = None
    status: str | None = None
    category: str | None = None
    q: str | None = None

    def query(self) -> dict[str, str]:
        values = {
            "type": self.source_type,
            "status": self.status,
            "category": self.category,
            "q": self.q,
        }
        return {k: v for k, v in values.items() if v}


def _latest_runs() -> Any:
    """Per source: the id of its latest finished run and of a run in progress."""
    return (
        select(
            hist_t.c.source_id,
            func.max(case((hist_t.c.sync_status != "running", hist_t.c.id))).label("last_id"),
            func.max(case((hist_t.c.sync_status == "running", hist_t.c.id))).label("running_id"),
        )
        .group_by(hist_t.c.source_id)
        .subquery("latest")
    )


def source_rows(
    conn: Connection, flt: SourceFilter, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Every source matching ``flt`` with its latest finished run's outcome and counts,
    its cadence, whether it is failing and (subscription and push sources) its live
    state (:func:`factorysync.services.describe_sources`)."""
    latest = _latest_runs()
    last = hist_t.alias("last_run")
    stmt = (
        select(
            *LIST_COLUMNS,
            latest.c.running_id,
            last.c.sync_status.label("run_status"),
            last.c.records_processed,
            last.c.records_inserted,
            last.c.records_updated,
            last.c.records_deleted,
            last.c.records_rejected,
            last.c.sync_duration_ms,
            last.c.sync_started_at.label("run_started_at"),
        )
        .select_from(
            reg_t.outerjoin(latest, latest.c.source_id == reg_t.c.source_id).outerjoin(
                last, last.c.id == latest.c.last_id
            )
        )
        .order_by(reg_t.c.priority, reg_t.c.source_id)
    )
    if flt.source_type:
        stmt = stmt.where(reg_t.c.source_type == flt.source_type)
    if flt.category:
        stmt = stmt.where(reg_t.c.category == flt.category)
    if flt.status == "running":
        stmt = stmt.where(latest.c.running_id.is_not(None))
    elif flt.status == "failing":
        stmt = stmt.where(reg_t.c.status == "active", reg_t.c.error_count > 0)
    elif flt.status:
        stmt = stmt.where(reg_t.c.status == flt.status)
    if flt.q:
        pattern = f"%{flt.q.strip().lower()}%"
        stmt = stmt.where(
            or_(func.lower(reg_t.c.source_id).like(pattern), func.lower(reg_t.c.name).like(pattern))
        )
    alerts = alert_records.active_by_source(conn)
    rows = []
    for r in conn.execute(stmt).mappings():
        row = plain(r)
        row["shown_status"] = "running" if row["running_id"] else row["status"]
        row["alerts"] = alerts.get(row["source_id"], 0)
        rows.append(row)
    # Cadence, failing and live state: the same as the CLI and the API show.
    return services.describe_sources(conn, rows, settings or get_settings(), frequencies(conn))


def filter_choices(conn: Connection) -> dict[str, list[str]]:
    types = conn.execute(select(reg_t.c.source_type).distinct().order_by(reg_t.c.source_type))
    cats = conn.execute(
        select(reg_t.c.category)
        .where(reg_t.c.category.is_not(None))
        .distinct()
        .order_by(reg_t.c.category)
    )
    return {"types": list(types.scalars()), "categories": list(cats.scalars())}


# -- overview ----------------------------------------------------------------------------
@dataclass
class Overview:
    summary: dict[str, Any]
    failing: list[dict[str, Any]]
    stalest: list[dict[str, Any]]
    hours: list[tuple[datetime, int, int]]  # (hour start UTC, rows processed, runs)
    alerts: list[dict[str, Any]] = field(default_factory=list)


def _hour_bucket(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return func.date_trunc("hour", hist_t.c.sync_started_at)
    return func.strftime("%Y-%m-%d %H:00:00", hist_t.c.sync_started_at)


def throughput(conn: Connection, now: datetime, hours: int = 24) -> list[tuple[datetime, int, int]]:
    """Rows processed and runs per hour over the last ``hours`` hours (oldest first)."""
    start = (now - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    bucket = _hour_bucket(conn).label("hour")
    rows = conn.execute(
        select(bucket, func.sum(hist_t.c.records_processed), func.count())
        .where(hist_t.c.sync_started_at >= start)
        .group_by(bucket)
    ).all()
    convert = UTCDateTime().process_result_value
    by_hour = {}
    for hour, processed, runs in rows:
        when = convert(hour, conn.dialect)
        if when is not None:
            by_hour[when] = (int(processed or 0), int(runs))
    result = []
    for i in range(hours):
        at = start + timedelta(hours=i)
        processed, runs = by_hour.get(at, (0, 0))
        result.append((at, processed, runs))
    return result


def failing_sources(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    stmt = (
        select(*LIST_COLUMNS)
        .where(or_(reg_t.c.status == "error", reg_t.c.error_count > 0))
        .order_by(
            case((reg_t.c.status == "error", 0), else_=1),
            reg_t.c.error_count.desc(),
            reg_t.c.source_id,
        )
        .limit(limit)
    )
    return [plain(r) for r in conn.execute(stmt).mappings()]


def stalest_sources(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    stmt = (
        select(*LIST_COLUMNS)
        .where(reg_t.c.status.in_(("active", "error")))
        .order_by(reg_t.c.last_sync.asc().nulls_first(), reg_t.c.source_id)
        .limit(limit)
    )
    return [plain(r) for r in conn.execute(stmt).mappings()]


# -- source detail -----------------------------------------------------------------------
def runs_for_charts(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished runs, oldest first, with rows per second."""
    done = [r for r in runs if r["sync_status"] != "running"]
    done.reverse()
    for r in done:
        ms = r.get("sync_duration_ms") or 0
        r["rows_per_s"] = (r["records_processed"] / (ms / 1000)) if ms > 0 else 0.0
    return done


def running_now(conn: Connection, source_id: str) -> bool:
    return (
        conn.execute(
            select(hist_t.c.id).where(
                and_(hist_t.c.source_id == source_id, hist_t.c.sync_status == "running")
            )
        ).first()
        is not None
    )


def now() -> datetime:
    return utcnow()
