"""Changing the registry from declarations: a sources file (``apply``), a front end's
legacy list, or one source sent to the API or the console.

Every way checks the connections' secrets the same way (:func:`secret_problems`) before
they are encrypted, and a dry run goes through the very code that applies a change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, select, update

from factorysync.config import SourceDecl
from factorysync.connectors.registry import validate_authentication_config
from factorysync.errors import ConfigError, Problem
from factorysync.intake import Declarations, load_declarations, parse_source
from factorysync.legacy import Merge, parse_legacy, plan_import
from factorysync.security.redaction import Redactor, unmask
from factorysync.settings import Settings
from factorysync.store.db import plain
from factorysync.store.registry import (
    declaration_of,
    get_source,
    list_sources,
    registry_id,
    source_ids,
)
from factorysync.store.registry_save import Change, apply_declarations, save_source
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.sites import site_names, undeclared_site
from factorysync.store.store import Store
from factorysync.store.types import utcnow

_T = TypeVar("_T")


class _DryRun(Exception):
    """Raised inside a dry run's transaction so that it is rolled back."""


def _registry_change(store: Store, work: Callable[[Any], _T], *, dry_run: bool) -> _T:
    """``work(conn)`` in one write transaction: committed, or with ``dry_run`` rolled back.

    A dry run goes through the very code that applies a change, so the diff it reports is
    the one a real run makes; nothing of it is kept."""
    found: list[_T] = []
    try:
        with store.begin() as conn:
            found.append(work(conn))
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return found[0]


def apply_file(
    store: Store,
    path: Path,
    *,
    prune: bool = False,
    dry_run: bool = False,
    created_by: str | None = None,
) -> list[Change]:
    """Make the registry match a sources file; with ``dry_run``, only report the changes.
    ``created_by``: the acting user's name (None: the OS user running the command)."""
    declared = load_declarations(path)  # every source and site of the file, or an error
    decls = declared.sources
    problems = [
        problem
        for i, d in enumerate(decls)
        for problem in secret_problems(
            d, store.settings, f"sources[{i}] (source_id {d.source_id!r})"
        )
    ]
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    store.ensure_ready()
    site = store.settings.site

    def apply(conn: Connection) -> list[Change]:
        unknown = _undeclared_sites(conn, declared, site)
        if unknown:
            raise ConfigError(f"{path}: {len(unknown)} problem(s)", unknown)
        changes = apply_declarations(
            conn,
            decls,
            store.box,
            created_by=created_by,
            sites=declared.sites,
            default_site=site,
        )
        if prune:  # as `source delete` does: refused while running, alerts resolved, logged
            from factorysync.services.lifecycle import delete_in

            wanted = {d.source_id for d in decls}
            for sid in source_ids(conn):
                if sid not in wanted:
                    delete_in(conn, sid, deleted_by=f"apply --prune ({created_by or 'cli'})")
                    changes.append(Change(sid, "removed"))
        return changes

    return _registry_change(store, apply, dry_run=dry_run)


def _undeclared_sites(conn: Connection, declared: Declarations, default_site: str) -> list[str]:
    """Sources naming a site that is neither declared in the file, nor stored, nor the
    process's own (made on demand): one problem each, naming the source."""
    known = {s.name for s in declared.sites} | set(site_names(conn)) | {default_site}
    return [
        f"sources[{i}] (source_id {d.source_id!r}): site: "
        + undeclared_site(d.site, ", ".join(sorted(known)))
        for i, d in enumerate(declared.sources)
        if d.site is not None and d.site not in known
    ]


def _sources_with_connections(conn: Any) -> list[dict[str, Any]]:
    from factorysync.store.schema import data_source_connections as conns_t

    stored = list_sources(conn)
    connections: dict[int, list[dict[str, Any]]] = {}
    for row in conn.execute(select(conns_t).order_by(conns_t.c.id)).mappings():
        connections.setdefault(row["source_id"], []).append(plain(row))
    return [dict(s, connections=connections.get(s["id"], [])) for s in stored]


def _merge_legacy(conn: Any, merge: Merge) -> None:
    """Set only what an import owns on an existing source (see factorysync.legacy)."""
    from factorysync.store.schema import data_source_connections as conns_t

    now = utcnow()
    if merge.values:
        conn.execute(
            update(reg_t)
            .where(reg_t.c.source_id == merge.source_id)
            .values(**merge.values, updated_at=now)
        )
    if merge.connection_config is not None:
        conn.execute(
            update(conns_t)
            .where(
                conns_t.c.registry_id == registry_id(conn, merge.source_id),
                conns_t.c.connection_name == merge.connection_name,
            )
            .values(connection_config=merge.connection_config, updated_at=now)
        )


def import_legacy(
    store: Store,
    path: Path,
    root: Path | None = None,
    *,
    dry_run: bool = False,
    created_by: str | None = None,
) -> tuple[list[Change], list[str]]:
    """Register a front end's legacy sources: new ones are created, existing ones get
    only what the list owns (name, file, legacy id). With ``dry_run``, only report."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    entries = parse_legacy(text, str(path))
    store.ensure_ready()
    base = (root or path.parent).resolve()
    roots = store.settings.data_root_paths()

    def work(conn: Any) -> tuple[list[Change], list[str]]:
        plan = plan_import(entries, base, _sources_with_connections(conn), roots)
        changes = []
        for item in plan.items:
            if isinstance(item, Merge):
                _merge_legacy(conn, item)
                action = "updated" if item.details else "unchanged"
                changes.append(Change(item.source_id, action, item.details))
            else:
                change = save_source(
                    conn,
                    item.decl,
                    store.box,
                    created_by=created_by,
                    default_site=store.settings.site,
                )
                changes.append(Change(change.source_id, change.action, item.details))
        return changes, plan.notes

    return _registry_change(store, work, dry_run=dry_run)


def secret_problems(decl: SourceDecl, settings: Settings, where: str) -> list[str]:
    """Problems of the connections' ``authentication_config`` (parse_source checks the
    rest). Checked here, before it is encrypted, by every way a source is saved.

    Each is a :class:`~factorysync.errors.Problem` reading
    ``<where>: connections[i].authentication_config.<the connector's problem>``, as the
    API and the CLI always said it; the console says it again as an invalid value
    (``value_error``: its reason quoted), or by the connector's own kind when it has one."""
    return [
        _secret_problem(f"{where}: connections[{i}].authentication_config", problem)
        for i, c in enumerate(decl.connections)
        if c.connection_type is not None
        for problem in validate_authentication_config(
            c.connection_type, c.authentication_config, settings
        )
    ]


def _secret_problem(at: str, problem: str) -> Problem:
    """``problem`` ('environment.NAME: reason') placed under ``at``."""
    if isinstance(problem, Problem) and problem.kind:
        return problem.within(at)
    path, sep, reason = problem.partition(": ")
    if not sep:
        return Problem(at, problem, "value_error", sep=".")
    return Problem(f"{at}.{path}", reason, "value_error")


def _declaration(raw: Any, settings: Settings) -> SourceDecl:
    decl, problems = parse_source(raw, "body")
    if decl is not None:
        problems += secret_problems(decl, settings, "body")
    if decl is None or problems:
        raise ConfigError(f"invalid source: {len(problems)} problem(s)", problems)
    return decl


def create_source(store: Store, raw: Any, *, created_by: str | None = None) -> Change:
    """Register a new source from a declaration (AlreadyExists if its id is taken)."""
    from factorysync.store.accounts import AlreadyExists

    decl = _declaration(raw, store.settings)
    with store.begin() as conn:
        taken = conn.execute(select(reg_t.c.id).where(reg_t.c.source_id == decl.source_id))
        if taken.first() is not None:
            raise AlreadyExists(f"source {decl.source_id!r} exists already (PATCH changes it)")
        return save_source(
            conn, decl, store.box, created_by=created_by, default_site=store.settings.site
        )


def update_source(store: Store, source_id: str, patch: Any) -> Change:
    """Change a source: fields in ``patch`` replace the stored ones (lists as a whole).

    A connection that leaves out ``authentication_config`` keeps its stored secrets, and
    masked values keep theirs.
    """
    if not isinstance(patch, dict):
        raise ConfigError("invalid source", ["body: expected a JSON object"])
    if patch.get("source_id", source_id) != source_id:
        raise ConfigError("invalid source", ["body: source_id: cannot be changed"])
    with store.begin() as conn:
        current = declaration_of(get_source(conn, source_id), store.box)
        stored = current.model_dump(mode="json", by_alias=True)
        if not current.refresh_interval_declared:
            # Only what the frequency gives: a patched frequency sets it anew.
            del stored["refresh_interval"]
        redact = Redactor()
        for c in current.connections:
            redact.add(c.authentication_config)
        merged = {**stored, **patch, "source_id": source_id}
        if isinstance(patch.get("connections"), list):
            old = {c["connection_name"]: c for c in stored["connections"]}
            merged["connections"] = []
            for sent in patch["connections"]:
                name = sent.get("connection_name", "primary") if isinstance(sent, dict) else None
                before = old.get(name) if name is not None else None
                if before is not None:
                    sent = dict(sent)
                    for key in ("connection_config", "authentication_config"):
                        sent[key] = unmask(sent.get(key, before[key]), before[key], redact)
                merged["connections"].append(sent)
        return save_source(
            conn,
            _declaration(merged, store.settings),
            store.box,
            default_site=store.settings.site,
        )
