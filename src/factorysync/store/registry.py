"""Reading the source registry (sources, their connections and mappings), and the
registry values the engine keeps (due runs, data versions, status).

Declarations are saved by :mod:`factorysync.store.registry_save`, which the CLI, the
API and ``apply`` all go through.

Connections and mappings point at their source by the registry row's id (the design's
``source_id INTEGER``, ``c.registry_id`` here); callers name a source by its readable
``source_id`` and get children back with that name. A source written by plain SQL with
only the design's columns reads like any other: the design's defaults fill what it left
out (:func:`with_defaults`, :func:`declaration_of`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, union_all, update

from factorysync.config import SourceDecl
from factorysync.config.cadence import declared_refresh_interval
from factorysync.config.mapping import MappingConfig
from factorysync.errors import NotFoundError
from factorysync.intake import declaration
from factorysync.security.secrets import SecretBox
from factorysync.store.db import plain
from factorysync.store.schema import central_sites as central_t
from factorysync.store.schema import data_source_connections as conns_t
from factorysync.store.schema import data_source_mappings as maps_t
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import sites as sites_t
from factorysync.store.schema import users as users_t
from factorysync.store.types import utcnow

SOURCE_FIELDS = (
    "name",
    "description",
    "source_type",
    "connection_type",
    "priority",
    "refresh_interval",
    "schedule",
    "category",
    "legacy_id",
)


def normal_mapping_config(config: dict[str, Any] | MappingConfig) -> dict[str, Any]:
    model = config if isinstance(config, MappingConfig) else MappingConfig.model_validate(config)
    return model.model_dump(mode="json", by_alias=True, exclude_defaults=True)


# The design's defaults, for rows written by plain SQL that hold NULL where the design
# allows it (its columns are nullable): read as the database would have filled them.
REGISTRY_DEFAULTS = {"status": "active", "priority": 1, "refresh_interval": 300, "error_count": 0}
CONNECTION_DEFAULTS: dict[str, Any] = {
    "connection_config": {},
    "authentication_config": {},
    "is_primary": False,
    "is_backup": False,
    "status": "active",
}
MAPPING_DEFAULTS: dict[str, Any] = {"mapping_config": {}, "sync_strategy": "incremental"}
MAPPING_DEFAULTS |= {"is_active": True}


def with_defaults(
    row: dict[str, Any], defaults: dict[str, Any] = REGISTRY_DEFAULTS
) -> dict[str, Any]:
    """``row`` (changed in place) with the design's defaults where it holds NULL."""
    for key, value in defaults.items():
        if row.get(key) is None:
            row[key] = value.copy() if isinstance(value, dict) else value
    return row


def registry_id(conn: Connection, source_id: str) -> int:
    found = conn.execute(select(reg_t.c.id).where(reg_t.c.source_id == source_id)).scalar()
    if found is None:
        raise NotFoundError(f"no source {source_id!r} (see 'factorysync source list')")
    return int(found)


def is_due(now: datetime) -> ColumnElement[bool]:
    """Due for the scheduler: ``next_sync`` passed, or an active source that never ran
    nor was scheduled (written by plain SQL: it runs at once). A source the engine
    stopped (crash loop) has no ``next_sync`` either, but it is in ``error``."""
    never = and_(
        reg_t.c.next_sync.is_(None), reg_t.c.last_sync.is_(None), reg_t.c.status == "active"
    )
    return or_(reg_t.c.next_sync <= now, never)


def _children(conn: Connection, table: Any, source: dict[str, Any], *order: Any) -> list[Any]:
    rows = conn.execute(select(table).where(table.c.registry_id == source["id"]).order_by(*order))
    defaults = CONNECTION_DEFAULTS if table is conns_t else MAPPING_DEFAULTS
    # Shown with the source's readable id, as every caller names sources.
    return [
        with_defaults(dict(plain(r), source_id=source["source_id"]), defaults)
        for r in rows.mappings()
    ]


def _registry_rows() -> Any:
    """Registry rows as callers read them: ``created_by`` is the user's name (its id is
    ``created_by_id``), and NULLs of a row written by plain SQL read as the defaults."""
    columns = [c for c in reg_t.c if c.key != "created_by"]
    return (
        select(
            *columns,
            reg_t.c.created_by.label("created_by_id"),
            users_t.c.username.label("created_by"),
            sites_t.c.time_zone.label("site_time_zone"),
        )
        .outerjoin(users_t, users_t.c.id == reg_t.c.created_by)
        .outerjoin(sites_t, sites_t.c.name == reg_t.c.site)
    )


def get_source(conn: Connection, source_id: str) -> dict[str, Any]:
    row = conn.execute(_registry_rows().where(reg_t.c.source_id == source_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no source {source_id!r} (see 'factorysync source list')")
    source = with_defaults(plain(row))
    source["connections"] = _children(
        conn, conns_t, source, conns_t.c.is_primary.desc(), conns_t.c.position, conns_t.c.id
    )
    source["mappings"] = _children(conn, maps_t, source, maps_t.c.id)
    _mark_primary(source["connections"])
    return source


def _mark_primary(connections: list[dict[str, Any]]) -> None:
    """A source none of whose connections says is_primary (the design's default is false:
    rows written by plain SQL) reads with the first one that is not a backup as primary,
    as a declaration does (factorysync.config.SourceDecl)."""
    if connections and not any(c["is_primary"] for c in connections):
        first = next((c for c in connections if not c["is_backup"]), connections[0])
        first["is_primary"] = True


def list_sources(
    conn: Connection, *, status: str | None = None, site: str | None = None
) -> list[dict[str, Any]]:
    stmt = _registry_rows().order_by(reg_t.c.priority, reg_t.c.source_id)
    if status:
        stmt = stmt.where(reg_t.c.status == status)
    if site:
        stmt = stmt.where(reg_t.c.site == site)
    return [with_defaults(plain(r)) for r in conn.execute(stmt).mappings()]


def source_ids(conn: Connection) -> list[str]:
    return list(conn.execute(select(reg_t.c.source_id).order_by(reg_t.c.source_id)).scalars())


def data_changed(conn: Connection, source_id: str, **also: Any) -> None:
    """Count a change of the source's rows (in the transaction that made it): cached
    answers of its target tables compare ``data_version`` to know they are stale.
    ``also``: other registry values to set in the same statement."""
    conn.execute(
        update(reg_t)
        .where(reg_t.c.source_id == source_id)
        .values(data_version=reg_t.c.data_version + 1, updated_at=reg_t.c.updated_at, **also)
    )


def data_version(conn: Connection, target_table: str) -> tuple[int, int]:
    """What changes whenever the rows of ``target_table`` may have changed: the sum of its
    sources' data versions, and how many sources write it. On a central store the
    messages the central ingest applied to the table count too (``central_sites``)."""
    local = (
        select(func.coalesce(func.sum(reg_t.c.data_version), 0).label("v"), func.count().label("n"))
        .select_from(reg_t.join(maps_t, maps_t.c.registry_id == reg_t.c.id))
        .where(maps_t.c.target_table == target_table)
    )
    forwarded = select(
        func.coalesce(func.sum(central_t.c.messages_applied), 0).label("v"),
        func.count().label("n"),
    ).where(central_t.c.table_name == target_table)
    both = union_all(local, forwarded).subquery()  # one round trip per cache check
    row = conn.execute(select(func.sum(both.c.v), func.sum(both.c.n))).one()
    return int(row[0]), int(row[1])


def set_status(conn: Connection, source_id: str, status: str) -> None:
    values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
    if status == "active":
        values |= {"error_count": 0, "next_sync": utcnow()}
    found = conn.execute(
        update(reg_t).where(reg_t.c.source_id == source_id).values(**values)
    ).rowcount
    if not found:
        raise NotFoundError(f"no source {source_id!r} (see 'factorysync source list')")


def declaration_of(source: dict[str, Any], box: SecretBox) -> SourceDecl:
    """The stored source as a declaration (secrets decrypted: for the engine only).

    A ``refresh_interval`` that only holds what the mappings' frequency (or the default)
    gives is left out, as it was in the declaration; the stored cadence is not checked
    again (it was when the source was saved). NULLs of a row written by plain SQL read as
    the design's defaults."""
    source = with_defaults(dict(source))
    fields = {f: source[f] for f in SOURCE_FIELDS}
    if declared_refresh_interval(source) is None:
        del fields["refresh_interval"]
    connections = [with_defaults(dict(c), CONNECTION_DEFAULTS) for c in source["connections"]]
    mappings = [with_defaults(dict(m), MAPPING_DEFAULTS) for m in source["mappings"]]
    decl = declaration(
        {
            "source_id": source["source_id"],
            "status": source["status"],
            "site": source.get("site"),
            **fields,
            "connections": [
                {
                    "connection_name": c["connection_name"],
                    "connection_type": c["connection_type"],
                    "connection_config": c["connection_config"],
                    "authentication_config": box.decrypt_config(c["authentication_config"]),
                    "is_primary": c["is_primary"],
                    "is_backup": c["is_backup"],
                    "status": c["status"],
                }
                for c in connections
            ],
            "mappings": [
                {
                    "target_table": m["target_table"],
                    "mapping_config": m["mapping_config"],
                    "sync_strategy": m["sync_strategy"],
                    "sync_frequency": m["sync_frequency"],
                    "data_retention_days": m["data_retention_days"],
                    "is_active": m["is_active"],
                }
                for m in mappings
            ],
        },
        stored=True,
    )
    for c in decl.connections:
        c.in_site_zone(source.get("site_time_zone"))
    return decl


def mapping_frequencies(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """Per source: its mappings' ``sync_frequency`` and ``is_active`` (for cadences)."""
    found: dict[str, list[dict[str, Any]]] = {}
    rows = conn.execute(
        select(reg_t.c.source_id, maps_t.c.sync_frequency, maps_t.c.is_active)
        .join(reg_t, reg_t.c.id == maps_t.c.registry_id)
        .order_by(reg_t.c.source_id, maps_t.c.id)
    )
    for sid, frequency, active in rows:
        found.setdefault(sid, []).append(
            {"sync_frequency": frequency, "is_active": active is not False}
        )
    return found
