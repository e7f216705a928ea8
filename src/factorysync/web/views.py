"""What each console page shows, read with a few set-based queries (never one per source).

The pages stay fast with hundreds of sources and a long run history: the sources list is
paged in SQL (a count, a page of the registry, then the latest runs, alerts and mappings of
that page's sources only); the overview aggregates in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, or_, select

from factorysync import services
from factorysync.settings import Settings, get_settings
from factorysync.store.db import plain
from factorysync.store.schema import alerts as alerts_t
from factorysync.store.schema import data_source_mappings as maps_t
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import sites as sites_t
from factorysync.store.types import UTCDateTime, utcnow

# The registry's statuses, then two the list filters by: a run in progress, and active
# sources whose last run failed (still 'active' until the circuit opens).
PAGE_SIZE = 50  # sources a page of the list shows
SOURCE_STATUSES = ("active", "inactive", "error", "maintenance", "running", "failing")
LIST_COLUMNS = (
    reg_t.c.source_id,
    reg_t.c.name,
    reg_t.c.source_type,
    reg_t.c.connection_type,
    reg_t.c.status,
    reg_t.c.category,
    reg_t.c.site,
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
    site: str | None = None

    def query(self) -> dict[str, str]:
        values = {
            "type": self.source_type,
            "status": self.status,
            "category": self.category,
            "site": self.site,
            "q": self.q,
        }
        return {k: v for k, v in values.items() if v}


def health_rank() -> Any:
    """Sort key putting the sources that need a look first: circuit open (status
    ``error``) 0, active whose last run failed 1, the rest 2."""
    return case(
        (reg_t.c.status == "error", 0),
        (and_(reg_t.c.status == "active", reg_t.c.error_count > 0), 1),
        else_=2,
    )


def page_links(current: int, pages: int, around: int = 2) -> list[int | None]:
    """The page numbers to link: the first, the last and ``around`` either side of the
    current one; None where numbers are left out (shown as …)."""
    keep = {1, pages, *range(current - around, current + around + 1)}
    shown: list[int | None] = []
    for n in sorted(k for k in keep if 1 <= k <= pages):
        if shown and shown[-1] is not None and n > shown[-1] + 1:
            shown.append(None)
        shown.append(n)
    return shown


@dataclass
class Paged:
    """One page of a list (sources, alerts): its rows, how many match in all, and where
    the page sits among the others."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    size: int

    @property
    def first_shown(self) -> int:
        return (self.page - 1) * self.size + 1 if self.rows else 0

    @property
    def last_shown(self) -> int:
        return (self.page - 1) * self.size + len(self.rows)


def _clamp(total: int, page: int, size: int) -> tuple[int, int]:
    """(the page to show, the page count): past the end, the last; before it, the first."""
    pages = max(1, -(-total // size))
    return min(max(page, 1), pages), pages


def _matching(flt: SourceFilter) -> list[Any]:
    """The registry conditions of ``flt`` (a run in progress: a ``running`` history row)."""
    found: list[Any] = []
    if flt.source_type:
        found.append(reg_t.c.source_type == flt.source_type)
    if flt.category:
        found.append(reg_t.c.category == flt.category)
    if flt.site:
        found.append(reg_t.c.site == flt.site)
    if flt.status == "running":
        running = select(hist_t.c.source_id).where(hist_t.c.sync_status == "running")
        found.append(reg_t.c.source_id.in_(running))
    elif flt.status == "failing":
        found.extend((reg_t.c.status == "active", reg_t.c.error_count > 0))
    elif flt.status:
        found.append(reg_t.c.status == flt.status)
    if flt.q:
        pattern = f"%{flt.q.strip().lower()}%"
        found.append(
            or_(func.lower(reg_t.c.source_id).like(pattern), func.lower(reg_t.c.name).like(pattern))
        )
    return found


def _last_runs(conn: Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per source of ``ids``: its latest finished run's outcome and counts, and the id of
    a run in progress (``running_id``), read for these sources only."""
    latest = (
        select(
            hist_t.c.source_id,
            func.max(case((hist_t.c.sync_status != "running", hist_t.c.id))).label("last_id"),
            func.max(case((hist_t.c.sync_status == "running", hist_t.c.id))).label("running_id"),
        )
        .where(hist_t.c.source_id.in_(ids))
        .group_by(hist_t.c.source_id)
        .subquery("latest")
    )
    last = hist_t.alias("last_run")
    stmt = select(
        latest.c.source_id,
        latest.c.running_id,
        last.c.sync_status.label("run_status"),
        last.c.records_processed,
        last.c.records_inserted,
        last.c.records_updated,
        last.c.records_deleted,
        last.c.records_rejected,
        last.c.sync_duration_ms,
        last.c.sync_started_at.label("run_started_at"),
    ).select_from(latest.outerjoin(last, last.c.id == latest.c.last_id))
    return {r["source_id"]: plain(r) for r in conn.execute(stmt).mappings()}


def _active_alerts(conn: Connection, ids: list[str]) -> dict[str, int]:
    """Alerts that are not resolved, per source of ``ids``."""
    rows = conn.execute(
        select(alerts_t.c.source_id, func.count())
        .where(alerts_t.c.state != "resolved", alerts_t.c.source_id.in_(ids))
        .group_by(alerts_t.c.source_id)
    )
    return {str(sid): int(n) for sid, n in rows}


def _frequencies(conn: Connection, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per source of ``ids``: its mappings' frequencies, for its cadence (the same as
    :func:`factorysync.store.registry.mapping_frequencies`, for these sources only)."""
    found: dict[str, list[dict[str, Any]]] = {sid: [] for sid in ids}
    rows = conn.execute(
        select(reg_t.c.source_id, maps_t.c.sync_frequency, maps_t.c.is_active)
        .join(reg_t, reg_t.c.id == maps_t.c.registry_id)
        .where(reg_t.c.source_id.in_(ids))
        .order_by(reg_t.c.source_id, maps_t.c.id)
    )
    for sid, frequency, active in rows:
        found[sid].append({"sync_frequency": frequency, "is_active": active is not False})
    return found


NO_RUN = dict.fromkeys(
    (
        "running_id",
        "run_status",
        "records_processed",
        "records_inserted",
        "records_updated",
        "records_deleted",
        "records_rejected",
        "sync_duration_ms",
        "run_started_at",
    )
)


def source_page(
    conn: Connection,
    flt: SourceFilter,
    page: int = 1,
    size: int = PAGE_SIZE,
    settings: Settings | None = None,
) -> Paged:
    """Page ``page`` (from 1; past the end: the last) of the sources matching ``flt``,
    failing sources first (:func:`health_rank`), paged in SQL, each with its latest
    finished run's outcome and counts, its cadence, whether it is failing and
    (subscription and push sources) its live state
    (:func:`factorysync.services.describe_sources`); ``unhealthy`` set on the failing.

    A fixed number of queries whatever the number of sources: the count, the page, then
    the runs, alerts and mappings of the page's sources only."""
    where = _matching(flt)
    total = int(conn.execute(select(func.count()).select_from(reg_t).where(*where)).scalar_one())
    page, pages = _clamp(total, page, size)
    stmt = (
        select(*LIST_COLUMNS)
        .where(*where)
        .order_by(health_rank(), reg_t.c.priority, reg_t.c.source_id)
        .limit(size)
        .offset((page - 1) * size)
    )
    rows = [plain(r) for r in conn.execute(stmt).mappings()]
    ids = [r["source_id"] for r in rows]
    runs = _last_runs(conn, ids)
    alerts = _active_alerts(conn, ids)
    for row in rows:
        row.update(runs.get(row["source_id"], NO_RUN))
        row["shown_status"] = "running" if row["running_id"] else row["status"]
        row["alerts"] = alerts.get(row["source_id"], 0)
    # Cadence, failing and live state: the same as the CLI and the API show.
    described = services.describe_sources(
        conn, rows, settings or get_settings(), _frequencies(conn, ids)
    )
    for row in described:
        row["unhealthy"] = row["status"] == "error" or row["failing"]
    return Paged(described, total, page, pages, size)


def filter_choices(conn: Connection) -> dict[str, list[str]]:
    types = conn.execute(select(reg_t.c.source_type).distinct().order_by(reg_t.c.source_type))
    cats = conn.execute(
        select(reg_t.c.category)
        .where(reg_t.c.category.is_not(None))
        .distinct()
        .order_by(reg_t.c.category)
    )
    sites = conn.execute(select(sites_t.c.name).order_by(sites_t.c.name))
    return {
        "types": list(types.scalars()),
        "categories": list(cats.scalars()),
        "sites": list(sites.scalars()),
    }


# -- alerts ------------------------------------------------------------------------------
ALERT_COLUMNS = tuple(c for c in alerts_t.c if c.name not in ("notified_state", "notified_at"))


def alert_page(
    conn: Connection, states: list[str] | None, page: int = 1, size: int = PAGE_SIZE
) -> Paged:
    """Page ``page`` of the alerts in ``states`` (all when None), paged in SQL in the
    order of :func:`factorysync.alerts.records.list_alerts`: open, then acknowledged, then
    resolved; the most recently seen first within each. Delivery columns left out."""
    where = [alerts_t.c.state.in_(states)] if states else []
    total = int(conn.execute(select(func.count()).select_from(alerts_t).where(*where)).scalar_one())
    page, pages = _clamp(total, page, size)
    rank = case({"open": 0, "acknowledged": 1}, value=alerts_t.c.state, else_=2)
    stmt = (
        select(*ALERT_COLUMNS)
        .where(*where)
        .order_by(rank, alerts_t.c.last_seen_at.desc(), alerts_t.c.id.desc())
        .limit(size)
        .offset((page - 1) * size)
    )
    return Paged([plain(r) for r in conn.execute(stmt).mappings()], total, page, pages, size)


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
    # SQLite keeps the time as text, "YYYY-MM-DD HH:MM:SS.ffffff": its first 13
    # characters name the hour, at a third of strftime's cost over a long history.
    return func.substr(hist_t.c.sync_started_at, 1, 13)


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
        when = convert(f"{hour}:00:00" if isinstance(hour, str) else hour, conn.dialect)
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


def open_alerts(conn: Connection) -> int:
    """How many alerts are open (not acknowledged, not resolved)."""
    return int(conn.execute(select(func.count()).where(alerts_t.c.state == "open")).scalar_one())


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
