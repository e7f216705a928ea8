"""``/api/runs``, ``/api/templates`` and ``/api/status``: read-only registry views."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from factorysync import services
from factorysync.api.deps import AUTH_RESPONSES, Operator, StoreDep, Viewer
from factorysync.api.schemas import ErrorPublic, RunPublic, StatusPublic, TemplatePublic
from factorysync.errors import NotFoundError
from factorysync.store.templates import list_templates as stored_templates
from factorysync.store.templates import public_template

router = APIRouter(tags=["runs"], responses=AUTH_RESPONSES)


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


@router.get("/api/status", response_model=StatusPublic, tags=["status"])
def read_status(_: Viewer, store: StoreDep) -> Any:
    """Sources by status, runs in progress, scheduler lag and the last day's runs."""
    return services.status_summary(store)
