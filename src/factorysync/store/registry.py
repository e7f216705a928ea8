"""Reading and writing the source registry (sources, their connections and mappings).

The CLI, the API and ``apply`` all change the registry through :func:`save_source`,
which compares a declaration with what is stored and writes only the differences.

Connections and mappings point at their source by the registry row's id (the design's
``source_id INTEGER``, ``c.registry_id`` here); callers name a source by its readable
``source_id`` and get children back with that name. A source written by plain SQL with
only the design's columns reads like any other: the design's defaults fill what it left
out (:func:`declaration_of`).
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from factorysync.config import MappingDecl, SourceDecl
from factorysync.config.cadence import declared_refresh_interval
from factorysync.config.mapping import MappingConfig
from factorysync.errors import ConfigError, NotFoundError
from factorysync.intake import declaration
from factorysync.security.secrets import (
    MASK,
    Redactor,
    SecretBox,
    env_reference_names,
    resolve_env_refs,
    unmask,
)
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


@dataclass
class Change:
    source_id: str
    action: str  # created | updated | unchanged | removed
    details: list[str] = field(default_factory=list)


def normal_mapping_config(config: dict[str, Any] | MappingConfig) -> dict[str, Any]:
    model = config if isinstance(config, MappingConfig) else MappingConfig.model_validate(config)
    return model.model_dump(mode="json", by_alias=True, exclude_defaults=True)


SYSTEM_USER = "factorysync"


def user_id(conn: Connection, username: str | None = None) -> int | None:
    """The ``users`` id that ``created_by`` records for whoever acts: the named user (the
    API's and the console's logged-in user, or the OS user running the CLI), else the
    system user row (inactive, no password: made on first need). On a store without
    any account yet there is nobody to name: None (the first account is the admin
    ``init`` creates)."""
    name = username or _os_user()
    found = conn.execute(select(users_t.c.id).where(users_t.c.username == name)).scalar()
    if found is not None:
        return int(found)
    system = conn.execute(select(users_t.c.id).where(users_t.c.username == SYSTEM_USER)).scalar()
    if system is not None:
        return int(system)
    if conn.execute(select(users_t.c.id).limit(1)).first() is None:
        return None
    return int(
        conn.execute(
            insert(users_t)
            .values(
                username=SYSTEM_USER,
                full_name="factorysync (changes made from the command line)",
                role="viewer",
                is_active=False,
            )
            .returning(users_t.c.id)
        ).scalar_one()
    )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return SYSTEM_USER


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
        _with_defaults(dict(plain(r), source_id=source["source_id"]), defaults)
        for r in rows.mappings()
    ]


def _registry_rows() -> Any:
    """Registry rows as callers read them: ``created_by`` is the user's name (its id is
    ``created_by_id``), and NULLs of a row written by plain SQL read as the defaults."""
    columns = [c for c in reg_t.c if c.key != "created_by"]
    return select(
        *columns,
        reg_t.c.created_by.label("created_by_id"),
        users_t.c.username.label("created_by"),
    ).outerjoin(users_t, users_t.c.id == reg_t.c.created_by)


def get_source(conn: Connection, source_id: str) -> dict[str, Any]:
    row = conn.execute(_registry_rows().where(reg_t.c.source_id == source_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no source {source_id!r} (see 'factorysync source list')")
    source = _with_defaults(plain(row))
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


def list_sources(conn: Connection, *, status: str | None = None) -> list[dict[str, Any]]:
    stmt = _registry_rows().order_by(reg_t.c.priority, reg_t.c.source_id)
    if status:
        stmt = stmt.where(reg_t.c.status == status)
    return [_with_defaults(plain(r)) for r in conn.execute(stmt).mappings()]


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


def _creator(conn: Connection, decl: SourceDecl, acting: str | None) -> int | None:
    """A declared ``created_by`` that names a user, else the acting user."""
    if decl.created_by:
        found = conn.execute(
            select(users_t.c.id).where(users_t.c.username == decl.created_by)
        ).scalar()
        if found is not None:
            return int(found)
    return user_id(conn, acting)


def chosen_default(mapping: MappingDecl) -> str | None:
    """What the design's default could not give alone, and what was chosen instead
    (reported by ``apply`` for a new mapping; see factorysync.config.MappingDecl)."""
    if mapping.sync_strategy == "full" and "sync_strategy" not in mapping.model_fields_set:
        return (
            f"mappings.{mapping.target_table}.sync_strategy: full (the default "
            "'incremental' needs a mapping_config.cursor_field)"
        )
    return None


def chosen_defaults(decl: SourceDecl) -> list[str]:
    return [note for m in decl.mappings if (note := chosen_default(m)) is not None]


def save_source(
    conn: Connection, decl: SourceDecl, box: SecretBox, *, created_by: str | None = None
) -> Change:
    """Create or update one source so the registry matches ``decl``; report what changed.

    ``created_by``: the acting user's name (None: the OS user, for the command line)."""
    now = utcnow()
    wanted = {f: getattr(decl, f) for f in SOURCE_FIELDS}
    current = (
        conn.execute(select(reg_t).where(reg_t.c.source_id == decl.source_id)).mappings().first()
    )
    if current is None:
        new_id = conn.execute(
            insert(reg_t)
            .values(
                source_id=decl.source_id,
                status=decl.status,
                created_by=_creator(conn, decl, created_by),
                next_sync=now,
                **wanted,
            )
            .returning(reg_t.c.id)
        ).scalar_one()
        _sync_children(conn, decl, box, now, [], new_id)
        return Change(decl.source_id, "created", chosen_defaults(decl))
    current = _with_defaults(dict(current))
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
    _sync_children(conn, decl, box, now, details, current["id"])
    if details and not values:
        conn.execute(update(reg_t).where(reg_t.c.id == current["id"]).values(updated_at=now))
    return Change(decl.source_id, "updated" if details else "unchanged", details)


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


def _with_defaults(row: dict[str, Any], defaults: dict[str, Any] = REGISTRY_DEFAULTS) -> Any:
    for key, value in defaults.items():
        if row.get(key) is None:
            row[key] = value.copy() if isinstance(value, dict) else value
    return row


def _unset_variables(declared: Any, stored: Any, where: str) -> list[str]:
    """Where ``declared`` puts ``${env:NAME}`` references in place of a different stored
    value and a variable is not set here. Applied, the reference would replace the stored
    secret (an export's placeholders applied without their variables): refused instead."""
    if isinstance(declared, dict):
        have = stored if isinstance(stored, dict) else {}
        return [
            problem
            for k, v in declared.items()
            for problem in _unset_variables(v, have.get(k), f"{where}.{k}")
        ]
    if isinstance(declared, list):
        items = stored if isinstance(stored, list) else []
        return [
            problem
            for i, v in enumerate(declared)
            for problem in _unset_variables(
                v, items[i] if i < len(items) else None, f"{where}[{i}]"
            )
        ]
    if not isinstance(declared, str) or stored is None or declared == stored:
        return []
    return [
        f"{where}: environment variable {name} is not set, and a secret is stored: set it "
        "where the file is applied, or write '***' to keep the stored secret"
        for name in env_reference_names(declared)
        if name not in os.environ
    ]


def _same_secrets(stored: Any, declared: Any) -> bool:
    """Whether declared secrets give the stored ones, value by value: equal, or
    ``${env:NAME}`` references (an export's placeholders) whose variables hold the stored
    values. A reference stored as it is declared is the same, set here or not."""
    if stored == declared:
        return True
    if isinstance(declared, dict) and isinstance(stored, dict):
        return declared.keys() == stored.keys() and all(
            _same_secrets(stored[k], v) for k, v in declared.items()
        )
    if isinstance(declared, list) and isinstance(stored, list):
        return len(declared) == len(stored) and all(
            _same_secrets(s, d) for s, d in zip(stored, declared, strict=True)
        )
    if not isinstance(declared, str):
        return False
    try:
        return bool(resolve_env_refs(declared, where="authentication_config") == stored)
    except ConfigError:  # a variable not set (where nothing was stored): they differ
        return False


def _kept(declared: Any, stored: Any, where: str) -> Any:
    """``declared`` with each ``"***"`` (a secret as exports and the API show it) replaced
    by the stored value it stands for."""
    if declared == MASK:
        if stored is None:
            raise ConfigError(
                f"{where}: '***' keeps a stored secret, and none is stored here: write the "
                "value, or a ${env:NAME} reference"
            )
        return stored
    if isinstance(declared, dict):
        have = stored if isinstance(stored, dict) else {}
        return {k: _kept(v, have.get(k), f"{where}.{k}") for k, v in declared.items()}
    if isinstance(declared, list):
        items = stored if isinstance(stored, list) else []
        return [
            _kept(v, items[i] if i < len(items) else None, f"{where}[{i}]")
            for i, v in enumerate(declared)
        ]
    return declared


def _sync_children(
    conn: Connection,
    decl: SourceDecl,
    box: SecretBox,
    now: datetime,
    details: list[str],
    source_ref: int,
) -> None:
    have = {
        r["connection_name"]: _with_defaults(plain(r), CONNECTION_DEFAULTS)
        for r in conn.execute(select(conns_t).where(conns_t.c.registry_id == source_ref)).mappings()
    }
    stored_auth = {
        name: box.decrypt_config(old["authentication_config"]) for name, old in have.items()
    }
    unset = [
        problem
        for c in decl.connections
        if c.connection_name in stored_auth
        for problem in _unset_variables(
            c.authentication_config,
            stored_auth[c.connection_name],
            f"connections.{c.connection_name}.authentication_config",
        )
    ]
    if unset:
        raise ConfigError(f"source {decl.source_id!r}: {len(unset)} problem(s)", unset)
    # A connection_config as the API and exports show it (secrets masked) keeps the
    # stored value, as "***" does for a secret.
    redact = Redactor()
    for auth in stored_auth.values():
        redact.add(auth)
    for position, c in enumerate(decl.connections):
        old = have.pop(c.connection_name, None)
        values = {
            "connection_type": c.connection_type,
            "connection_config": c.connection_config
            if old is None
            else unmask(c.connection_config, old["connection_config"], redact),
            "is_primary": c.is_primary,
            "is_backup": c.is_backup,
            "status": c.status,
            "position": position,
        }
        label = f"connections.{c.connection_name}"
        stored = {} if old is None else stored_auth[c.connection_name]
        auth = _kept(c.authentication_config, stored, f"{label}.authentication_config")
        if old is None:
            conn.execute(
                insert(conns_t).values(
                    registry_id=source_ref,
                    connection_name=c.connection_name,
                    authentication_config=box.encrypt_config(auth),
                    **values,
                )
            )
            details.append(f"{label} added")
            continue
        changed = {k: v for k, v in values.items() if old[k] != v}
        for key, new in changed.items():
            if (d := _diff(f"{label}.{key}", old[key], new)) is not None:
                details.append(d)
        if not _same_secrets(stored, auth):
            changed["authentication_config"] = box.encrypt_config(auth)
            details.append(f"{label}.authentication_config changed")
        if changed:
            conn.execute(
                update(conns_t).where(conns_t.c.id == old["id"]).values(**changed, updated_at=now)
            )
    for name, old in have.items():
        conn.execute(delete(conns_t).where(conns_t.c.id == old["id"]))
        details.append(f"connections.{name} removed")

    have_maps = {
        r["target_table"]: _with_defaults(plain(r), MAPPING_DEFAULTS)
        for r in conn.execute(select(maps_t).where(maps_t.c.registry_id == source_ref)).mappings()
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
                insert(maps_t).values(registry_id=source_ref, target_table=m.target_table, **values)
            )
            details.append(f"{label} added")
            if (note := chosen_default(m)) is not None:
                details.append(note)
            continue
        if "data_retention_days" not in m.model_fields_set:
            # Left out: the stored value stays (an upgrade to the design's default, 365,
            # must not start deleting rows of a mapping that kept them forever).
            del values["data_retention_days"]
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
        .select_from(reg_t.join(maps_t, maps_t.c.registry_id == reg_t.c.id))
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
    again (it was when the source was saved). NULLs of a row written by plain SQL read as
    the design's defaults."""
    source = _with_defaults(dict(source))
    fields = {f: source[f] for f in SOURCE_FIELDS}
    if declared_refresh_interval(source) is None:
        del fields["refresh_interval"]
    connections = [_with_defaults(dict(c), CONNECTION_DEFAULTS) for c in source["connections"]]
    mappings = [_with_defaults(dict(m), MAPPING_DEFAULTS) for m in source["mappings"]]
    return declaration(
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


def apply_declarations(
    conn: Connection,
    decls: list[SourceDecl],
    box: SecretBox,
    *,
    prune: bool = False,
    created_by: str | None = None,
) -> list[Change]:
    """Make the registry match ``decls`` in the caller's (single) transaction;
    ``created_by``: the acting user's name (None: the OS user)."""
    changes = [save_source(conn, d, box, created_by=created_by) for d in decls]
    if prune:
        wanted = {d.source_id for d in decls}
        for sid in source_ids(conn):
            if sid not in wanted:
                changes.append(remove_source(conn, sid))
    return changes
