"""``/api/runs``, ``/api/templates`` and ``/api/status``: read-only registry views (the
latest runs and the status are polled answers: see :mod:`factorysync.api.answering`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from factorysync import services
from factorysync.api.answering import Shape, answer
from factorysync.api.deps import (
    AUTH_RESPONSES,
    Context,
    Operator,
    Responses,
    SiteQuery,
    StoreDep,
    Viewer,
)
from factorysync.api.schemas import ErrorPublic, RunPublic, StatusPublic, TemplatePublic
from factorysync.errors import NotFoundError
from factorysync.store.templates import list_templates as stored_templates
from factorysync.store.templates import public_template

router = APIRouter(tags=["runs"], responses=AUTH_RESPONSES)
NOT_MODIFIED: Responses = {304: {"description": "Not modified since the ETag in If-None-Match"}}
NO_SITE: Responses = {404: {"model": ErrorPublic, "description": "No such site"}}
RUNS = Shape(list[RunPublic])
STATUS = Shape(StatusPublic)


@router.get("/api/runs", response_model=list[RunPublic], responses={**NOT_MODIFIED, **NO_SITE})
async def list_runs(
    _: Operator,
    ctx: Context,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    site: SiteQuery = None,
) -> Response:
    """The latest runs of every source (or of one site's sources), newest first."""
    return await answer(
        request, ctx, lambda: RUNS.json(services.history(ctx.store, None, limit, site=site))
    )


@router.get(
    "/api/runs/{run_id}",
    response_model=RunPublic,
    responses={404: {"model": ErrorPublic, "description": "No such run"}},
)
def read_run(run_id: Annotated[int, Path(ge=1, le=2**63 - 1)], _: Operator, store: StoreDep) -> Any:
    """One run: status, counts, duration and (redacted) error."""
    run = services.run_record(store, run_id)
    if run is None:
        raise NotFoundError(f"no run {run_id}")
    return run


@router.get("/api/templates", response_model=list[TemplatePublic], tags=["sources"])
def list_templates(_: Operator, store: StoreDep) -> Any:
    """Source templates per connection type (secrets shown as "***")."""
    with store.connect() as conn:
        return [public_template(t) for t in stored_templates(conn)]


@router.get(
    "/api/status",
    response_model=StatusPublic,
    tags=["status"],
    responses={**NOT_MODIFIED, **NO_SITE},
)
async def read_status(
    _: Viewer, ctx: Context, request: Request, site: SiteQuery = None
) -> Response:
    """Sources by status, runs in progress, scheduler lag and the last day's runs (of one
    site's sources with ``site``; 404 when there is no such site)."""
    return await answer(request, ctx, lambda: STATUS.json(services.status_summary(ctx.store, site)))
