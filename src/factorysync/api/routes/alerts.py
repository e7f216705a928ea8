"""``/api/alerts``: alert records (open, acknowledged, resolved) and acknowledging one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from factorysync.alerts import records
from factorysync.api.deps import AUTH_RESPONSES, Operator, StoreDep, Viewer
from factorysync.api.schemas import ErrorPublic

router = APIRouter(prefix="/api/alerts", tags=["alerts"], responses=AUTH_RESPONSES)
AlertState = Literal["open", "acknowledged", "resolved"]


class AlertPublic(BaseModel):
    id: int
    source_id: str | None = None
    rule: str
    severity: str
    state: AlertState
    message: str
    occurrences: int
    opened_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    details: dict[str, Any] | None = None


@router.get("", response_model=list[AlertPublic])
def list_alerts(
    _: Viewer,
    store: StoreDep,
    state: Annotated[
        list[AlertState] | None,
        Query(description="Only alerts in these states (repeat the parameter for several)."),
    ] = None,
    source_id: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Alerts, open first, then acknowledged, then resolved; newest first within each."""
    with store.connect() as conn:
        return records.list_alerts(conn, states=state, source_id=source_id, limit=limit)


@router.post(
    "/{alert_id}/acknowledge",
    response_model=AlertPublic,
    responses={404: {"model": ErrorPublic, "description": "No such alert"}},
)
def acknowledge_alert(
    alert_id: Annotated[int, Path(ge=1, le=2**31 - 1)], who: Operator, store: StoreDep
) -> Any:
    """Mark an open alert as seen (it stays until its condition clears). Acknowledged and
    resolved alerts are returned unchanged."""
    with store.begin() as conn:
        return records.acknowledge(conn, alert_id, who.username)
