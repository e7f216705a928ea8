"""The sites of the registry (DESIGN §8): reading them, saving declared ones, and the
site of a new source.

Every source references a site (``data_source_registry.site``, a foreign key), so a
site is saved before the sources that name it: ``apply`` upserts the declared sites
first, in the same transaction. The process's own site (``FACTORYSYNC_SITE``) is created
on demand, without a zone; any other site a source names must be declared or stored.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from factorysync.config.sites import SiteDecl, site_from_row
from factorysync.errors import ConfigError, NotFoundError
from factorysync.store.db import plain
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import sites as sites_t
from factorysync.store.types import utcnow

SITE_FIELDS = ("time_zone", "description", "shifts")


def list_sites(conn: Connection) -> list[dict[str, Any]]:
    """Every site, by name, with the number of its sources (``sources``)."""
    counts = select(reg_t.c.site, func.count().label("n")).group_by(reg_t.c.site).subquery("counts")
    rows = conn.execute(
        select(sites_t, func.coalesce(counts.c.n, 0).label("sources"))
        .outerjoin(counts, counts.c.site == sites_t.c.name)
        .order_by(sites_t.c.name)
    )
    return [plain(r) for r in rows.mappings()]


def site_names(conn: Connection) -> list[str]:
    return list(conn.execute(select(sites_t.c.name).order_by(sites_t.c.name)).scalars())


def get_site(conn: Connection, name: str) -> dict[str, Any]:
    """One site's row; NotFoundError naming the known sites when there is none."""
    row = conn.execute(select(sites_t).where(sites_t.c.name == name)).mappings().first()
    if row is None:
        raise NotFoundError(unknown_site_message(conn, name))
    found = plain(row)
    found["sources"] = conn.execute(
        select(func.count()).select_from(reg_t).where(reg_t.c.site == name)
    ).scalar_one()
    return found


def site_declaration(conn: Connection, name: str) -> SiteDecl:
    return site_from_row(get_site(conn, name))


def known_sites(conn: Connection) -> str:
    """The stored sites' names, for an error message."""
    known = site_names(conn)
    return ", ".join(known[:20]) + (" …" if len(known) > 20 else "") or "none"


def unknown_site_message(conn: Connection, name: str) -> str:
    return f"no site {name[:40]!r} (known sites: {known_sites(conn)})"


def undeclared_site(name: str, known: str) -> str:
    return (
        f"site {name!r} is neither declared (in the file's 'sites:' list) nor registered "
        f"(known sites: {known})"
    )


def check_site(conn: Connection, name: str | None) -> str | None:
    """``name`` when it is None or a stored site (a filter); else NotFoundError."""
    if (
        name is not None
        and conn.execute(select(sites_t.c.name).where(sites_t.c.name == name)).first() is None
    ):
        raise NotFoundError(unknown_site_message(conn, name))
    return name


def site_zone(conn: Connection, name: str) -> str | None:
    """The stored time zone of a site (None: none set, or no such site)."""
    found = conn.execute(select(sites_t.c.time_zone).where(sites_t.c.name == name)).scalar()
    return str(found) if found else None


def site_zones(conn: Connection) -> dict[str, str]:
    """Site name → time zone, for the sites that have one."""
    rows = conn.execute(select(sites_t.c.name, sites_t.c.time_zone))
    return {name: zone for name, zone in rows if zone}


def _diff(label: str, old: Any, new: Any) -> str:
    if isinstance(old, list | dict) or isinstance(new, list | dict):
        return f"{label} changed"
    return f"{label}: {old!r} → {new!r}"


def save_site(conn: Connection, decl: SiteDecl) -> tuple[str, list[str]]:
    """Create or update one site so the registry matches ``decl``; returns the action
    (created, updated, unchanged) and what changed."""
    wanted = decl.stored()
    row = conn.execute(select(sites_t).where(sites_t.c.name == decl.name)).mappings().first()
    if row is None:
        conn.execute(insert(sites_t).values(name=decl.name, **wanted))
        return "created", [f"{k}: {v!r}" for k, v in wanted.items() if k != "shifts" and v]
    changed = {k: v for k, v in wanted.items() if row[k] != v}
    if not changed:
        return "unchanged", []
    conn.execute(
        update(sites_t).where(sites_t.c.name == decl.name).values(**changed, updated_at=utcnow())
    )
    return "updated", [_diff(k, row[k], v) for k, v in changed.items()]


def ensure_site(conn: Connection, name: str) -> bool:
    """Create the site ``name`` without a zone unless it exists; whether it was made."""
    if conn.execute(select(sites_t.c.name).where(sites_t.c.name == name)).first() is not None:
        return False
    conn.execute(insert(sites_t).values(name=name))
    return True


def site_for_source(
    conn: Connection, source_id: str, declared: str | None, stored: str | None, default_site: str
) -> str:
    """The site a source is saved with: the declared one (it must exist, unless it is
    the process's own site, made on demand), else the stored one, else the process's."""
    if declared is None:
        if stored is not None:
            return stored
        ensure_site(conn, default_site)
        return default_site
    if declared == default_site:
        ensure_site(conn, declared)
        return declared
    if conn.execute(select(sites_t.c.name).where(sites_t.c.name == declared)).first() is None:
        raise ConfigError(f"source {source_id!r}: {undeclared_site(declared, known_sites(conn))}")
    return declared
