"""What the console's data browser lists: every target table, who writes it, how many
rows it holds and when it last changed.

Counting the rows of a big table on every page view would cost a full scan each time, so
a count is exact only up to :data:`COUNT_CAP` rows (``SELECT count(*)`` over a
``LIMIT``-ed subquery: the work stops at the cap). Past it, PostgreSQL's planner estimate
(``pg_class.reltuples``, refreshed by autovacuum/ANALYZE) is shown as an estimate; SQLite
has none, so the page says "more than" the cap. The last change is ``max(_synced_at)``,
which the ``_synced_at`` index answers without a scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, literal, select, text, union_all

from factorysync.services.tables import TableCache, TableInfo
from factorysync.store.schema import data_source_mappings as maps_t
from factorysync.store.schema import data_source_registry as reg_t

COUNT_CAP = 10_000
STATS_BATCH = 200  # tables per statement (SQLite allows 500 terms in a compound SELECT)


@dataclass(frozen=True)
class RowCount:
    """``n`` rows: exact, an estimate (``estimated``), or at least ``n`` (``more``)."""

    n: int
    estimated: bool = False
    more: bool = False


@dataclass
class TableSummary:
    name: str
    sources: list[tuple[str, str]] = field(default_factory=list)  # (source_id, name)
    exists: bool = False
    rows: RowCount | None = None
    last_change: datetime | None = None
    columns: int = 0


def _stats(conn: Connection, infos: list[TableInfo], cap: int) -> dict[str, tuple[int, Any]]:
    """Per table: its visible rows counted up to ``cap`` + 1, and ``max(_synced_at)``, in
    one statement for a batch of tables (a round trip per table would make the page's
    time grow with the number of tables)."""
    found: dict[str, tuple[int, Any]] = {}
    for first in range(0, len(infos), STATS_BATCH):
        parts = []
        for info in infos[first : first + STATS_BATCH]:
            table = info.table
            capped = (
                select(literal(1))
                .select_from(table)
                .where(table.c._deleted_at.is_(None))
                .limit(cap + 1)
                .subquery()
            )
            parts.append(
                select(
                    literal(info.name).label("name"),
                    select(func.count()).select_from(capped).scalar_subquery().label("n"),
                    select(func.max(table.c._synced_at)).scalar_subquery().label("last"),
                )
            )
        for name, n, last in conn.execute(union_all(*parts)):
            found[str(name)] = (int(n), last)
    return found


def _row_count(conn: Connection, info: TableInfo, n: int, cap: int) -> RowCount:
    """The count shown for ``n`` rows counted up to ``cap`` + 1 (see the module's docstring)."""
    if n <= cap:
        return RowCount(n)
    if conn.dialect.name == "postgresql":
        quoted = conn.dialect.identifier_preparer.quote(info.name)
        estimate = conn.execute(
            text("SELECT reltuples FROM pg_catalog.pg_class WHERE oid = to_regclass(:name)"),
            {"name": quoted},
        ).scalar()
        if estimate is not None and estimate > cap:
            return RowCount(int(estimate), estimated=True)
    return RowCount(cap, more=True)


def _as_time(value: Any) -> datetime | None:
    """``max(_synced_at)`` as read through a compound statement: SQLite hands the stored
    text back without the column's type."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None


def writers(conn: Connection) -> dict[str, list[tuple[str, str]]]:
    """Target table → the sources whose mappings write it, as (source_id, name)."""
    rows = conn.execute(
        select(maps_t.c.target_table, reg_t.c.source_id, reg_t.c.name)
        .join(reg_t, reg_t.c.id == maps_t.c.registry_id)
        .order_by(maps_t.c.target_table, reg_t.c.source_id)
    ).all()
    found: dict[str, list[tuple[str, str]]] = {}
    for table, source_id, name in rows:
        pairs = found.setdefault(str(table), [])
        if (source_id, name) not in pairs:
            pairs.append((str(source_id), str(name)))
    return found


def table_summaries(
    conn: Connection, tables: TableCache, source_id: str | None = None
) -> list[TableSummary]:
    """Every target table a mapping names (only ``source_id``'s when given), by name."""
    cap = COUNT_CAP
    summaries: list[TableSummary] = []
    listed = [
        (name, sources)
        for name, sources in sorted(writers(conn).items())
        if source_id is None or source_id in {s for s, _ in sources}
    ]
    infos = tables.get_many(conn, [name for name, _ in listed])  # not synced yet: missing
    found: list[tuple[TableSummary, TableInfo]] = []
    for name, sources in listed:
        summary = TableSummary(name, sources)
        summaries.append(summary)
        info = infos.get(name)
        if info is None:
            continue
        summary.exists = True
        summary.columns = len(info.columns)
        found.append((summary, info))
    stats = _stats(conn, [info for _, info in found], cap)
    for summary, info in found:
        n, last = stats[info.name]
        summary.rows = _row_count(conn, info, n, cap)
        summary.last_change = _as_time(last)
    return summaries
