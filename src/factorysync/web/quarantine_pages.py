"""A source's quarantine in the console: a page of entries (newest first) with the total
and links to the other pages, the whole quarantine as CSV, replay and clear."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from factorysync import services
from factorysync.engine.runner import AlreadyRunning
from factorysync.errors import NotFoundError
from factorysync.store.store import Store
from factorysync.web.i18n import translator
from factorysync.web.pages import User, _ctx, _not_found, _stamp, _to_source
from factorysync.web.session import check_csrf
from factorysync.web.views import page_links

router = APIRouter(include_in_schema=False, dependencies=[Depends(_stamp)])
__all__ = ["page_links", "quarantine_view", "router"]
PAGE_SIZE = 50


def quarantine_view(
    store: Store, source_id: str, page: int, size: int = PAGE_SIZE
) -> dict[str, Any]:
    """Page ``page`` (from 1; past the end: the last) of the source's quarantine, most
    recently refused first, with the total, the page count and the links to show."""
    page = max(page, 1)
    view = services.quarantine_page(store, source_id, limit=size, offset=(page - 1) * size)
    pages = max(1, -(-int(view["total"]) // size))
    if page > pages:  # past the end: read the last page (the common case reads once)
        page = pages
        view = services.quarantine_page(store, source_id, limit=size, offset=(page - 1) * size)
    view.update(
        page=page,
        pages=pages,
        links=page_links(page, pages),
        first_shown=(page - 1) * size + 1 if view["entries"] else 0,
        last_shown=(page - 1) * size + len(view["entries"]),
    )
    return view


@router.get("/sources/{source_id}/quarantine.csv")
def quarantine_export(request: Request, source_id: str, user: User) -> Response:
    """Every entry, not only a page's."""
    store = _ctx(request).store
    try:
        everything = services.quarantine_page(store, source_id, limit=None)
    except NotFoundError:
        return _not_found(request, user, source_id)
    return Response(
        services.quarantine_csv(everything["entries"]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{source_id}-quarantine.csv"'},
    )


@router.post("/sources/{source_id}/quarantine/{action}")
async def quarantine_action(request: Request, source_id: str, action: str, user: User) -> Response:
    form = await request.form()
    check_csrf(user, form.get("csrf"))
    user.require("operator")
    if action not in ("replay", "clear"):
        return Response(f"quarantine action {action!r}: use replay or clear", status_code=404)
    ctx = _ctx(request)
    t = translator(user.language)
    who = f"console:{user.username}"
    try:
        if action == "clear":
            done = await run_in_threadpool(
                lambda: services.clear_quarantine(ctx.store, source_id, cleared_by=who)
            )
            return _to_source(source_id, t("source.cleared", n=done["removed"]))
        result = await run_in_threadpool(
            lambda: services.replay_quarantine(ctx.store, source_id, trigger=who[:32])
        )
    except AlreadyRunning:
        return _to_source(source_id, t("source.already_running", id=source_id))
    except NotFoundError:
        return _not_found(request, user, source_id)
    if result["records_inserted"] or result["records_updated"]:
        ctx.data_changed()
    notice = t(
        "source.replayed",
        run=result["run_id"],
        loaded=result["loaded"],
        still=result["still_rejected"],
        left=result["remaining"],
    )
    return _to_source(source_id, notice)
