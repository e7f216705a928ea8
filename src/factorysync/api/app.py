"""The HTTP API: ``create_app(store)`` builds the FastAPI app that ``serve`` and ``run`` serve.

Routes are thin: they parse the request, check the caller's role, and call the same
services as the command line.

The API reference — ``/openapi.json``, Swagger UI at ``/docs``, ReDoc at ``/redoc`` — needs
a token or a console session (``FACTORYSYNC_DOCS_PUBLIC=true`` opens it), and its pages
load their scripts and styles from the installed ``fastapi-offline`` package, never from a
CDN, so they work on a plant network without internet access.

Every answer, the fast path's included, carries the browser's security headers
(:data:`SECURITY_HEADERS`): a Content-Security-Policy that allows scripts, styles and
connections from this origin only, no framing, no MIME sniffing, and no ``Referer`` to
other sites. The console has no inline script, handler or style attribute, so its policy
needs neither ``'unsafe-inline'`` nor a nonce. The reference pages are third-party
bundles: Swagger UI's one inline script gets a per-request nonce; ReDoc's bundle inserts
``<style>`` elements as it loads, before any nonce could reach it, so ``/redoc`` alone
allows inline styles (never inline scripts).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import fastapi_offline
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPAuthorizationCredentials
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from factorysync import __version__, web
from factorysync.alerts import monitor as alert_monitor
from factorysync.api import errors, fastpath
from factorysync.api.context import ApiContext
from factorysync.api.deps import bearer, current_principal
from factorysync.api.headers import (
    REDOC_POLICY,
    SECURITY_HEADERS,
    BodyLimit,
    SecurityHeaders,
    swagger_policy,
)
from factorysync.api.metrics import observe_http
from factorysync.api.routes import (
    accounts,
    alerts,
    data,
    export,
    live,
    quarantine,
    runs,
    sites,
    sources,
    system,
)
from factorysync.api.schemas import ErrorPublic
from factorysync.config import SourceDecl
from factorysync.settings import get_settings
from factorysync.store.store import Store
from factorysync.web import session as console  # a module: it imports this one's package

DESCRIPTION = """
Management and data API of factorysync.

Every endpoint except `/api/health` needs `Authorization: Bearer <token>`
(`factorysync token create --user NAME`, or `POST /api/auth/login`). Roles: **viewer**
reads status and data, **operator** also tests and syncs sources and reads the registry,
**admin** may do everything. Data answers carry an `ETag` for cheap polling.
"""


class HttpMetrics:
    """Observes each request's latency, labelled by route template (not the raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            observe_http(scope["method"], route, status, started)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated document plus the source declaration's schema (SourceCreate/Update)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    declared = SourceDecl.model_json_schema(ref_template="#/components/schemas/{model}")
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.update(declared.pop("$defs", {}))
    components["SourceCreate"] = {**declared, "title": "SourceCreate"}
    components["SourceUpdate"] = {
        **{k: v for k, v in declared.items() if k != "required"},
        "title": "SourceUpdate",
    }
    app.openapi_schema = document
    return document


DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_ASSETS_URL = "/docs/assets"


class DocsReader:
    """Who may read the API reference: a valid token, or a console session.

    Without either, the pages send a browser to the console's login page (and back
    after it); ``/openapi.json`` answers 401.
    """

    def __init__(self, *, page: bool) -> None:
        self.page = page

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        ctx: ApiContext = request.app.state.ctx
        if ctx.store.settings.docs_public:
            return
        if credentials is not None:
            await current_principal(ctx, credentials)  # 401 for a bad token
            return
        try:
            await console.current_user(request)
        except console.LoginRequired:
            if self.page:
                raise
            raise HTTPException(
                401,
                "missing token: send 'Authorization: Bearer <token>' or log in to the console",
                headers={"WWW-Authenticate": "Bearer"},
            ) from None


def _with_policy(page: HTMLResponse, policy: str) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = policy
    page.headers["Cache-Control"] = "no-store"
    return page


def _nonced(page: HTMLResponse) -> HTMLResponse:
    """``page`` with a fresh nonce on its scripts, and the policy that allows them."""
    nonce = secrets.token_urlsafe(18)
    html = bytes(page.body).decode().replace("<script", f'<script nonce="{nonce}"')
    return _with_policy(HTMLResponse(html), swagger_policy(nonce))


def _install_docs(app: FastAPI) -> None:
    """``/openapi.json``, ``/docs`` and ``/redoc``, with their files from this machine."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    page = [Depends(DocsReader(page=True))]

    @app.get(
        "/openapi.json", include_in_schema=False, dependencies=[Depends(DocsReader(page=False))]
    )
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=page)
    async def swagger_ui() -> HTMLResponse:
        return _nonced(
            get_swagger_ui_html(
                openapi_url="/openapi.json",
                title=f"{app.title} API",
                swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
                # No badge from the public validator service.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get("/redoc", include_in_schema=False, dependencies=page)
    async def redoc() -> HTMLResponse:
        return _with_policy(
            get_redoc_html(
                openapi_url="/openapi.json",
                title=f"{app.title} API",
                redoc_js_url=f"{DOCS_ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            ),
            REDOC_POLICY,
        )


def create_app(store: Store) -> FastAPI:
    ctx = ApiContext(store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ctx.start()
        alert_monitor.acquire(store)
        try:
            yield
        finally:
            await run_in_threadpool(alert_monitor.release, store)
            await run_in_threadpool(ctx.close)

    app = FastAPI(
        title="factorysync",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=None,  # served by _install_docs, behind login
        docs_url=None,
        redoc_url=None,
        responses={400: {"model": ErrorPublic, "description": "Malformed request body"}},
    )
    app.state.ctx = ctx
    errors.install(app)
    web.install(app)  # the console; first, so it answers "/"
    _install_docs(app)
    for module in (system, sources, quarantine, runs, data, live, accounts, alerts, export, sites):
        app.include_router(module.router)
    app.include_router(system.metrics_router(store.settings.metrics_public))
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    origins = [o.strip() for o in store.settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match"],
            expose_headers=["ETag", "Location"],
        )
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, limit=store.settings.api_max_body_bytes)
    fastpath.install(app, ctx, cors=bool(origins), headers=SECURITY_HEADERS)
    app.add_middleware(HttpMetrics)
    return app


def app_from_environment() -> FastAPI:
    """The app for ``FACTORYSYNC_*`` settings (uvicorn's factory, for several workers)."""
    store = Store(get_settings())
    store.ensure_ready()
    return create_app(store)
