"""The console's data browser: every target table and every source's rows, paged,
sorted, filtered, exported and followed live.

    GET /data                       target tables: who writes each, rows, last change
    GET /data?source=ID             the tables one source writes
    GET /data/{table}               the grid (same filters and order as the data API)
    GET /data/{table}/export.csv    every row the filters match, streamed (also .xlsx)
    GET /data/{table}/events        Server-Sent Events: a "change" per committed write

Roles are the data API's: reading data needs the viewer role, which every console user
has. Paging, sorting and filtering are plain links and a GET form; ``static/data.js``
(loaded by the grid page only) adds live mode: it listens to ``/events`` (the console's
session cookie, where ``/api/stream`` wants a bearer token) and re-reads the page.

The grid pages by keyset (``after``, the data API's cursor) in an order the table's
indexes serve: by default the row identity (its unique key index). The table list counts
rows only up to a cap (see :mod:`factorysync.services.data_browse`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response, StreamingResponse

from factorysync.errors import NotFoundError
from factorysync.realtime.bus import bus
from factorysync.services.data_browse import COUNT_CAP, table_summaries, writers
from factorysync.services.data_export import csv_chunks, xlsx_chunks, xlsx_missing
from factorysync.services.dataquery import OPERATORS, PageQuery, PageRequest, QueryProblems
from factorysync.services.stream_access import ENDED, StreamAccess
from factorysync.services.tables import TableCache, TableInfo
from factorysync.store.store import Store
from factorysync.store.types import utcnow
from factorysync.web.data_view import (
    LIMITS,
    GridView,
    cell,
    parse_view,
    row_key,
    since_moment,
    split_filter,
)
from factorysync.web.i18n import translator
from factorysync.web.session import ConsoleUser, current_user
from factorysync.web.templating import render

TABLE = r"^[a-z_][a-z0-9_]{0,62}$"
KEEPALIVE_S = 15.0
POLL_S = 0.5


def _stamp(request: Request) -> None:
    request.scope["fs_started"] = time.perf_counter()


async def reader(user: Annotated[ConsoleUser, Depends(current_user)]) -> ConsoleUser:
    """A console user who may read data: the data API's ``viewer`` role."""
    user.require("viewer")
    return user


router = APIRouter(include_in_schema=False, dependencies=[Depends(_stamp)])
Reader = Annotated[ConsoleUser, Depends(reader)]
Table = Annotated[str, Path(pattern=TABLE)]


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


def _store(request: Request) -> Store:
    return _ctx(request).store  # type: ignore[no-any-return]


def _tables(request: Request) -> TableCache:
    return _ctx(request).tables  # type: ignore[no-any-return]


def _zone(request: Request) -> ZoneInfo:
    return ZoneInfo(_store(request).settings.timezone)


@router.get("/data")
def data_tables(
    request: Request,
    user: Reader,
    source: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    with _store(request).connect() as conn:
        summaries = table_summaries(conn, _tables(request), source or None)
    return render(
        request,
        "data.html",
        user,
        user.language,
        summaries=summaries,
        source=source or "",
        cap=COUNT_CAP,
    )


def _problem_text(t: Any, param: str, code: str, values: dict[str, Any]) -> str:
    if code == "value":
        expected = t(f"data.expect.{values.get('kind', 'datetime')}")
        return str(
            t("data.err.value", param=param, value=repr(values.get("value")), expected=expected)
        )
    if code in ("column", "operator", "json_order", "limit"):
        return str(t(f"data.err.{code}", param=param, **values))
    return str(t(f"data.err.{code}"))


def _grid(
    request: Request, table: str, user: ConsoleUser, view: GridView
) -> tuple[TableInfo | None, dict[str, Any]]:
    """The table (None: no such table) and the page's rows; a parameter that does not
    fit adds to ``view.problems`` and leaves the rows out."""
    zone = _zone(request)
    since = since_moment(view)
    context: dict[str, Any] = {"rows": [], "has_more": False, "next_after": None}
    with _store(request).connect() as conn:
        try:
            info = _tables(request).get(conn, table)
        except NotFoundError:
            return None, context
        context["sources"] = writers(conn).get(table, [])
        wanted = PageRequest(view.limit, view.offset, view.after, view.order, since, view.filters)
        try:
            query = PageQuery(info, wanted, zone)
        except QueryProblems as exc:
            view.problems.extend(exc.codes)
            return info, context
        if view.problems:
            return info, context
        page = query.fetch(conn)
    t = translator(user.language)
    kinds = [info.kinds[c] for c in info.columns]
    context["rows"] = [
        {
            "key": row_key(list(item.values())),
            "cells": [cell(k, v, zone, t) for k, v in zip(kinds, item.values(), strict=True)],
        }
        for item in page.items
    ]
    context["has_more"] = page.has_more
    context["next_after"] = page.next_after
    return info, context


def _not_found(request: Request, user: ConsoleUser, table: str) -> Response:
    t = translator(user.language)
    message = t("data.not_found", name=table)
    return render(request, "error.html", user, user.language, 404, message=message)


def _page(
    request: Request, table: str, user: ConsoleUser, view: GridView, notice: str = ""
) -> Response:
    info, context = _grid(request, table, user, view)
    if info is None:
        return _not_found(request, user, table)
    t = translator(user.language)
    problems = [_problem_text(t, p, code, values) for p, code, values in view.problems]
    filters = [(*split_filter(param), value) for param, value in view.filters]
    return render(
        request,
        "data_table.html",
        user,
        user.language,
        422 if problems else 200,
        info=info,
        view=view,
        base=f"/data/{table}",
        filters=filters,
        operators=list(OPERATORS),
        limits=LIMITS,
        problems=problems,
        notice=notice,
        **context,
    )


@router.get("/data/{table}")
def data_table(request: Request, table: Table, user: Reader) -> Response:
    view = parse_view(request.query_params.multi_items())
    if view.from_form:
        # The filter form's triplets, as the plain address a user can bookmark or share.
        plain = view.url(f"/data/{table}", from_form=False, after=None, offset=0, page_no=1)
        return RedirectResponse(plain, status_code=303)
    return _page(request, table, user, view)


@router.get("/data/{table}/export.{fmt}")
def data_export(request: Request, table: Table, fmt: str, user: Reader) -> Response:
    if fmt not in ("csv", "xlsx"):
        return _not_found(request, user, f"{table}/export.{fmt}")
    view = parse_view(request.query_params.multi_items())
    zone = _zone(request)
    with _store(request).connect() as conn:
        try:
            info = _tables(request).get(conn, table)
        except NotFoundError:
            return _not_found(request, user, table)
    since = since_moment(view)
    query: PageQuery | None = None
    if since is not None or not view.since:
        # Paging (limit, after, offset) does not narrow an export: every match is in it.
        wanted = PageRequest(1, 0, None, view.order, since, view.filters)
        with suppress(QueryProblems):
            query = PageQuery(info, wanted, zone)
    if query is None:  # the grid explains what is wrong
        return _page(request, table, user, parse_view(request.query_params.multi_items()))
    stamp = utcnow().astimezone(zone).strftime("%Y%m%d-%H%M")
    name = f"{table}-{stamp}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    store = _store(request)
    if fmt == "csv":
        chunks = csv_chunks(store, query, zone)
        return StreamingResponse(chunks, media_type="text/csv; charset=utf-8", headers=headers)
    missing = xlsx_missing()
    if missing is not None:
        t = translator(user.language)
        return _page(request, table, user, view, notice=t("data.xlsx_missing", command=missing))
    about = [("table", table), *view.filters, ("order", view.order or ""), ("exported at", stamp)]
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return StreamingResponse(
        xlsx_chunks(store, query, zone, about), media_type=xlsx, headers=headers
    )


def _frame(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: ".encode() + orjson.dumps(data, default=str) + b"\n\n"


@router.get("/data/{table}/events")
async def data_events(request: Request, table: Table, user: Reader) -> Response:
    """A "change" event per committed write of the table (the rows themselves are read
    again through the page, with its filters and order)."""

    def known() -> bool:
        with _store(request).connect() as conn:
            try:
                _tables(request).get(conn, table)
            except NotFoundError:
                return table in writers(conn)
        return True

    if not await run_in_threadpool(known):
        return Response(f"no target table {table!r}", status_code=404, media_type="text/plain")
    ctx = _ctx(request)
    # The session is checked again while the page stays open (logged out: the stream ends).
    access = StreamAccess(_store(request), user.token, "viewer", None)

    async def events() -> AsyncIterator[bytes]:
        async with bus.subscribe_async(table) as sub:
            yield b"retry: 3000\n" + _frame("ready", {"table": table})
            quiet = 0.0
            while not getattr(ctx, "closing", False):
                if not await access.still_valid():
                    yield _frame("end", {"reason": ENDED})
                    return
                event = await sub.get(POLL_S)
                if event is None:
                    quiet += POLL_S
                    if quiet >= KEEPALIVE_S:
                        quiet = 0.0
                        yield b": keep-alive\n\n"
                    continue
                quiet = 0.0
                rows = event.get("rows")
                summary = {
                    "source_id": event.get("source_id"),
                    "rows": len(rows) if isinstance(rows, list) else None,
                    "inserted": event.get("inserted"),
                    "updated": event.get("updated"),
                    "deleted": event.get("deleted"),
                }
                yield _frame("change", summary)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
