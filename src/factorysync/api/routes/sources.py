"""``/api/sources``: the registry (sources with their connections and mappings), tests,
syncs started in the background, resets of where reads resume, deletes (with or without
the rows synced), duplicates, and each source's run history."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import WithJsonSchema

from factorysync import services
from factorysync.api.answering import Shape, answer
from factorysync.api.deps import (
    AUTH_RESPONSES,
    Admin,
    Context,
    Operator,
    Responses,
    SiteQuery,
    StoreDep,
)
from factorysync.api.schemas import (
    DeletePublic,
    ErrorPublic,
    ResetPublic,
    RunPublic,
    SourceDuplicate,
    SourcePublic,
    SourceSummary,
    SyncAccepted,
    TestPublic,
)
from factorysync.store.registry import get_source

router = APIRouter(prefix="/api/sources", tags=["sources"], responses=AUTH_RESPONSES)

SourceId = Annotated[str, Path(min_length=1, max_length=100, description="The source's slug.")]
SourceBody = Annotated[
    dict[str, Any],
    WithJsonSchema({"$ref": "#/components/schemas/SourceCreate"}),
    Body(description="A source declaration, with the registry's field names (as in YAML)."),
]
SourcePatch = Annotated[
    dict[str, Any],
    WithJsonSchema({"$ref": "#/components/schemas/SourceUpdate"}),
    Body(
        description="Fields to change; 'connections' and 'mappings' replace the lists. "
        "A connection without authentication_config keeps its secrets; values sent back "
        'as "***" keep theirs.'
    ),
]
NOT_MODIFIED: Responses = {304: {"description": "Not modified since the ETag in If-None-Match"}}
SUMMARIES = Shape(list[SourceSummary])
RUNS = Shape(list[RunPublic])
NOT_FOUND: Responses = {404: {"model": ErrorPublic, "description": "No such source"}}
NO_SITE: Responses = {404: {"model": ErrorPublic, "description": "No such site"}}
INVALID: Responses = {
    422: {"model": ErrorPublic, "description": "Invalid declaration; every problem named"}
}


def _shown(store: Any, source_id: str) -> dict[str, Any]:
    with store.connect() as conn:
        return services.public_source(store, get_source(conn, source_id))


@router.get("", response_model=list[SourceSummary], responses={**NOT_MODIFIED, **NO_SITE})
async def list_sources(
    _: Operator,
    ctx: Context,
    request: Request,
    status: Annotated[Literal["active", "inactive", "error", "maintenance"] | None, Query()] = None,
    site: SiteQuery = None,
) -> Response:
    """Every registered source (without connections and mappings), by priority; with
    ``site``, only that site's (404 when there is no such site)."""
    return await answer(
        request, ctx, lambda: SUMMARIES.json(services.sources(ctx.store, status, site))
    )


@router.post(
    "",
    status_code=201,
    response_model=SourcePublic,
    responses={409: {"model": ErrorPublic, "description": "source_id taken"}, **INVALID},
)
def create_source(
    body: SourceBody, who: Admin, store: StoreDep, ctx: Context, response: Response
) -> Any:
    """Register a source. Its secrets (authentication_config) are stored encrypted."""
    change = services.create_source(store, body, created_by=who.username)
    ctx.sources_changed()
    response.headers["Location"] = f"/api/sources/{change.source_id}"
    return _shown(store, change.source_id)


@router.get("/{source_id}", response_model=SourcePublic, responses=NOT_FOUND)
def read_source(source_id: SourceId, _: Operator, store: StoreDep) -> Any:
    """One source with its connections and mappings; secrets are shown as "***"."""
    return _shown(store, source_id)


@router.patch("/{source_id}", response_model=SourcePublic, responses={**NOT_FOUND, **INVALID})
def update_source(
    source_id: SourceId, body: SourcePatch, _: Admin, store: StoreDep, ctx: Context
) -> Any:
    services.update_source(store, source_id, body)
    ctx.sources_changed()
    return _shown(store, source_id)


@router.delete(
    "/{source_id}",
    status_code=204,
    response_model=None,
    responses={
        **NOT_FOUND,
        200: {"model": DeletePublic, "description": "With drop_data: what was removed"},
        409: {"model": ErrorPublic, "description": "A run is in progress"},
    },
)
def delete_source(
    source_id: SourceId,
    who: Admin,
    store: StoreDep,
    ctx: Context,
    drop_data: Annotated[
        bool,
        Query(
            description="Also remove the rows this source wrote in its target tables (and "
            "its quarantine); a table no other source writes is dropped once empty. The "
            "answer is then 200 with what was removed."
        ),
    ] = False,
) -> Response:
    """Remove a source with its connections, mappings and sync state; its run history is
    kept, and so are the rows it synced unless ``drop_data=true``. Refused (409) while a
    run of the source is in progress."""
    result = services.delete_source(
        store, source_id, drop_data=drop_data, deleted_by=f"api:{who.username}"
    )
    ctx.sources_changed()
    if drop_data:
        return JSONResponse(DeletePublic.model_validate(result).model_dump(mode="json"))
    return Response(status_code=204)


@router.post(
    "/{source_id}/duplicate",
    status_code=201,
    response_model=SourcePublic,
    responses={
        **NOT_FOUND,
        409: {"model": ErrorPublic, "description": "The new source_id is taken"},
        **INVALID,
    },
)
def duplicate_source(
    source_id: SourceId,
    body: SourceDuplicate,
    who: Admin,
    store: StoreDep,
    ctx: Context,
    response: Response,
) -> Any:
    """Register a copy of the source under a new source_id: same connections, secrets
    (copied on the server, never shown) and mappings. The copy starts inactive: it writes
    the same target tables until its mappings change and it is enabled."""
    change = services.duplicate_source(
        store,
        source_id,
        body.source_id,
        name=body.name,
        created_by=who.username,
        by=f"api:{who.username}",
    )
    ctx.sources_changed()
    response.headers["Location"] = f"/api/sources/{change.source_id}"
    return _shown(store, change.source_id)


@router.post("/{source_id}/test", response_model=TestPublic, responses=NOT_FOUND)
def test_source(source_id: SourceId, _: Operator, store: StoreDep) -> Any:
    """Check each connection now (reachable, readable); reads no data."""
    return services.test_source(store, source_id)


@router.post(
    "/{source_id}/sync",
    status_code=202,
    response_model=SyncAccepted | RunPublic,
    responses={
        **NOT_FOUND,
        200: {"model": RunPublic, "description": "The run ended within `wait_s`"},
        409: {"model": ErrorPublic, "description": "A run is in progress"},
    },
)
def sync_source(
    source_id: SourceId,
    who: Operator,
    ctx: Context,
    store: StoreDep,
    request: Request,
    response: Response,
    wait_s: Annotated[
        float,
        Query(
            ge=0,
            le=3600,
            description="Wait up to this many seconds for the run to end: if it does, the "
            "answer is the finished run (200) instead of 202.",
        ),
    ] = 0,
) -> Any:
    """Start a sync in the background; the answer carries the run id to follow."""
    run_id, future = ctx.start_sync_waitable(source_id, trigger=f"api:{who.username}"[:32])
    url = str(request.url_for("read_run", run_id=run_id))
    response.headers["Location"] = url
    if wait_s > 0:
        with contextlib.suppress(Exception):  # a timeout; or a crash, which the run records
            future.result(timeout=wait_s)
        run = services.run_record(store, run_id) if future.done() else None
        if run is not None:
            response.status_code = 200
            return run
    return SyncAccepted(run_id=run_id, source_id=source_id, url=url)


@router.post(
    "/{source_id}/reset",
    response_model=ResetPublic,
    responses={
        404: {"model": ErrorPublic, "description": "No such source, or no such mapping"},
        409: {"model": ErrorPublic, "description": "A run is in progress"},
    },
)
def reset_source(
    source_id: SourceId,
    who: Operator,
    store: StoreDep,
    mapping: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=63,
            description="Reset only the mapping writing this target table.",
        ),
    ] = None,
) -> Any:
    """Forget the cursor and connector state (of every mapping, or of one): the next run
    reads the whole source again. Rows already synced stay; the reset is logged."""
    return services.reset_source(
        store, source_id, target_table=mapping, reset_by=f"api:{who.username}"
    )


@router.get("/{source_id}/history", response_model=list[RunPublic], responses=NOT_MODIFIED)
async def source_history(
    source_id: SourceId,
    _: Operator,
    ctx: Context,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    """The source's latest runs, newest first (kept after the source is removed)."""
    return await answer(
        request, ctx, lambda: RUNS.json(services.history(ctx.store, source_id, limit))
    )
