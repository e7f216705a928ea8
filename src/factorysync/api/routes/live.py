"""Live data: records pushed in (``POST /api/ingest/{source_id}``) and committed changes
streamed out to dashboards (``GET /api/stream/{target_table}``, Server-Sent Events).

Pushing needs a token that may write to that source: an unscoped token of an operator or
admin, or a token whose scopes include ``ingest:<source_id>`` (any role — a machine's own
account can be a viewer that may push to its one source and nothing else).

The stream sends ``event: ready`` once subscribed, then one ``event: change`` per committed
write of the table — ``{"source_id", "run_id", "rows": [...]}`` for realtime and pushed
data, ``{"source_id", "run_id", "inserted", "updated", "deleted"}`` for a batch sync —
and a comment line every ``KEEPALIVE_S`` so proxies keep the connection open. Changes
are those committed by this process (``factorysync run`` runs the scheduler, the realtime
service and the API together; a batch sync is announced once it has committed, and only
when it changed something).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import select

from factorysync.api.context import ApiContext
from factorysync.api.deps import (
    AUTH_RESPONSES,
    Context,
    Responses,
    Viewer,
    bearer,
    current_principal,
)
from factorysync.api.errors import invalid
from factorysync.api.ingest import IngestRefused
from factorysync.api.schemas import ErrorPublic, IngestAnswer
from factorysync.realtime.bus import bus
from factorysync.services.stream_access import ENDED, StreamAccess
from factorysync.store.accounts import Principal
from factorysync.store.schema import data_source_mappings as maps_t

router = APIRouter(tags=["live"], responses=AUTH_RESPONSES)
KEEPALIVE_S = 15.0
POLL_S = 0.5  # how soon an open stream notices that the service is stopping
SOURCE = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
TABLE = r"^[a-z_][a-z0-9_]{0,62}$"


def _error(status: int, description: str) -> Responses:
    return {status: {"model": ErrorPublic, "description": description}}


async def may_ingest(
    source_id: Annotated[str, Path(pattern=SOURCE)],
    who: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    scope = f"ingest:{source_id}"
    if who.scopes is not None:
        if scope not in who.scopes:
            raise HTTPException(
                403, f"this token's scopes {list(who.scopes)} do not include {scope!r}"
            )
    elif not who.has_role("operator"):
        raise HTTPException(
            403,
            f"pushing needs role 'operator' or a token with scope {scope!r}; "
            f"{who.username!r} has role {who.role!r}",
        )
    return who


INGEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    {"type": "object", "title": "One record"},
                    {"type": "array", "items": {"type": "object"}, "title": "Records"},
                ]
            }
        }
    },
}


@router.post(
    "/api/ingest/{source_id}",
    response_model=IngestAnswer,
    responses={
        **_error(404, "No such source"),
        **_error(409, "Not a push source, or inactive / in maintenance"),
        **_error(413, "Too many records or bytes in one request"),
        **_error(422, "The body is not a JSON object or array of objects"),
        **_error(503, "The store did not confirm the write in time; send again"),
    },
    openapi_extra={"requestBody": INGEST_BODY},
)
async def ingest(
    source_id: Annotated[str, Path(pattern=SOURCE)],
    request: Request,
    _: Annotated[Principal, Depends(may_ingest)],
    ctx: Context,
) -> IngestAnswer:
    """Store pushed records of a push source: one JSON object or an array of objects.

    Answers once they are committed, with how many were stored and why any were refused
    (refused records are quarantined). Rows are written by key, so sending again after an
    error stores nothing twice."""
    records = await _records(request, ctx)
    try:
        result = await run_in_threadpool(
            ctx.ingest.ingest, source_id, records, ctx.store.settings.ingest_timeout_s
        )
    except IngestRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    if result.stored:
        ctx.data_changed()
    return IngestAnswer(**result.__dict__)


async def _records(request: Request, ctx: ApiContext) -> list[Any]:
    limit = ctx.store.settings.ingest_max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {declared} bytes; at most {limit} bytes per request")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"body over {limit} bytes; at most {limit} per request")
    if not body.strip():
        raise invalid(["body"], "body: empty; send a JSON object or an array of objects")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid(["body"], f"body: not valid JSON: {exc}") from None
    records = payload if isinstance(payload, list) else [payload]
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            where = f"body[{i}]" if isinstance(payload, list) else "body"
            loc: list[str | int] = ["body", i] if isinstance(payload, list) else ["body"]
            raise invalid(loc, f"{where}: a {type(record).__name__} where a record (object) "
                          "belongs")  # fmt: skip
    return records


def _table_known(ctx: ApiContext, table: str) -> bool:
    with ctx.store.connect() as conn:
        found = conn.execute(
            select(maps_t.c.id).where(maps_t.c.target_table == table).limit(1)
        ).first()
    return found is not None


def _frame(event: str, data: dict[str, Any], seq: int | None = None) -> bytes:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data, default=str) + b"\n\n"


@router.get(
    "/api/stream/{target_table}",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-Sent Events: 'ready', then one 'change' per commit",
        },
        **_error(404, "No source writes this table"),
    },
)
async def stream(
    target_table: Annotated[str, Path(pattern=TABLE)],
    _: Viewer,
    ctx: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> StreamingResponse:
    """Committed changes of a target table as Server-Sent Events, for live dashboards.

    The token is checked again while the stream is open: once it is revoked or expired
    (or its user disabled) an 'end' event closes the stream."""
    if not await run_in_threadpool(_table_known, ctx, target_table):
        raise HTTPException(404, f"no source writes table {target_table!r}")
    assert credentials is not None  # Viewer has checked it
    access = StreamAccess(ctx.store, credentials.credentials, "viewer", "read")

    async def events() -> Any:
        async with bus.subscribe_async(target_table) as sub:
            yield b"retry: 2000\n" + _frame("ready", {"table": target_table})
            seq = 0
            quiet = 0.0
            while not ctx.closing:
                if not await access.still_valid():
                    yield _frame("end", {"reason": ENDED})
                    return
                event = await sub.get(POLL_S)
                if event is None:
                    quiet += POLL_S
                    if quiet >= KEEPALIVE_S:
                        quiet = 0.0
                        yield b": keep-alive\n\n"
                    continue
                quiet = 0.0
                seq += 1
                if sub.missed:
                    event = {**event, "missed": sub.missed}
                    sub.missed = 0
                yield _frame("change", event, seq)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
