"""The HTTP API: ``create_app(store)`` builds the FastAPI app that ``serve`` and ``run`` serve.

Routes are thin: they parse the request, check the caller's role, and call the same
services as the command line. OpenAPI is at ``/openapi.json`` and ``/docs``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from factorysync import __version__, web
from factorysync.alerts import monitor as alert_monitor
from factorysync.api import errors, fastpath
from factorysync.api.context import ApiContext
from factorysync.api.routes import accounts, alerts, data, live, runs, sources, system
from factorysync.api.schemas import ErrorPublic
from factorysync.config import SourceDecl
from factorysync.observability.metrics import observe_http
from factorysync.settings import get_settings
from factorysync.store.store import Store

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
        responses={400: {"model": ErrorPublic, "description": "Malformed request body"}},
    )
    app.state.ctx = ctx
    errors.install(app)
    web.install(app)  # the console; first, so it answers "/"
    for module in (system, sources, runs, data, live, accounts, alerts):
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
    fastpath.install(app, ctx, cors=bool(origins))
    app.add_middleware(HttpMetrics)
    return app


def app_from_environment() -> FastAPI:
    """The app for ``FACTORYSYNC_*`` settings (uvicorn's factory, for several workers)."""
    store = Store(get_settings())
    store.ensure_ready()
    return create_app(store)
