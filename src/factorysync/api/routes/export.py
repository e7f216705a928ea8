"""``/api/export``: the registry as a sources file, as ``factorysync export`` writes it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from factorysync.api.deps import AUTH_RESPONSES, Admin, StoreDep
from factorysync.api.schemas import ErrorPublic
from factorysync.export import export_sources

router = APIRouter(tags=["sources"], responses=AUTH_RESPONSES)
# The variables an export's ${env:NAME} placeholders name, comma-separated.
ENV_HEADER = "X-Factorysync-Env-Names"


@router.get(
    "/api/export",
    response_class=Response,
    responses={
        200: {
            "content": {"application/yaml": {}},
            "description": "YAML that 'factorysync apply' reads back unchanged; the header "
            f"{ENV_HEADER} lists the variables its placeholders name.",
        },
        404: {"model": ErrorPublic, "description": "No such source"},
    },
)
async def export(
    _: Admin,
    store: StoreDep,
    source_id: Annotated[
        list[str] | None, Query(description="Sources to export (default: every source).")
    ] = None,
    secrets_as_env: Annotated[
        bool,
        Query(
            description="Secrets as ${env:NAME} placeholders (default: '***', which apply "
            "reads as 'keep the stored secret')."
        ),
    ] = False,
) -> Response:
    """The registry (or some sources) as a sources file; secrets never in clear."""
    found = await run_in_threadpool(export_sources, store, source_id, secrets_as_env=secrets_as_env)
    headers = {ENV_HEADER: ",".join(found.env_names)} if found.env_names else {}
    return Response(found.text, media_type="application/yaml", headers=headers)
