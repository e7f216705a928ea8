"""The data browser's view of a request: which filters, order and page the URL asks for,
the links that change one of them, and each cell as the page shows it.

URLs use the data API's own parameters (``FIELD__gte=V``, ``order=-ts``, ``limit``,
``after``, ``since``; see :mod:`factorysync.services.dataquery`), so a page's address
and the API call that gives the same rows read alike. The filter form (a plain GET form)
sends its rows as ``f-col`` / ``f-op`` / ``f-val`` triplets, which the page turns into
those parameters; the browser's own parameters (``view-page``, ``view-live``) hold a
hyphen, which no column name can, so they never hide a column.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, tzinfo
from typing import Any
from urllib.parse import urlencode

import orjson

from factorysync.services.dataquery import MAX_LIMIT, OPERATORS

LIMITS = (25, 50, 100, 250, 500)
DEFAULT_LIMIT = 50
FORM_PARAMS = ("f-col", "f-op", "f-val")
TEXT_SHOWN = 300  # characters of a long text shown in a cell (all of it in the title)
NUMERIC = ("integer", "float", "decimal")


@dataclass
class GridView:
    filters: list[tuple[str, str]] = field(default_factory=list)
    order: str | None = None
    limit: int = DEFAULT_LIMIT
    after: str | None = None
    offset: int = 0
    since: str | None = None
    page_no: int = 1
    live: bool = False
    from_form: bool = False  # the filter form sent triplets: redirect to the plain URL
    problems: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def params(self, *, paging: bool = True) -> list[tuple[str, str]]:
        found = list(self.filters)
        if self.since:
            found.append(("since", self.since))
        if self.order:
            found.append(("order", self.order))
        if self.limit != DEFAULT_LIMIT:
            found.append(("limit", str(self.limit)))
        if paging and self.after:
            found.append(("after", self.after))
        if paging and self.offset:
            found.append(("offset", str(self.offset)))
        if paging and self.page_no > 1:
            found.append(("view-page", str(self.page_no)))
        if self.live:
            found.append(("view-live", "1"))
        return found

    def url(self, base: str, **changes: Any) -> str:
        view = replace(self, **changes) if changes else self
        query = urlencode(view.params())
        return f"{base}?{query}" if query else base

    def export_query(self) -> str:
        return urlencode(self.params(paging=False))

    @property
    def first_row(self) -> int:
        return self.offset + (self.page_no - 1) * self.limit + 1

    def primary(self) -> tuple[str | None, bool]:
        """The first column of the order, and whether it is descending."""
        first = (self.order or "").split(",")[0].strip()
        return (first.lstrip("-+") or None), first.startswith("-")

    def sort_url(self, base: str, column: str) -> str:
        name, descending = self.primary()
        order = f"-{column}" if name == column and not descending else column
        return self.url(base, order=order, after=None, offset=0, page_no=1)


def _int(raw: str, low: int, high: int) -> int | None:
    text = raw.strip()
    if not text.isdigit():
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_view(items: Sequence[tuple[str, str]]) -> GridView:
    """The view a query string asks for; what does not parse is listed in ``problems``."""
    view = GridView()
    columns: list[str] = []
    ops: list[str] = []
    values: list[str] = []
    for key, raw in items:
        if key == "limit":
            limit = _int(raw, 1, MAX_LIMIT)
            if limit is None:
                view.problems.append(("limit", "limit", {"max": MAX_LIMIT}))
            else:
                view.limit = limit
        elif key == "offset":
            view.offset = _int(raw, 0, 10**9) or 0
        elif key == "order":
            view.order = raw or None
        elif key == "after":
            view.after = raw or None
        elif key == "since":
            view.since = raw or None
        elif key == "view-page":
            view.page_no = _int(raw, 1, 10**9) or 1
        elif key == "view-live":
            view.live = raw not in ("", "0")
        elif key in FORM_PARAMS:
            view.from_form = True
            {"f-col": columns, "f-op": ops, "f-val": values}[key].append(raw)
        else:
            view.filters.append((key, raw))
    for column, op, value in zip(columns, ops, values, strict=False):
        if column and value != "":
            op = op if op in OPERATORS else "eq"
            view.filters.append((column if op == "eq" else f"{column}__{op}", value))
    return view


def split_filter(param: str) -> tuple[str, str]:
    """``"ts__gte"`` → ("ts", "gte"); ``"line"`` → ("line", "eq")."""
    name, _, op = param.partition("__")
    return name, op or "eq"


def since_moment(view: GridView) -> datetime | None:
    if not view.since:
        return None
    try:
        return datetime.fromisoformat(view.since.strip())
    except ValueError:
        view.problems.append(("since", "value", {"value": view.since, "kind": "datetime"}))
        return None


@dataclass
class Cell:
    text: str
    css: str = ""
    title: str = ""


def cell(kind: str, value: Any, zone: tzinfo, t: Callable[..., str]) -> Cell:
    """A value as the grid shows it: times in the plant's zone, numbers right-aligned."""
    if value is None:
        return Cell("—", "null")
    if isinstance(value, datetime):
        local = value.astimezone(zone)
        return Cell(local.strftime("%Y-%m-%d %H:%M:%S"), "time", local.isoformat())
    if isinstance(value, date):
        return Cell(value.isoformat(), "time")
    if isinstance(value, bool):
        return Cell(t("data.true") if value else t("data.false"), "bool")
    if kind in NUMERIC or isinstance(value, int | float):
        return Cell(str(value), "num")
    if kind == "json" or isinstance(value, dict | list):
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    else:
        text = str(value)
    if len(text) > TEXT_SHOWN:
        return Cell(text[:TEXT_SHOWN] + "…", "long", text)
    return Cell(text, "json" if kind == "json" else "")


def row_key(values: Sequence[Any]) -> str:
    """A short fingerprint of a row, so live mode can mark the rows it had not shown."""
    blob = orjson.dumps(list(values), default=str)
    return hashlib.blake2b(blob, digest_size=8).hexdigest()
