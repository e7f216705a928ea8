"""Reading and writing the source registry (sources, their connections and mappings).

The CLI, the API and ``apply`` all change the registry through :func:`save_source`,
which compares a declaration with what is stored and writes only the differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from factorysync.config import SourceDecl
from factorysync.engine.mapping import MappingConfig
from factorysync.engine.schedule import declared_refresh_interval
from factorysync.errors import NotFoundError
from factorysync.security.secrets import SecretBox
from factorysync.store.db import plain
from factorysync.store.schema import (
    data_source_connections as conns_t,
)
from factorysync.store.schema import (
    data_source_mappings as maps_t,
)
from factorysync.store.schema import (
    data_source_registry as reg_t,
)
from factorysync.store.schema import (
    data_source_sync_state as state_t,
)
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


@dataclass
class Change:
    source_id: str
    action: str  # created | updated | unchanged | removed
    details: list[str] = field(default_factory=list)


def normal_mapping_config(config: dict[str, Any] | MappingConfig) -> dict[str, Any]:
    model = config if isinstance(config, MappingConfig) else MappingConfig.model_validate(config)
    return model.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def get_source(conn: Connection, source_id: str) -> dict[str, Any]:
    row = conn.execute(select(reg_t).where(reg_t.c.source_id == source_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no source {source_id!r} (see 'factorysync source list')")
    source = plain(row)
    source["connections"] = [
        plain(r)
        for r in conn.execute(
            select(conns_t)
            .where(conns_t.c.source_id == source_id)
            .order_by(conns_t.c.is_primary.desc(), conns_t.c.position, conns_t.c.id)
        ).mappings()
    ]
    source["mappings"] = [
        plain(r)
        for r in conn.execute(
            select(maps_t).where(maps_t.c.source_id == source_id).order_by(maps_t.c.id)
        ).mappings()
    ]
    return source


def list_sources(conn: Connection, *, status: str | None = None) -> list[dict[str, Any]]:
    stmt = select(reg_t).order_by(reg_t.c.priority, reg_t.c.source_id)
    if status:
        stmt = stmt.where(reg_t.c.status == status)
    return [plain(r) for r in conn.execute(stmt).mappings()]


def source_ids(conn: Connection) -> list[str]:
    return list(conn.execute(select(reg_t.c.source_id).order_by(reg_t.c.source_id)).scalars())


def _diff(label: str, old: Any, new: Any, secret: bool = False) -> str | None:
    if old == new:
        return None
    if secret:
        return f"{label} changed"
    if isinstance(old, dict | list) or isinstance(new, dict | list):
        return f"{label} changed"
    return f"{label}: {old!r} → {new!r}"


def save_source(
    conn: Connection, decl: SourceDecl, box: SecretBox, *, created_by: str | None = None
) -> Change:
    """Create or update one source so the registry matches ``decl``; report what changed."""
    now = utcnow()
    wanted = {f: getattr(decl, f) for f in SOURCE_FIELDS}
    current = (
        conn.execute(select(reg_t).where(reg_t.c.source_id == decl.source_id)).mappings().first()
    )
    if current is None:
        conn.execute(
            insert(reg_t).values(
                source_id=decl.source_id,
                status=decl.status,
                created_by=decl.created_by or created_by,
                next_sync=now,
                **wanted,
            )
        )
        _sync_children(conn, decl, box, now, [])
        return Change(decl.source_id, "created")
    details = [d for f in SOURCE_FIELDS if (d := _diff(f, current[f], wanted[f])) is not None]
    values: dict[str, Any] = {f: wanted[f] for f in SOURCE_FIELDS if current[f] != wanted[f]}
    # 'error' is the engine's verdict, not the user's; an active declaration leaves it alone.
    if decl.status != current["status"] and not (
        decl.status == "active" and current["status"] == "error"
    ):
        details.append(f"status: {current['status']!r} → {decl.status!r}")
        values["status"] = decl.status
    if "refresh_interval" in values or "schedule" in values:
        values["next_sync"] = now
    if values:
        conn.execute(update(reg_t).where(reg_t.c.id == current["id"]).values(**values))
    _sync_children(conn, decl, box, now, details)
    if details and not values:
        conn.execute(update(reg_t).where(reg_t.c.id == current["id"]).values(updated_at=now))
    return Change(decl.source_id, "updated" if details else "unchanged", details)


def _sync_children(
    conn: Connection, decl: SourceDecl, box: SecretBox, now: datetime, details: list[str]
) -> None:
    sid = decl.source_id
    have = {
        r["connection_name"]: plain(r)
        for r in conn.execute(select(conns_t).where(conns_t.c.source_id == sid)).mappings()
    }
    for position, c in enumerate(decl.connections):
        values = {
            "connection_type": c.connection_type,
            "connection_config": c.connection_config,
            "is_primary": c.is_primary,
            "is_backup": c.is_backup,
            "status": c.status,
            "position": position,
        }
        old = have.pop(c.connection_name, None)
        label = f"connections.{c.connection_name}"
        if old is None:
            conn.execute(
                insert(conns_t).values(
                    source_id=sid,
                    connection_name=c.connection_name,
                    authentication_config=box.encrypt_config(c.authentication_config),
                    **values,
                )
            )
            details.append(f"{label} added")
            continue
        changed = {k: v for k, v in values.items() if old[k] != v}
        for key, new in changed.items():
            if (d := _diff(f"{label}.{key}", old[key], new)) is not None:
                details.append(d)
        if box.decrypt_config(old["authentication_config"]) != c.authentication_config:
            changed["authentication_config"] = box.encrypt_config(c.authentication_config)
            details.append(f"{label}.authentication_config changed")
        if changed:
            conn.execute(
                update(conns_t).where(conns_t.c.id == old["id"]).values(**changed, updated_at=now)
            )
    for name, old in have.items():
        conn.execute(delete(conns_t).where(conns_t.c.id == old["id"]))
        details.append(f"connections.{name} removed")

    have_maps = {
        r["target_table"]: plain(r)
        for r in conn.execute(select(maps_t).where(maps_t.c.source_id == sid)).mappings()
    }
    for m in decl.mappings:
        values = {
            "mapping_config": normal_mapping_config(m.mapping_config),
            "sync_strategy": m.sync_strategy,
            "sync_frequency": m.sync_frequency,
            "data_retention_days": m.data_retention_days,
            "is_active": m.is_active,
        }
        old = have_maps.pop(m.target_table, None)
        label = f"mappings.{m.target_table}"
        if old is None:
            conn.execute(
                insert(maps_t).values(source_id=sid, target_table=m.target_table, **values)
            )
            details.append(f"{label} added")
            continue
        old_values = dict(old, mapping_config=normal_mapping_config(old["mapping_config"]))
        changed = {k: v for k, v in values.items() if old_values[k] != v}
        for key, new in changed.items():
            if (d := _diff(f"{label}.{key}", old_values[key], new)) is not None:
                details.append(d)
        if changed:
            conn.execute(
                update(maps_t).where(maps_t.c.id == old["id"]).values(**changed, updated_at=now)
            )
    for table, old in have_maps.items():
        conn.execute(delete(maps_t).where(maps_t.c.id == old["id"]))
        conn.execute(delete(state_t).where(state_t.c.mapping_id == old["id"]))
        details.append(f"mappings.{table} removed (rows already synced are kept)")


def remove_source(conn: Connection, source_id: str) -> Change:
    found = conn.execute(delete(reg_t).where(reg_t.c.source_id == source_id)).rowcount
    if not found:
        raise NotFoundError(f"no source {source_id!r}")
    conn.execute(delete(state_t).where(state_t.c.source_id == source_id))
    return Change(source_id, "removed")


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
    sources' data versions, and how many sources write it."""
    row = conn.execute(
        select(func.coalesce(func.sum(reg_t.c.data_version), 0), func.count())
        .select_from(reg_t.join(maps_t, maps_t.c.source_id == reg_t.c.source_id))
        .where(maps_t.c.target_table == target_table)
    ).one()
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
    again (it was when the source was saved)."""
    fields = {f: source[f] for f in SOURCE_FIELDS}
    if declared_refresh_interval(source) is None:
        del fields["refresh_interval"]
    return SourceDecl.model_validate(
        {
            "source_id": source["source_id"],
            "status": source["status"],
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
                for c in source["connections"]
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
                for m in source["mappings"]
            ],
        },
        context={"stored": True},
    )


def mapping_frequencies(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """Per source: its mappings' ``sync_frequency`` and ``is_active`` (for cadences)."""
    found: dict[str, list[dict[str, Any]]] = {}
    rows = conn.execute(
        select(maps_t.c.source_id, maps_t.c.sync_frequency, maps_t.c.is_active).order_by(
            maps_t.c.source_id, maps_t.c.id
        )
    )
    for sid, frequency, active in rows:
        found.setdefault(sid, []).append({"sync_frequency": frequency, "is_active": active})
    return found


def apply_declarations(
    conn: Connection,
    decls: list[SourceDecl],
    box: SecretBox,
    *,
    prune: bool = False,
    created_by: str = "apply",
) -> list[Change]:
    """Make the registry match ``decls`` in the caller's (single) transaction."""
    changes = [save_source(conn, d, box, created_by=created_by) for d in decls]
    if prune:
        wanted = {d.source_id for d in decls}
        for sid in source_ids(conn):
            if sid not in wanted:
                changes.append(remove_source(conn, sid))
    return changes
