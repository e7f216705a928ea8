"""Console pages: login, overview, data resources, source detail, alerts.

Every page needs a session (else it redirects to the login page); every POST needs the
form's CSRF token and the role the action needs — the same roles as the API: viewers
read, operators also sync, test and acknowledge alerts, admins change sources.
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from factorysync import services
from factorysync.alerts import records as alert_records
from factorysync.api.context import ApiContext
from factorysync.engine.runner import AlreadyRunning
from factorysync.errors import NotFoundError
from factorysync.security.throttle import LoginThrottled
from factorysync.store.registry import get_source
from factorysync.web import session, views
from factorysync.web.charts import hourly_chart, run_charts
from factorysync.web.i18n import LANGUAGES, translator
from factorysync.web.session import ConsoleUser, check_csrf, current_user
from factorysync.web.templating import render


def _stamp(request: Request) -> None:
    request.scope["fs_started"] = time.perf_counter()


router = APIRouter(include_in_schema=False, dependencies=[Depends(_stamp)])
User = Annotated[ConsoleUser, Depends(current_user)]


def _ctx(request: Request) -> ApiContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def _back(request: Request, fallback: str = "/") -> str:
    return session.safe_next(request.query_params.get("next") or fallback)


# -- login ---------------------------------------------------------------------------
@router.get("/login")
def login_page(request: Request, next: str = "/", error: str | None = None) -> Response:
    lang = request.query_params.get("lang") or session.guest_language(request)
    lang = lang if lang in LANGUAGES else "en"
    token = session.new_login_csrf()
    response = render(
        request, "login.html", None, lang, next=session.safe_next(next), csrf=token, error=error
    )
    response.set_cookie(
        session.LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login"
    )
    if request.query_params.get("lang") in LANGUAGES:
        session.set_language_cookie(response, _ctx(request), lang)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    ctx = _ctx(request)
    form = await request.form()
    lang = session.guest_language(request)
    t = translator(lang)
    next_url = session.safe_next(str(form.get("next") or "/"))
    username = str(form.get("username") or "")
    password = str(form.get("password") or "")
    sent = str(form.get("csrf") or "")
    expected = request.cookies.get(session.LOGIN_CSRF_COOKIE) or ""

    def again(message: str, status: int) -> Response:
        token = session.new_login_csrf()
        response = render(
            request, "login.html", None, lang, status, next=next_url, csrf=token, error=message
        )
        response.set_cookie(
            session.LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login"
        )
        return response

    if not expected or sent != expected:
        return again(t("login.expired"), 403)
    address = request.client.host if request.client else "-"
    try:
        found = await run_in_threadpool(session.log_in, ctx, username, password, address)
    except LoginThrottled as exc:
        refused = again(t("login.too_many", seconds=exc.retry_after_s), 429)
        refused.headers["Retry-After"] = str(exc.retry_after_s)
        return refused
    if found is None:
        return again(t("login.failed"), 401)
    token, user = found
    response = RedirectResponse(next_url, status_code=303)
    session.set_session_cookie(response, ctx, token)
    response.delete_cookie(session.LOGIN_CSRF_COOKIE, path="/login")
    if user.get("language") in LANGUAGES:
        session.set_language_cookie(response, ctx, user["language"])
    return response


@router.post("/logout")
async def logout(request: Request, user: User) -> Response:
    form = await request.form()
    check_csrf(user, form.get("csrf"))
    await run_in_threadpool(session.log_out, _ctx(request), user)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(session.SESSION_COOKIE, path="/")
    return response


@router.post("/language")
async def language(request: Request, user: User) -> Response:
    form = await request.form()
    check_csrf(user, form.get("csrf"))
    lang = str(form.get("lang") or "")
    if lang not in LANGUAGES:
        return Response(f"language {lang!r}: use one of {', '.join(LANGUAGES)}", status_code=422)
    ctx = _ctx(request)
    await run_in_threadpool(session.set_language, ctx, user, lang)
    response = RedirectResponse(session.safe_next(str(form.get("next") or "/")), 303)
    session.set_language_cookie(response, ctx, lang)
    return response


# -- overview ------------------------------------------------------------------------
@router.get("/")
def overview(request: Request, user: User) -> Response:
    store = _ctx(request).store
    summary = services.status_summary(store)
    now = views.now()
    with store.connect() as conn:
        failing = views.failing_sources(conn)
        stalest = views.stalest_sources(conn)
        hours = views.throughput(conn, now)
        alerts = alert_records.list_alerts(conn, states=["open", "acknowledged"], limit=10)
        open_alerts = views.open_alerts(conn)
    t = translator(user.language)
    chart = hourly_chart(t("overview.throughput"), hours, _zone(request), t)
    return render(
        request,
        "overview.html",
        user,
        user.language,
        summary=summary,
        failing=failing,
        stalest=stalest,
        realtime=summary["realtime"],
        chart=chart,
        rows_24h=sum(h[1] for h in hours),
        alerts=alerts,
        open_alerts=open_alerts,
    )


def _zone(request: Request) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(_ctx(request).store.settings.timezone)


# -- data resources ------------------------------------------------------------------
def _filter(
    source_type: str | None,
    status: str | None,
    category: str | None,
    q: str | None,
    site: str | None = None,
) -> views.SourceFilter:
    return views.SourceFilter(
        source_type or None, status or None, category or None, q or None, site or None
    )


Filter = Annotated[str | None, Query(max_length=100)]


def _pager(base: str, query: dict[str, str], found: views.Paged) -> dict[str, Any]:
    """The links of a paged list (``base`` with ``query`` and a page) to the pages around
    the current one, the previous and the next."""
    from urllib.parse import urlencode

    def at(page: int) -> str:
        return f"{base}?{urlencode({**query, 'page': page})}"

    return {
        "links": [
            (n, None if n is None else at(n)) for n in views.page_links(found.page, found.pages)
        ],
        "prev": at(found.page - 1) if found.page > 1 else None,
        "next": at(found.page + 1) if found.page < found.pages else None,
    }


def _page_urls(flt: views.SourceFilter, found: views.Paged) -> dict[str, Any]:
    """Where the list's page links and its live refresh go: the same filters, a page."""
    from urllib.parse import urlencode

    live = f"/sources/rows?{urlencode({**flt.query(), 'page': found.page})}"
    return {"live": live, **_pager("/sources", flt.query(), found)}


@router.get("/sources")
def sources_page(
    request: Request,
    user: User,
    type: Filter = None,
    status: Filter = None,
    category: Filter = None,
    q: Filter = None,
    site: Filter = None,
    page: int = 1,
) -> Response:
    flt = _filter(type, status, category, q, site)
    with _ctx(request).store.connect() as conn:
        found = views.source_page(conn, flt, page)
        choices = views.filter_choices(conn)
    unknown_site = flt.site is not None and flt.site not in choices["sites"]
    return render(
        request,
        "sources.html",
        user,
        user.language,
        404 if unknown_site else 200,
        unknown_site=unknown_site,
        rows=found.rows,
        found=found,
        urls=_page_urls(flt, found),
        flt=flt,
        choices=choices,
        statuses=views.SOURCE_STATUSES,
    )


@router.get("/sources/rows")
def source_rows(
    request: Request,
    user: User,
    type: Filter = None,
    status: Filter = None,
    category: Filter = None,
    q: Filter = None,
    site: Filter = None,
    page: int = 1,
) -> Response:
    """The table body of one page alone, for the list's live refresh."""
    flt = _filter(type, status, category, q, site)
    with _ctx(request).store.connect() as conn:
        found = views.source_page(conn, flt, page)
    return render(request, "_source_rows.html", user, user.language, rows=found.rows, found=found)


@router.get("/sources/{source_id}")
def source_page(request: Request, source_id: str, user: User, qpage: int = 1) -> Response:
    from factorysync.web.quarantine_pages import quarantine_view

    store = _ctx(request).store
    try:
        with store.connect() as conn:
            source = services.public_source(store, get_source(conn, source_id))
            alerts = alert_records.list_alerts(conn, source_id=source_id, limit=20)
        quarantine = quarantine_view(store, source_id, qpage)
    except NotFoundError:
        return _not_found(request, user, source_id)
    runs = services.history(store, source_id, 100)
    t = translator(user.language)
    # The source's times in its site's zone (the plant's when the site has none).
    zone = source.get("site_time_zone") or store.settings.timezone
    charts = run_charts(views.runs_for_charts([dict(r) for r in runs]), ZoneInfo(zone), t)
    running = any(r["sync_status"] == "running" for r in runs)
    return render(
        request,
        "source.html",
        user,
        user.language,
        time_zone=zone,
        source=source,
        runs=runs,
        quarantine=quarantine,
        alerts=alerts,
        charts=charts,
        running=running,
        notice=request.query_params.get("notice"),
    )


def _not_found(request: Request, user: ConsoleUser, source_id: str) -> Response:
    t = translator(user.language)
    return render(
        request,
        "error.html",
        user,
        user.language,
        404,
        message=t("source.not_found", id=source_id),
    )


@router.post("/sources/{source_id}/sync")
async def sync_now(request: Request, source_id: str, user: User) -> Response:
    form = await request.form()
    check_csrf(user, form.get("csrf"))
    user.require("operator")
    ctx = _ctx(request)
    t = translator(user.language)
    try:
        run_id = await run_in_threadpool(ctx.start_sync, source_id, f"console:{user.username}"[:32])
        notice = t("source.sync_started", run=run_id)
    except AlreadyRunning:
        notice = t("source.already_running", id=source_id)
    except NotFoundError:
        return _not_found(request, user, source_id)
    return _to_source(source_id, notice)


@router.post("/sources/{source_id}/status")
async def change_status(request: Request, source_id: str, user: User) -> Response:
    form = await request.form()
    check_csrf(user, form.get("csrf"))
    user.require("admin")
    status = str(form.get("status") or "")
    if status not in ("active", "inactive", "maintenance"):
        return Response(f"status {status!r}: use active, inactive or maintenance", status_code=422)
    ctx = _ctx(request)

    def change() -> None:
        services.change_status(ctx.store, source_id, status, by=f"console:{user.username}")

    try:
        await run_in_threadpool(change)
    except NotFoundError:
        return _not_found(request, user, source_id)
    ctx.data_changed()
    t = translator(user.language)
    return _to_source(source_id, t("source.status_set", status=t(f"status.{status}")))


def _to_source(source_id: str, notice: str) -> Response:
    from urllib.parse import quote

    return RedirectResponse(f"/sources/{quote(source_id)}?notice={quote(notice)}", status_code=303)


@router.post("/sources/{source_id}/test")
async def test_stored(request: Request, source_id: str, user: User) -> Response:
    form = await request.form()
    check_csrf(user, form.get("csrf"))
    user.require("operator")
    store = _ctx(request).store
    try:
        result = await run_in_threadpool(services.test_source, store, source_id)
    except NotFoundError:
        return _not_found(request, user, source_id)
    return render(request, "_probe.html", user, user.language, action="test_stored", result=result)


@router.post("/sources/{source_id}/discover")
async def discover_stored(request: Request, source_id: str, user: User) -> Response:
    from factorysync.engine.discovery import discover_source
    from factorysync.errors import FactorySyncError

    form = await request.form()
    check_csrf(user, form.get("csrf"))
    user.require("operator")
    store = _ctx(request).store
    try:
        found = await run_in_threadpool(discover_source, store, source_id)
        result = {"ok": True, "message": "", "fields": found["fields"]}
    except NotFoundError:
        return _not_found(request, user, source_id)
    except (FactorySyncError, OSError) as exc:
        result = {"ok": False, "message": str(exc), "fields": []}
    return render(request, "_probe.html", user, user.language, action="discover", result=result)


# -- alerts --------------------------------------------------------------------------
@router.get("/alerts")
def alerts_page(request: Request, user: User, state: Filter = None, page: int = 1) -> Response:
    from urllib.parse import urlencode

    states = [state] if state in ("open", "acknowledged", "resolved") else None
    with _ctx(request).store.connect() as conn:
        found = views.alert_page(conn, states, page)
    query = {"state": str(state)} if states else {}
    return render(
        request,
        "alerts.html",
        user,
        user.language,
        alerts=found.rows,
        found=found,
        urls=_pager("/alerts", query, found),
        here=f"/alerts?{urlencode({**query, 'page': found.page})}",  # where an ack returns
        state=state or "",
    )


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge(request: Request, alert_id: int, user: User) -> Response:
    form = await request.form()
    check_csrf(user, form.get("csrf"))
    user.require("operator")
    store = _ctx(request).store

    def ack() -> None:
        with store.begin() as conn:
            alert_records.acknowledge(conn, alert_id, user.username)

    try:
        await run_in_threadpool(ack)
    except NotFoundError:
        message = translator(user.language)("error.not_found", what=f"#{alert_id}")
        return render(request, "error.html", user, user.language, 404, message=message)
    return RedirectResponse(_back(request, "/alerts"), status_code=303)
