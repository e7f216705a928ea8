"""A source's lifecycle in the console: delete (with or without its rows), duplicate,
and reset where its reads stopped.

Each action is a page first (GET: what it will do, and a form) and a POST second, so
the confirmation works without script. POSTs carry the session's CSRF token like every
console form; delete and duplicate need an admin, reset an operator (as in the API).
The services do the work (:mod:`factorysync.services.lifecycle`,
:func:`factorysync.services.reset_source`) and record it in the infolog with
``console:<user>``.

A duplicate is made on the server: secrets are copied inside the store (decrypted and
encrypted again there), never sent to the browser, and the copy starts inactive. The
page then opens the copy's edit form, where secrets show as "***" and are kept on save.
Copying them through the add form instead would mean sending them to the browser, or
asking for them again.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from factorysync import services
from factorysync.engine.runner import AlreadyRunning
from factorysync.errors import ConfigError, NotFoundError, Problem
from factorysync.store.accounts import AlreadyExists
from factorysync.store.registry import get_source
from factorysync.web import messages
from factorysync.web.i18n import translator
from factorysync.web.pages import User, _ctx, _not_found, _stamp, _to_source
from factorysync.web.session import ConsoleUser, check_csrf
from factorysync.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(_stamp)])


def _busy(exc: AlreadyRunning, source_id: str, user: ConsoleUser) -> str:
    """Why the action must wait for a run: in English the service's own words (which
    run, on which worker, what to do about an open stream), else the table's text."""
    if user.language == "en":
        return str(exc)
    return translator(user.language)("source.already_running", id=source_id)


# -- delete --------------------------------------------------------------------------
def _delete_page(
    request: Request,
    user: ConsoleUser,
    plan: dict[str, Any],
    status: int = 200,
    error: str | None = None,
    drop_data: bool = False,
) -> Response:
    return render(
        request,
        "confirm_delete.html",
        user,
        user.language,
        status,
        plan=plan,
        error=error,
        drop_data=drop_data,
    )


@router.get("/sources/{source_id}/delete")
def confirm_delete(request: Request, source_id: str, user: User) -> Response:
    user.require("admin")
    try:
        plan = services.deletion_plan(_ctx(request).store, source_id)
    except NotFoundError:
        return _not_found(request, user, source_id)
    return _delete_page(request, user, plan)


@router.post("/sources/{source_id}/delete")
async def delete_source(request: Request, source_id: str, user: User) -> Response:
    form = await request.form()
    check_csrf(user, form.get("csrf"))
    user.require("admin")
    ctx = _ctx(request)
    drop_data = form.get("drop_data") == "1"
    try:
        result = await run_in_threadpool(
            lambda: services.delete_source(
                ctx.store, source_id, drop_data=drop_data, deleted_by=f"console:{user.username}"
            )
        )
    except NotFoundError:
        return _not_found(request, user, source_id)
    except AlreadyRunning as exc:
        try:
            plan = await run_in_threadpool(services.deletion_plan, ctx.store, source_id)
        except NotFoundError:
            return _not_found(request, user, source_id)
        return _delete_page(request, user, plan, 409, _busy(exc, source_id, user), drop_data)
    ctx.sources_changed()
    ctx.data_changed()
    return render(request, "source_deleted.html", user, user.language, result=result)


# -- duplicate -----------------------------------------------------------------------
def _duplicate_page(
    request: Request,
    user: ConsoleUser,
    source: dict[str, Any],
    new_id: str,
    name: str,
    status: int = 200,
    errors: list[str] | None = None,
) -> Response:
    return render(
        request,
        "confirm_duplicate.html",
        user,
        user.language,
        status,
        source=source,
        new_id=new_id,
        name=name,
        errors=errors or [],
    )


def _stored(request: Request, source_id: str) -> dict[str, Any]:
    with _ctx(request).store.connect() as conn:
        return get_source(conn, source_id)


@router.get("/sources/{source_id}/duplicate")
def confirm_duplicate(request: Request, source_id: str, user: User) -> Response:
    user.require("admin")
    t = translator(user.language)
    try:
        source = _stored(request, source_id)
    except NotFoundError:
        return _not_found(request, user, source_id)
    name = t("life.copy_name", name=source["name"])
    return _duplicate_page(request, user, source, services.default_copy_id(source_id), name)


@router.post("/sources/{source_id}/duplicate")
async def duplicate_source(request: Request, source_id: str, user: User) -> Response:
    form = await request.form()
    check_csrf(user, form.get("csrf"))
    user.require("admin")
    ctx = _ctx(request)
    new_id = str(form.get("new_id") or "").strip()
    name = str(form.get("name") or "").strip()
    try:
        change = await run_in_threadpool(
            lambda: services.duplicate_source(
                ctx.store,
                source_id,
                new_id,
                name=name or None,
                created_by=user.username,
                by=f"console:{user.username}",
            )
        )
    except NotFoundError:
        return _not_found(request, user, source_id)
    except (AlreadyExists, ConfigError) as exc:
        status = 409 if isinstance(exc, AlreadyExists) else 422
        # A taken id as a keyed problem: said again in the user's language.
        taken = Problem("", str(exc), "source_exists") if status == 409 else str(exc)
        said = getattr(exc, "problems", None) or [taken]
        problems = messages.problem_texts(said, translator(user.language))
        source = await run_in_threadpool(_stored, request, source_id)
        return _duplicate_page(request, user, source, new_id, name, status, problems)
    ctx.sources_changed()
    return RedirectResponse(f"/sources/{quote(change.source_id)}/edit", status_code=303)


# -- reset ---------------------------------------------------------------------------
def _reset_page(
    request: Request,
    user: ConsoleUser,
    source: dict[str, Any],
    status: int = 200,
    error: str | None = None,
) -> Response:
    return render(
        request, "confirm_reset.html", user, user.language, status, source=source, error=error
    )


@router.get("/sources/{source_id}/reset")
def confirm_reset(request: Request, source_id: str, user: User) -> Response:
    user.require("operator")
    try:
        source = _stored(request, source_id)
    except NotFoundError:
        return _not_found(request, user, source_id)
    return _reset_page(request, user, source)


@router.post("/sources/{source_id}/reset")
async def reset_source(request: Request, source_id: str, user: User) -> Response:
    form = await request.form()
    check_csrf(user, form.get("csrf"))
    user.require("operator")
    ctx = _ctx(request)
    t = translator(user.language)
    mapping = str(form.get("mapping") or "") or None
    try:
        result = await run_in_threadpool(
            lambda: services.reset_source(
                ctx.store, source_id, target_table=mapping, reset_by=f"console:{user.username}"
            )
        )
    except AlreadyRunning as exc:
        try:
            source = await run_in_threadpool(_stored, request, source_id)
        except NotFoundError:
            return _not_found(request, user, source_id)
        return _reset_page(request, user, source, 409, _busy(exc, source_id, user))
    except NotFoundError:
        return _not_found(request, user, source_id)
    tables = ", ".join(result["mappings"])
    done = "life.reset_stream_done" if result.get("stream") else "life.reset_done"
    return _to_source(source_id, t(done, tables=tables))
