"""``/api/health`` (no token), ``/metrics`` (Prometheus) and the console's front page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from factorysync import __version__
from factorysync.api.deps import AUTH_RESPONSES, Context, Require
from factorysync.api.schemas import HealthPublic

router = APIRouter(tags=["system"])

CONSOLE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>factorysync</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>factorysync</h1>
<p>The web console will live here. Until then:</p>
<ul>
<li><a href="/docs">API documentation</a> (OpenAPI: <a href="/openapi.json">/openapi.json</a>)</li>
<li><a href="/api/health">/api/health</a></li>
</ul>
</body></html>
"""


@router.get(
    "/api/health",
    response_model=HealthPublic,
    responses={503: {"model": HealthPublic, "description": "The store is unreachable"}},
)
def health(ctx: Context, response: Response) -> Any:
    """Liveness and store reachability; needs no token."""
    try:
        with ctx.store.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        response.status_code = 503
        return {"status": "degraded", "version": __version__, "store": "unreachable"}
    return {"status": "ok", "version": __version__, "store": "ok"}


@router.get("/", include_in_schema=False)
def console() -> HTMLResponse:
    return HTMLResponse(CONSOLE)


def metrics_router(public: bool) -> APIRouter:
    """``/metrics``, open when ``metrics_public`` is set, else for any token allowed 'read'."""
    guarded = APIRouter(tags=["system"])
    dependencies = [] if public else [Depends(Require("viewer", "read"))]

    @guarded.get(
        "/metrics",
        dependencies=dependencies,
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
            **({} if public else AUTH_RESPONSES),
        },
    )
    def metrics(ctx: Context) -> Response:
        """Runs, rows, durations, freshness, scheduler lag, realtime and HTTP latency."""
        return Response(ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return guarded
