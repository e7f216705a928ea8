"""Saving declarations in the source registry: the CLI, the API and ``apply`` all
change it through :func:`save_source`, which compares a declaration with what is stored
and writes only the differences, and reports them as a :class:`Change`.

Secrets a declaration leaves as ``"***"`` or as ``${env:NAME}`` references keep their
stored values (:mod:`factorysync.store.registry_secrets`).
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from factorysync.config import MappingDecl, SourceDecl
from factorysync.config.sites import SiteDecl
from factorysync.errors import ConfigError, NotFoundError
from factorysync.security.redaction import Redactor, unmask
from factorysync.security.secrets import SecretBox
from factorysync.settings import DEFAULT_SITE
from factorysync.store.db import plain
from factorysync.store.registry import (
    CONNECTION_DEFAULTS,
    MAPPING_DEFAULTS,
    SOURCE_FIELDS,
    normal_mapping_config,
    source_ids,
    with_defaults,
)
from factorysync.store.registry_secrets import kept_secrets, same_secrets, unset_variables
from factorysync.store.schema import data_source_connections as conns_t
from factorysync.store.schema import data_source_mappings as maps_t
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_state as state_t
from factorysync.store.schema import users as users_t
from factorysync.store.sites import save_site, site_for_source
from factorysync.store.types import utcnow


@dataclass
class Change:
    source_id: str  # the source's id, or the site's name (kind "site")
    action: str  # created | updated | unchanged | removed
    details: list[str] = field(default_factory=list)
    kind: str = "source"  # source | site


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
    conn: Connection,
    decl: SourceDecl,
    box: SecretBox,
    *,
    created_by: str | None = None,
    default_site: str = DEFAULT_SITE,
) -> Change:
    """Create or update one source so the registry matches ``decl``; report what changed.

    ``created_by``: the acting user's name (None: the OS user, for the command line).
    ``default_site``: the process's site (``FACTORYSYNC_SITE``), a new source's site when
    its declaration names none (an existing source then keeps its own)."""
    now = utcnow()
    wanted = {f: getattr(decl, f) for f in SOURCE_FIELDS}
    stored = (
        conn.execute(select(reg_t).where(reg_t.c.source_id == decl.source_id)).mappings().first()
    )
    site = site_for_source(
        conn, decl.source_id, decl.site, None if stored is None else stored["site"], default_site
    )
    if stored is None:
        new_id = conn.execute(
            insert(reg_t)
            .values(
                source_id=decl.source_id,
                status=decl.status,
                created_by=_creator(conn, decl, created_by),
                next_sync=now,
                site=site,
                **wanted,
            )
            .returning(reg_t.c.id)
        ).scalar_one()
        _sync_children(conn, decl, box, now, [], new_id)
        return Change(decl.source_id, "created", chosen_defaults(decl))
    current = with_defaults(dict(stored))
    details = [d for f in SOURCE_FIELDS if (d := _diff(f, current[f], wanted[f])) is not None]
    values: dict[str, Any] = {f: wanted[f] for f in SOURCE_FIELDS if current[f] != wanted[f]}
    if site != current["site"]:
        details.append(f"site: {current['site']!r} → {site!r}")
        values["site"] = site
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


def _sync_children(
    conn: Connection,
    decl: SourceDecl,
    box: SecretBox,
    now: datetime,
    details: list[str],
    source_ref: int,
) -> None:
    have = {
        r["connection_name"]: with_defaults(plain(r), CONNECTION_DEFAULTS)
        for r in conn.execute(select(conns_t).where(conns_t.c.registry_id == source_ref)).mappings()
    }
    stored_auth = {
        name: box.decrypt_config(old["authentication_config"]) for name, old in have.items()
    }
    unset = [
        problem
        for c in decl.connections
        if c.connection_name in stored_auth
        for problem in unset_variables(
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
        auth = kept_secrets(c.authentication_config, stored, f"{label}.authentication_config")
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
        if not same_secrets(stored, auth):
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
        r["target_table"]: with_defaults(plain(r), MAPPING_DEFAULTS)
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


def apply_declarations(
    conn: Connection,
    decls: list[SourceDecl],
    box: SecretBox,
    *,
    prune: bool = False,
    created_by: str | None = None,
    sites: Sequence[SiteDecl] = (),
    default_site: str = DEFAULT_SITE,
) -> list[Change]:
    """Make the registry match ``decls`` (and the declared ``sites``, saved first: the
    sources name them) in the caller's (single) transaction; ``created_by``: the acting
    user's name (None: the OS user). Sites created or changed come first, with kind
    ``site`` (an unchanged site is not reported: the changes stay one per source)."""
    changes = [Change(s.name, *save_site(conn, s), kind="site") for s in sites]
    changes = [c for c in changes if c.action != "unchanged"]
    failed: list[tuple[str, ConfigError]] = []
    for d in decls:  # every source is checked: one error names the problems of them all
        try:
            changes.append(
                save_source(conn, d, box, created_by=created_by, default_site=default_site)
            )
        except ConfigError as exc:
            failed.append((d.source_id, exc))
    if len(failed) == 1:
        raise failed[0][1]
    if failed:
        problems = [
            text if text.startswith(f"source {sid!r}") else f"source {sid!r}: {text}"
            for sid, exc in failed
            for text in (exc.problems or [str(exc)])
        ]
        raise ConfigError(f"{len(failed)} sources: {len(problems)} problem(s)", problems)
    if prune:
        wanted = {d.source_id for d in decls}
        for sid in source_ids(conn):
            if sid not in wanted:
                changes.append(remove_source(conn, sid))
    return changes
