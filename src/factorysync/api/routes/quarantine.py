"""``/api/sources/{source_id}/quarantine``: the records a source's runs rejected — read a
page (JSON, or CSV for an export), replay them under the current mapping and rules, or
clear them. Viewers read; operators replay and clear."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from factorysync import services
from factorysync.api.deps import AUTH_RESPONSES, Context, Operator, Responses, StoreDep, Viewer
from factorysync.api.schemas import ErrorPublic

router = APIRouter(
    prefix="/api/sources/{source_id}/quarantine", tags=["quarantine"], responses=AUTH_RESPONSES
)

SourceId = Annotated[str, Path(min_length=1, max_length=100, description="The source's slug.")]
NOT_FOUND: Responses = {404: {"model": ErrorPublic, "description": "No such source"}}


class QuarantineEntry(BaseModel):
    id: int
    source_id: str
    target_table: str
    stage: Literal["unparsed", "source", "record"]
    times_seen: int
    first_seen: datetime
    last_seen: datetime
    run_id: int | None = None
    kept_previous: bool
    reasons: list[str]
    record: Any
    content_hash: str


class QuarantinePage(BaseModel):
    source_id: str
    total: int
    limit: int
    offset: int
    entries: list[QuarantineEntry]


class ReplayPublic(BaseModel):
    run_id: int
    source_id: str
    sync_status: str
    examined: int
    loaded: int
    still_rejected: int
    not_replayable: int
    records_inserted: int
    records_updated: int
    remaining: int


class ClearedPublic(BaseModel):
    source_id: str
    removed: int


@router.get(
    "",
    response_model=QuarantinePage,
    responses={
        **NOT_FOUND,
        200: {"content": {"text/csv": {}}, "description": "The page (CSV with format=csv)"},
    },
)
def read_quarantine(
    source_id: SourceId,
    _: Viewer,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    format: Annotated[
        Literal["json", "csv"], Query(description="csv: the page as a CSV file (an export).")
    ] = "json",
) -> Any:
    """The source's quarantine, most recently refused first: one entry per bad record,
    with how often and when it was seen, the reasons of the latest refusal, and whether
    a full sync kept the previous row of its key. ``total`` counts every entry."""
    page = services.quarantine_page(store, source_id, limit=limit, offset=offset)
    if format == "csv":
        return Response(
            services.quarantine_csv(page["entries"]),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{source_id}-quarantine.csv"'},
        )
    return page


@router.post(
    "/replay",
    response_model=ReplayPublic,
    responses={
        **NOT_FOUND,
        409: {"model": ErrorPublic, "description": "A run of the source is in progress"},
    },
)
async def replay_quarantine(
    source_id: SourceId, who: Operator, store: StoreDep, ctx: Context
) -> Any:
    """Check every entry again under the source's current mapping and rules: those that
    pass are loaded (as a sync writes them; nothing is deleted) and leave the quarantine,
    the others stay with the new reasons. Recorded as a history run of type ``replay``."""
    result = await run_in_threadpool(
        services.replay_quarantine, store, source_id, trigger=f"api:{who.username}"[:32]
    )
    if result["records_inserted"] or result["records_updated"]:
        ctx.data_changed()
    return result


@router.post("/clear", response_model=ClearedPublic, responses=NOT_FOUND)
def clear_quarantine(source_id: SourceId, who: Operator, store: StoreDep) -> Any:
    """Remove every quarantine entry of the source (logged with who cleared it)."""
    return services.clear_quarantine(store, source_id, cleared_by=f"api:{who.username}")
