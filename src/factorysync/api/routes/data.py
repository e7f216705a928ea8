"""Data for dashboards: target tables page by page, each source's records in its own
document shape, and the front end's ``default_source_data`` list pointing at them.

Answers carry an ``ETag``; a client that sends it back in ``If-None-Match`` gets
``304 Not Modified`` while nothing changed. Bodies are gzip-compressed on request.
"""

from __future__ import annotations

from collections.abc import Hashable
from contextlib import suppress
from datetime import datetime, tzinfo
from itertools import chain
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import and_, select

from factorysync.api.answering import request_key, respond
from factorysync.api.context import ApiContext
from factorysync.api.dataquery import MAX_LIMIT, PAGE_PARAMS, PageQuery, PageRequest, to_json
from factorysync.api.deps import AUTH_RESPONSES, Context, PlantZone, Responses, Viewer
from factorysync.api.errors import invalid
from factorysync.api.schemas import DataPage, ErrorPublic, LegacyEntry
from factorysync.api.shapes import render, source_shape
from factorysync.errors import ConfigError
from factorysync.security.redaction import Redactor
from factorysync.services.dataquery import SITE_COLUMN, check_site_filter
from factorysync.store.registry import data_version
from factorysync.store.schema import data_source_connections as conns_t
from factorysync.store.schema import data_source_registry as reg_t

router = APIRouter(tags=["data"], responses=AUTH_RESPONSES)
# Source documents up to this size are sent whole, with an ETag; larger ones are streamed.
BUFFER_LIMIT = 8 * 1024 * 1024
NOT_MODIFIED: Responses = {304: {"description": "Not modified since the ETag in If-None-Match"}}
MISSING: Responses = {404: {"model": ErrorPublic, "description": "No such table or source"}}
INVALID: Responses = {
    422: {"model": ErrorPublic, "description": "A parameter names no column or does not fit it"}
}
TABLE = r"^[a-z_][a-z0-9_]{0,62}$"
SOURCE = r"^[a-z0-9][a-z0-9_.-]{0,99}$"


@router.get(
    "/api/data/{target_table}",
    response_model=DataPage,
    responses={
        **NOT_MODIFIED,
        **MISSING,
        **INVALID,
        400: {"model": ErrorPublic, "description": "site= on a table without a _site column"},
    },
)
async def read_table(
    target_table: Annotated[str, Path(pattern=TABLE)],
    request: Request,
    _: Viewer,
    ctx: Context,
    tz: PlantZone,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    after: Annotated[str | None, Query(max_length=4096)] = None,
    order: Annotated[
        str | None, Query(max_length=1000, description="Columns, '-' for descending: -ts,line")
    ] = None,
    since: Annotated[
        datetime | None, Query(description="Only rows synced at or after this time")
    ] = None,
) -> Response:
    """A page of a target table. ``site=S``: only the rows forwarded from site S (central
    tables, with a ``_site`` column; 400 on another table, 404 for an unknown site). Any
    other parameter filters a column: ``FIELD=V``, ``FIELD__gte=V``, ``FIELD__lte=V``
    (also ``__gt``, ``__lt``, ``__ne``)."""
    items = sorted(request.query_params.multi_items())
    filters = [(k, v) for k, v in items if k not in PAGE_PARAMS and k != "site"]
    sites = [v for k, v in items if k == "site"]
    if len(sites) > 1:
        raise invalid(["query", "site"], "site: give one site")

    def produce(known: Hashable | None) -> tuple[Hashable, bytes | None]:
        # One store connection for the version and the page; the version is read first,
        # so a change in between makes the next check see a newer one.
        with ctx.store.connect_autocommit() as conn:
            now = data_version(conn, target_table)
            if known is not None and now == known:
                return now, None
            info = ctx.tables.get(conn, target_table)
            site = sites[0] if sites else None
            if site is not None and "site" in info.kinds and SITE_COLUMN not in info.table.c:
                # A table of one plant with a column of its own named site: filtered as
                # any column is (as before sites existed).
                site, extra = None, [("site", sites[0])]
            else:
                extra = []
            if site is not None:
                problem = check_site_filter(conn, info, site)
                if problem is not None:
                    raise HTTPException(400, problem)
            wanted = PageRequest(
                limit, offset, after, order, since, sorted([*filters, *extra]), site=site
            )
            query = PageQuery(info, wanted, tz)
            found = query.fetch(conn)
        body = {
            "table": target_table,
            "items": found.items,
            "limit": limit,
            "offset": offset,
            "has_more": found.has_more,
            "next_after": found.next_after,
        }
        return now, orjson.dumps(body, default=to_json)

    return respond(request, *await ctx.answers.produced(request_key(request.scope), produce))


def _document(ctx: ApiContext, source_id: str, table: str | None, tz: tzinfo) -> Any:
    """The whole document as bytes, or (beyond BUFFER_LIMIT) an iterator of chunks."""
    with ctx.store.connect() as conn:
        shape = source_shape(conn, ctx.tables, source_id, table)
    chunks = render(ctx.store, shape, tz)
    buffered: list[bytes] = []
    size = 0
    for chunk in chunks:
        buffered.append(chunk)
        size += len(chunk)
        if size > BUFFER_LIMIT:
            return chain(buffered, chunks)
    return b"".join(buffered)


@router.get(
    "/api/sources/{source_id}/data",
    name="source_data",
    response_model=dict[str, Any] | list[dict[str, Any]],
    responses={**NOT_MODIFIED, **MISSING},
)
async def read_source_data(
    source_id: Annotated[str, Path(pattern=SOURCE)],
    request: Request,
    _: Viewer,
    ctx: Context,
    tz: PlantZone,
    table: Annotated[
        str | None, Query(pattern=TABLE, description="Which mapping, when it has several")
    ] = None,
) -> Response:
    """The source's records in the shape its JSON document had (a list, one object, or a
    wrapper object), with its own field names and times in the plant's time zone."""
    key = ("source", source_id, table)
    cached = ctx.answers.cache.get(key)
    if cached is not None:
        return respond(request, *cached)
    document = await run_in_threadpool(_document, ctx, source_id, table, tz)
    if not isinstance(document, bytes):
        return StreamingResponse(document, media_type="application/json")
    return respond(request, *ctx.answers.put(key, document))


def _masked(text: str | None, redact: Redactor) -> str | None:
    return redact(text) if text else text


@router.get(
    "/api/legacy/source_data",
    response_model=list[LegacyEntry],
    responses=NOT_MODIFIED,
)
async def legacy_source_data(request: Request, _: Viewer, ctx: Context) -> Response:
    """The front end's ``default_source_data`` (``id``, ``name``, ``type``, ``fileName``,
    ``filePath``) for every imported source, plus the ``url`` of its data."""

    def entries() -> bytes:
        primary = and_(conns_t.c.registry_id == reg_t.c.id, conns_t.c.is_primary.is_(True))
        stmt = (
            select(
                reg_t.c.source_id,
                reg_t.c.name,
                reg_t.c.legacy_id,
                conns_t.c.connection_config,
                conns_t.c.authentication_config,
            )
            .join(conns_t, primary)
            .where(reg_t.c.legacy_id.is_not(None))
        )
        with ctx.store.connect() as conn:
            rows = conn.execute(stmt).all()
        found = []
        for r in rows:
            config = r.connection_config or {}
            # Paths and names may hold the connection's secrets: masked as everywhere.
            redact = Redactor()
            with suppress(ConfigError):
                redact.add(ctx.store.box.decrypt_config(r.authentication_config))
            found.append(
                {
                    "id": int(r.legacy_id) if r.legacy_id.isdigit() else r.legacy_id,
                    "name": r.name,
                    "type": config.get("file_type", "json"),
                    "fileName": _masked(config.get("file_name"), redact),
                    "filePath": _masked(config.get("legacy_path"), redact),
                    "url": str(request.url_for("source_data", source_id=r.source_id)),
                }
            )
        # Numeric ids in number order (as the front end lists them), then the others.
        found.sort(key=lambda e: (isinstance(e["id"], str), str(e["id"]).zfill(20)))
        return orjson.dumps(found)

    return respond(request, *await ctx.answers.get(("legacy", str(request.base_url)), entries))
