"""Pages of a target table: filters, order, and offset or keyset pagination.

One query builder for every reader: the API (``GET /api/data/{target_table}``, which turns
:class:`QueryProblems` into its 422 answer) and the console's data browser (which shows
them on the page and exports every matching row with :meth:`PageQuery.rows`).

Query parameters (as the API spells them)::

    limit=100                   rows per page, 1 … 1000
    offset=0                    rows to skip; or, cheaper on deep pages:
    after=CURSOR                the ``next_after`` of the previous page (keyset pagination)
    order=-ts,machine_id        columns, '-' for descending; ties break on the row identity
    since=2026-01-05T07:00:00   rows changed (synced) at or after this time
    FIELD=V  FIELD__gte=V  FIELD__lte=V  FIELD__gt=V  FIELD__lt=V  FIELD__ne=V

Values are converted to the column's type before they reach SQL as bound parameters;
a time without an offset is in the plant's time zone. NULLs sort after every value when
ascending (first when descending) on every store, so pages are the same on SQLite and
PostgreSQL. Soft-deleted rows are never shown.
"""

from __future__ import annotations

import base64
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from sqlalchemy import Connection, Select, and_, false, or_, select
from sqlalchemy.sql.elements import ColumnElement

from factorysync.services.tables import TableInfo

MAX_LIMIT = 1000
PAGE_PARAMS = frozenset({"limit", "offset", "after", "order", "since"})
OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gte": operator.ge,
    "lte": operator.le,
    "gt": operator.gt,
    "lt": operator.lt,
}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def to_json(value: Any) -> Any:
    """orjson ``default``: numbers stay numbers, anything else becomes text."""
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def convert(kind: str, raw: Any, tz: tzinfo) -> Any:
    """``raw`` (query text, or a JSON value from a cursor) as a value of the column kind."""
    text = raw if isinstance(raw, str) else None
    if kind == "integer":
        try:
            if isinstance(raw, bool) or not isinstance(raw, int | str):
                raise ValueError
            number = int(raw)
        except ValueError:
            raise ValueError("is not an integer") from None
        if not -(2**63) <= number < 2**63:
            raise ValueError("is out of the 64-bit integer range")
        return number
    if kind in ("float", "decimal"):
        if isinstance(raw, bool):
            raise ValueError("is not a number")
        try:
            exact = Decimal(str(raw).strip())
        except InvalidOperation:
            raise ValueError("is not a number") from None
        if not exact.is_finite():
            raise ValueError("is not a finite number")
        return float(exact) if kind == "float" else exact
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        lowered = str(raw).strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ValueError("is not true or false")
    if kind == "datetime":
        if text is None:
            raise ValueError("is not a date and time")
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError("is not an ISO 8601 date and time") from None
        return in_utc(moment, tz)
    if kind == "date":
        if text is None:
            raise ValueError("is not a date")
        try:
            return date.fromisoformat(text.strip()[:10])
        except ValueError:
            raise ValueError("is not an ISO 8601 date") from None
    if kind == "json":
        raise ValueError("is a JSON column: it cannot be compared")
    text = raw if isinstance(raw, str) else str(raw)
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    return text


def in_utc(moment: datetime, tz: tzinfo) -> datetime:
    """An aware UTC time (a naive one is read in ``tz``); ValueError when out of range."""
    try:
        return (moment if moment.tzinfo else moment.replace(tzinfo=tz)).astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of the supported time range") from None


class QueryProblems(ValueError):
    """Every problem of a page request: ``problems`` as (parameter, message naming it)
    pairs; ``codes`` the same as (parameter, code, values), for a translated message."""

    def __init__(self, errors: list[tuple[str, str, str, dict[str, Any]]]) -> None:
        super().__init__("; ".join(message for _, message, _, _ in errors))
        self.problems = [(param, message) for param, message, _, _ in errors]
        self.codes = [(param, code, values) for param, _, code, values in errors]


@dataclass
class PageRequest:
    limit: int = 100
    offset: int = 0
    after: str | None = None
    order: str | None = None
    since: datetime | None = None
    filters: Sequence[tuple[str, str]] = ()
    # Only the rows forwarded from this site (the ``_site`` column of central tables:
    # check it first with :func:`check_site_filter`).
    site: str | None = None


SITE_COLUMN = "_site"


def check_site_filter(conn: Connection, info: TableInfo, site: str) -> str | None:
    """Why ``site=`` cannot filter ``info``'s table (it has no ``_site`` column: only
    central tables, which forwarded rows fill, have one), or None when it can. A site
    that is neither registered nor in the table's ``_site`` column is a NotFoundError."""
    from factorysync.errors import NotFoundError
    from factorysync.store.sites import check_site, known_sites

    if SITE_COLUMN not in info.table.c:
        return (
            f"site: {info.name} has no {SITE_COLUMN} column, so it cannot be filtered by site "
            "(only central tables, which rows forwarded from the sites fill, have one; "
            f"a column of its own is filtered with its name, e.g. {info.columns[0]}=…)"
        )
    try:
        check_site(conn, site)
    except NotFoundError:
        column = info.table.c[SITE_COLUMN]
        if conn.execute(select(column).where(column == site).limit(1)).first() is None:
            raise NotFoundError(
                f"no site {site[:40]!r} (known sites: {known_sites(conn)}), and no row of "
                f"{info.name} comes from it"
            ) from None
    return None


@dataclass
class Page:
    items: list[dict[str, Any]]
    has_more: bool
    next_after: str | None


class PageQuery:
    """One validated page request against one table (QueryProblems lists what is wrong);
    :meth:`fetch` runs it, :meth:`rows` streams every matching row."""

    def __init__(self, info: TableInfo, request: PageRequest, tz: tzinfo) -> None:
        self.info = info
        self.request = request
        self.tz = tz
        self.errors: list[tuple[str, str, str, dict[str, Any]]] = []
        self.order = self._order()
        self.conditions = self._filters()
        self.after = self._after()
        if request.after is not None and request.offset:
            self._fail("offset", "offset: use either offset or after, not both", "offset")
        if self.errors:
            raise QueryProblems(self.errors)

    def _fail(self, param: str, message: str, code: str, **values: Any) -> None:
        self.errors.append((param, message, code, values))

    def _column(self, name: str, param: str) -> str | None:
        if name not in self.info.kinds:
            shown = ", ".join(self.info.columns)
            self._fail(
                param,
                f"{param}: {self.info.name} has no column {name!r} (columns: {shown})",
                "column",
                name=name,
            )
            return None
        return name

    def _order(self) -> list[tuple[str, bool]]:
        wanted: list[tuple[str, bool]] = []
        for part in (self.request.order or "").split(","):
            name = part.strip()
            if not name:
                continue
            descending = name.startswith("-")
            name = name.lstrip("-+")
            if self._column(name, "order") is None:
                continue
            if self.info.kinds[name] == "json":
                message = f"order: {name!r} is a JSON column and cannot be sorted"
                self._fail("order", message, "json_order", name=name)
                continue
            if name not in {n for n, _ in wanted}:
                wanted.append((name, descending))
        for name in self.info.identity:
            if name not in {n for n, _ in wanted}:
                wanted.append((name, False))
        return wanted

    def _filters(self) -> list[ColumnElement[bool]]:
        table = self.info.table
        conditions: list[ColumnElement[bool]] = [table.c._deleted_at.is_(None)]
        if self.request.since is not None:
            try:
                conditions.append(table.c._synced_at >= in_utc(self.request.since, self.tz))
            except ValueError as exc:
                self._fail("since", f"since: {exc}", "value", value=self.request.since)
        if self.request.site is not None:
            conditions.append(table.c[SITE_COLUMN] == self.request.site)
        for param, raw in self.request.filters:
            name, _, op = param.partition("__")
            op = op or "eq"
            if op not in OPERATORS:
                message = f"{param}: unknown operator {op!r} (use {', '.join(OPERATORS)})"
                self._fail(param, message, "operator", op=op)
                continue
            if self._column(name, param) is None:
                continue
            try:
                value = convert(self.info.kinds[name], raw, self.tz)
            except ValueError as exc:
                kind = self.info.kinds[name]
                self._fail(param, f"{param}: {raw!r} {exc}", "value", value=raw, kind=kind)
                continue
            conditions.append(OPERATORS[op](table.c[name], value))
        return conditions

    def _signature(self) -> str:
        return ",".join(("-" if d else "") + n for n, d in self.order)

    def _after(self) -> ColumnElement[bool] | None:
        token = self.request.after
        if token is None:
            return None
        try:
            padded = token + "=" * (-len(token) % 4)
            signature, values = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            if signature != self._signature() or len(values) != len(self.order):
                raise ValueError
            typed = [
                None if v is None else convert(self.info.kinds.get(n, "string"), v, self.tz)
                for (n, _), v in zip(self.order, values, strict=True)
            ]
        except (ValueError, TypeError, UnicodeError, orjson.JSONDecodeError):
            message = "after: not a cursor of this table and order (use next_after)"
            self._fail("after", message, "after")
            return None
        return self._beyond(typed)

    def _beyond(self, values: list[Any]) -> ColumnElement[bool]:
        """Rows after ``values`` in the order (NULL counts as larger than any value)."""
        table = self.info.table
        terms: list[ColumnElement[bool]] = []
        ties: list[ColumnElement[bool]] = []
        for (name, descending), value in zip(self.order, values, strict=True):
            column = table.c[name]
            later: ColumnElement[bool]
            if value is None:
                later = column.is_not(None) if descending else false()
                same = column.is_(None)
            else:
                later = column < value if descending else or_(column > value, column.is_(None))
                same = column == value
            terms.append(and_(*ties, later))
            ties.append(same)
        return or_(*terms)

    def statement(self, source_id: str | None = None, *, paged: bool = True) -> Select[Any]:
        """The page's SELECT; ``paged=False``: every matching row, in the same order."""
        table = self.info.table
        shown = list(self.info.columns)
        extra = [n for n, _ in self.order if n not in shown]
        stmt = select(*(table.c[c] for c in [*shown, *extra])).where(*self.conditions)
        if source_id is not None:
            stmt = stmt.where(table.c._source_id == source_id)
        if self.after is not None and paged:
            stmt = stmt.where(self.after)
        for name, descending in self.order:
            column = table.c[name]
            stmt = stmt.order_by(
                column.desc().nulls_first() if descending else column.asc().nulls_last()
            )
        if not paged:
            return stmt
        return stmt.limit(self.request.limit + 1).offset(self.request.offset or None)

    def rows(
        self, conn: Connection, source_id: str | None = None, chunk: int = 1000
    ) -> Iterator[tuple[Any, ...]]:
        """Every row the filters match (paging ignored), as tuples of :attr:`TableInfo.columns`,
        read from the store ``chunk`` rows at a time: memory does not grow with the table."""
        width = len(self.info.columns)
        options = conn.execution_options(stream_results=True, yield_per=chunk)
        result = options.execute(self.statement(source_id, paged=False))
        for batch in result.partitions(chunk):
            for row in batch:
                yield tuple(row[:width])

    def fetch(self, conn: Connection, source_id: str | None = None) -> Page:
        rows = conn.execute(self.statement(source_id)).all()
        has_more = len(rows) > self.request.limit
        rows = rows[: self.request.limit]
        width = len(self.info.columns)
        names = self.info.columns
        items = [dict(zip(names, row[:width], strict=True)) for row in rows]
        next_after = None
        if has_more and rows:
            last = rows[-1]._mapping
            values = [last[n] for n, _ in self.order]
            blob = orjson.dumps([self._signature(), values], default=str)
            next_after = base64.urlsafe_b64encode(blob).decode("ascii").rstrip("=")
        return Page(items, has_more, next_after)
