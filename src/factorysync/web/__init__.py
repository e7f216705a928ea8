"""The web console, served by the API app at ``/``.

Server-rendered pages (Jinja2 templates in ``templates/``) with a little plain script in
``static/console.js`` for live refresh and inline results; nothing is built at install
time or fetched from the internet at run time. See docs/console.md.

Pages are served under a Content-Security-Policy that allows scripts and styles from
files of this site only (:data:`factorysync.api.app.CONSOLE_POLICY`): templates hold no
``<script>`` block, no ``on…=`` handler and no ``style=`` attribute; behaviour goes in
``static/console.js`` (found through ids and ``data-`` attributes), looks in
``static/console.css``.

    session.py    login cookie (an API token), CSRF, the user's role and language
    pages.py      overview, data resources, source detail, alerts; source actions
    quarantine_pages.py  a source's quarantine: pages, CSV export, replay, clear
    editor.py     add / edit a source, with test, discover and mapping preview
    forms.py      the source form: general, connection, secrets and mapping inputs
    config_form.py  the connection inputs generated from each type's config model
    probe.py      test / discover / preview a source as the form describes it
    views.py      the set-based queries behind the pages
    charts.py     server-side SVG charts
    i18n.py       every label in English and Bahasa Indonesia
    i18n_config.py  the connection settings' labels and help texts in Bahasa Indonesia
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from markupsafe import escape
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.staticfiles import StaticFiles

from factorysync.web.session import CsrfFailed, Forbidden, LoginRequired, login_url

STATIC = Path(__file__).parent / "static"


async def _login_required(request: Request, exc: Exception) -> Response:
    if request.method == "GET" and request.headers.get("x-fragment") is None:
        target = login_url(request)
        # The body serves clients that do not follow redirects.
        body = f'<!doctype html><a href="{escape(target)}">Log in to the factorysync console</a>'
        return HTMLResponse(body, status_code=303, headers={"Location": target})
    return PlainTextResponse(_say(request, "error.login_first"), 401)


async def _forbidden(request: Request, exc: Exception) -> Response:
    role, needed = getattr(exc, "role", "?"), getattr(exc, "needed", "?")
    return PlainTextResponse(
        _say(request, "error.forbidden_role", role=repr(role), needed=repr(needed)), 403
    )


async def _csrf(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(_say(request, "error.csrf_token"), 403)


def _say(request: Request, key: str, **values: object) -> str:
    """A refusal in the language of the browser's console cookie (no user is at hand)."""
    from factorysync.web.i18n import translator
    from factorysync.web.session import guest_language

    return translator(guest_language(request))(key, **values)


def install(app: FastAPI) -> None:
    """Add the console's routes, static files and error pages to the API app."""
    from factorysync.web import editor, pages

    app.include_router(editor.router)
    app.include_router(pages.router)
    # phone & health: the source page's quarantine (paging, CSV export, replay, clear)
    from factorysync.web import quarantine_pages

    app.include_router(quarantine_pages.router)
    # source lifecycle: delete (with or without its rows), duplicate, reset
    from factorysync.web import lifecycle

    app.include_router(lifecycle.router)
    from factorysync.web import data_pages  # data browser (issue #23)

    app.include_router(data_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(CsrfFailed, _csrf)
