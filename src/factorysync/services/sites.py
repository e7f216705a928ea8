"""The sites (plants) of the registry as the CLI, the API and the console show them:
each with its zone, shifts and number of sources, and the shift running at an instant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from factorysync.config.sites import site_from_row
from factorysync.errors import ConfigError
from factorysync.store import sites as store_sites
from factorysync.store.store import Store


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "time_zone": row.get("time_zone"),
        "description": row.get("description"),
        "shifts": row.get("shifts") or [],
        "sources": int(row.get("sources") or 0),
        "created_at": row.get("created_at"),
        "updated_at": row.get("updated_at"),
    }


def list_sites(store: Store) -> list[dict[str, Any]]:
    """Every site, by name, with its number of sources."""
    with store.connect() as conn:
        lag = _forward_lag(conn)
        return [
            _public(r) | {"forward_lag": lag.get(r["name"])} for r in store_sites.list_sites(conn)
        ]


def site_names(store: Store) -> list[str]:
    with store.connect() as conn:
        return store_sites.site_names(conn)


def get_site(store: Store, name: str) -> dict[str, Any]:
    """One site (NotFoundError naming the known ones when there is none)."""
    with store.connect() as conn:
        return _public(store_sites.get_site(conn, name)) | {
            "forward_lag": _forward_lag(conn).get(name)
        }


def _forward_lag(conn: Any) -> dict[str, dict[str, Any]]:
    """Central store: each forwarding site's lag (see services.status.forwarded_lag)."""
    from factorysync.forward.central_lag import site_lag
    from factorysync.store.types import utcnow

    return {lag["site"]: lag for lag in site_lag(conn, utcnow())}


def parse_instant(text: str, what: str = "at") -> datetime:
    """An ISO 8601 instant; one without an offset is UTC. ConfigError naming ``what``."""
    try:
        found = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{what}: {text[:60]!r} is not an ISO 8601 instant (e.g. 2026-12-06T07:30:00+07:00)"
        ) from None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def shift_at(store: Store, name: str, at: datetime | None = None) -> dict[str, Any]:
    """The shift of site ``name`` running at ``at`` (now when None), in the site's zone:
    ``shift`` is None between shifts; ``started_at`` is when that run of the shift began
    (the site's wall-clock time, with its offset)."""
    with store.connect() as conn:
        row = store_sites.get_site(conn, name)
    site = site_from_row(row)
    instant = at or datetime.now(UTC)
    shift, local = site.shift_at(instant)
    return {
        "site": site.name,
        "time_zone": site.time_zone,
        "at": instant.astimezone(UTC),
        "local_time": local.isoformat(timespec="seconds"),
        "shift": None if shift is None else shift.model_dump(exclude_none=True),
        "started_at": None
        if shift is None
        else site.shift_start(shift, local).isoformat(timespec="seconds"),
    }
