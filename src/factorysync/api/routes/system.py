"""``/api/health`` (no token), ``/metrics`` (Prometheus) and the console's front page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from factorysync import __version__
from factorysync.api.deps import AUTH_RESPONSES, Context, Require
from factorysync.api.schemas import HealthPublic

router = APIRouter(tags=["system"])


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
