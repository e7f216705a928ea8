"""``/api/sites``: the sites (plants) of the registry, their shifts, and the shift running
at an instant. Sites are declared in a sources file (``apply``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from factorysync.api.deps import AUTH_RESPONSES, Responses, StoreDep, Viewer
from factorysync.api.errors import invalid
from factorysync.api.schemas import ErrorPublic, ShiftAtPublic, SitePublic
from factorysync.errors import ConfigError
from factorysync.services import sites as site_service

router = APIRouter(prefix="/api/sites", tags=["sites"], responses=AUTH_RESPONSES)

SiteName = Annotated[str, Path(min_length=1, max_length=32, description="The site's name.")]
NOT_FOUND: Responses = {404: {"model": ErrorPublic, "description": "No such site"}}


@router.get("", response_model=list[SitePublic])
def list_sites(_: Viewer, store: StoreDep) -> Any:
    """Every site, by name: time zone, shifts and number of sources."""
    return site_service.list_sites(store)


@router.get("/{name}", response_model=SitePublic, responses=NOT_FOUND)
def read_site(name: SiteName, _: Viewer, store: StoreDep) -> Any:
    """One site with its shifts."""
    return site_service.get_site(store, name)


@router.get(
    "/{name}/shift",
    response_model=ShiftAtPublic,
    responses={
        **NOT_FOUND,
        422: {"model": ErrorPublic, "description": "'at' is not an ISO 8601 instant"},
    },
)
def shift_at(
    name: SiteName,
    _: Viewer,
    store: StoreDep,
    at: Annotated[
        str | None,
        Query(
            max_length=64,
            description="ISO 8601 instant (without an offset: UTC); default now.",
        ),
    ] = None,
) -> Any:
    """The shift running at ``at`` in the site's time zone (``shift`` null between shifts)."""
    try:
        instant = None if at is None else site_service.parse_instant(at)
    except ConfigError as exc:
        raise invalid(["query", "at"], str(exc)) from None
    return site_service.shift_at(store, name, instant)
