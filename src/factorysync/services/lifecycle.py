"""A source's life after it was added: what deleting it would remove, deleting it (with
or without the rows it wrote), and duplicating it. (Resetting where its reads stopped is
:func:`factorysync.services.runs.reset_source`; its status, ``store.registry.set_status``.)

What a delete removes, whichever way it is asked (CLI, API, console):

    always      the registry row, its connections (secrets) and mappings; the sync state
                (cursors, connector and stream state); open alerts are resolved
    drop_data   also the rows the source wrote in its mappings' target tables (rows whose
                ``_source_id`` is the source), and its quarantined records; a target
                table is dropped when no other source maps to it and no row is left
    kept        the run history (its slug stays, so ``history`` still shows the runs),
                the infolog, and without ``drop_data`` the target rows and quarantine:
                a source added again under the same id takes its rows up again

Rows a source wrote through a mapping it no longer has (removed before) are not touched:
only the current mappings' tables are, which the confirmation lists. Messages a realtime
source left in this process's local spool stay there (``source list`` shows their depth).
A delete is refused while a run of the source is in progress, as a reset is.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, Text, delete, func, inspect, select

from factorysync.store.capture import capture_deleted, forwarded_key
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.registry_save import Change, remove_source, save_source
from factorysync.store.schema import data_source_mappings as maps_t
from factorysync.store.schema import data_source_quarantine as quarantine_t
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.store.targets import check_target_name, target_table
from factorysync.store.types import utcnow

COPY_SUFFIX = "_copy"


def _provenance(name: str) -> Table:
    """Just enough of a target table to find and remove one source's rows."""
    check_target_name(name)
    return Table(name, MetaData(), Column("_source_id", Text()))


def _other_sources(conn: Connection, table: str, source_id: str) -> list[str]:
    """The other sources whose mappings write ``table``."""
    return list(
        conn.execute(
            select(reg_t.c.source_id)
            .join(maps_t, maps_t.c.registry_id == reg_t.c.id)
            .where(maps_t.c.target_table == table, reg_t.c.source_id != source_id)
            .order_by(reg_t.c.source_id)
        ).scalars()
    )


def _table_rows(conn: Connection, table: str, source_id: str) -> dict[str, Any]:
    """The source's rows in ``table`` (soft-deleted ones too: a drop removes them) and
    the rows of every source, and who else writes the table."""
    exists = inspect(conn).has_table(table)
    rows = total = 0
    if exists:
        t = _provenance(table)
        rows = int(
            conn.execute(
                select(func.count()).select_from(t).where(t.c._source_id == source_id)
            ).scalar_one()
        )
        total = int(conn.execute(select(func.count()).select_from(t)).scalar_one())
    others = _other_sources(conn, table, source_id)
    return {
        "target_table": table,
        "exists": exists,
        "rows": rows,
        "other_rows": total - rows,
        "other_sources": others,
        # What drop_data would do with the table once this source's rows are gone.
        "would_drop_table": exists and not others and total == rows,
    }


def deletion_plan(store: Store, source_id: str) -> dict[str, Any]:
    """What deleting the source would remove and keep (NotFoundError: no such source):
    per target table its rows, who else writes it, whether ``drop_data`` drops it; the
    quarantined records and the runs of the history (kept)."""
    with store.connect() as conn:
        source = get_source(conn, source_id)
        tables = [_table_rows(conn, m["target_table"], source_id) for m in source["mappings"]]
        quarantined = conn.execute(
            select(func.count())
            .select_from(quarantine_t)
            .where(quarantine_t.c.source_id == source_id)
        ).scalar_one()
        runs = conn.execute(
            select(func.count()).select_from(hist_t).where(hist_t.c.source_id == source_id)
        ).scalar_one()
    return {
        "source_id": source_id,
        "name": source["name"],
        "tables": tables,
        "rows": sum(t["rows"] for t in tables),
        "quarantined": int(quarantined),
        "runs": int(runs),
    }


def _drop_rows(conn: Connection, table: str, source_id: str) -> dict[str, Any]:
    """Remove the source's rows from ``table``; drop the table when no other source
    maps to it and nothing else is left in it."""
    if not inspect(conn).has_table(table):
        return {"rows_deleted": 0, "table_dropped": False}
    t = _provenance(table)
    key = forwarded_key(conn, table)
    if key:
        # The central copy loses these rows too.
        full = target_table(conn, table)
        mine = [full.c._source_id == source_id]
        capture_deleted(
            conn, full, key, mine, table=table, source_id=source_id, run_id=None, now=utcnow()
        )
    removed = conn.execute(delete(t).where(t.c._source_id == source_id)).rowcount
    left = conn.execute(select(func.count()).select_from(t)).scalar_one()
    dropped = not left and not _other_sources(conn, table, source_id)
    if dropped:
        t.drop(conn)
    return {"rows_deleted": int(removed or 0), "table_dropped": dropped}


def delete_source(
    store: Store, source_id: str, *, drop_data: bool = False, deleted_by: str = "factorysync"
) -> dict[str, Any]:
    """Delete a source (see the module's docstring for what goes and what stays).

    Refused (AlreadyRunning) while a run of the source is in progress; NotFoundError when
    there is no such source. ``deleted_by``: who asked (``cli:…``, ``api:…``,
    ``console:…``), recorded with what was removed in the infolog event
    ``source_deleted``. Everything happens in one transaction: a failure removes nothing.
    """
    from factorysync.engine.runner import run_slot

    with run_slot(source_id), store.begin() as conn:
        return delete_in(conn, source_id, drop_data=drop_data, deleted_by=deleted_by)


def delete_in(
    conn: Connection, source_id: str, *, drop_data: bool = False, deleted_by: str = "factorysync"
) -> dict[str, Any]:
    """:func:`delete_source` in the caller's transaction (``apply --prune`` removes every
    source its file no longer names in the transaction that saves the others)."""
    from factorysync.alerts import RULES
    from factorysync.alerts.records import resolve
    from factorysync.observability import infolog
    from factorysync.services.runs import refuse_while_running
    from factorysync.store.types import utcnow

    source = get_source(conn, source_id)
    refuse_while_running(conn, source_id, "delete")
    tables: dict[str, dict[str, Any]] = {}
    quarantine_removed = 0
    if drop_data:
        for m in source["mappings"]:
            tables[m["target_table"]] = _drop_rows(conn, m["target_table"], source_id)
        quarantine_removed = int(
            conn.execute(delete(quarantine_t).where(quarantine_t.c.source_id == source_id)).rowcount
            or 0
        )
    remove_source(conn, source_id)
    alerts_resolved = resolve(conn, RULES, utcnow(), source_ids=[source_id])
    rows = sum(t["rows_deleted"] for t in tables.values())
    if drop_data:
        dropped = [name for name, t in tables.items() if t["table_dropped"]]
        what = f"{rows} row(s) and {quarantine_removed} quarantined record(s) removed" + (
            f", table(s) {', '.join(dropped)} dropped" if dropped else ""
        )
    else:
        what = "rows already synced, quarantine and history kept"
    infolog.record(
        conn,
        "info",
        "source_deleted",
        f"source deleted by {deleted_by}: {what}",
        source_id=source_id,
        details={
            "deleted_by": deleted_by,
            "drop_data": drop_data,
            "tables": tables,
            "quarantine_removed": quarantine_removed,
            "alerts_resolved": alerts_resolved,
        },
    )
    return {
        "source_id": source_id,
        "deleted_by": deleted_by,
        "drop_data": drop_data,
        "rows_deleted": rows,
        "tables": tables,
        "quarantine_removed": quarantine_removed,
        "alerts_resolved": alerts_resolved,
    }


def change_status(store: Store, source_id: str, status: str, *, by: str) -> None:
    """Set a source ``active``, ``inactive`` or ``maintenance`` (active also closes an open
    circuit), and record who did it (infolog event ``source_status``)."""
    from factorysync.observability import infolog
    from factorysync.store.registry import set_status

    with store.begin() as conn:
        set_status(conn, source_id, status)
        infolog.record(
            conn,
            "info",
            "source_status",
            f"status set to {status} by {by}",
            source_id=source_id,
            details={"status": status, "by": by},
        )


def duplicate_source(
    store: Store,
    source_id: str,
    new_id: str,
    *,
    by: str,
    name: str | None = None,
    created_by: str | None = None,
) -> Change:
    """Register a copy of a source under ``new_id``: same connections (secrets
    included, decrypted and encrypted again here: they never leave the server) and
    mappings; named "<name> (copy)" unless ``name`` is given; without the legacy id (a
    front end's entry names one source).

    The copy starts ``inactive``: it writes the same target tables as the original, and
    would read the same data into them under its own id, until its mappings or
    connections are changed and it is enabled. Validated as a new declaration (a bad
    ``new_id`` is a ConfigError naming it; a taken one is AlreadyExists). Logged as the
    infolog event ``source_duplicated`` with ``by`` (``cli:…``, ``api:…``, ``console:…``);
    ``created_by``: the acting user's name (None: the OS user, for the command line).
    """
    from factorysync.observability import infolog
    from factorysync.services.declarations import _declaration
    from factorysync.store.accounts import AlreadyExists

    with store.begin() as conn:
        original = declaration_of(get_source(conn, source_id), store.box)
        taken = conn.execute(select(reg_t.c.id).where(reg_t.c.source_id == new_id))
        if taken.first() is not None:
            raise AlreadyExists(f"source {new_id!r} exists already: choose another id")
        raw = original.model_dump(mode="json", by_alias=True)
        if not original.refresh_interval_declared:
            del raw["refresh_interval"]  # the mappings' frequency gives it, as before
        copy_name = name.strip() if name and name.strip() else f"{original.name} (copy)"
        raw |= {
            "source_id": new_id,
            "name": copy_name[:255],
            "status": "inactive",
            "legacy_id": None,
            "created_by": None,
        }
        decl = _declaration(raw, store.settings)
        change = save_source(
            conn, decl, store.box, created_by=created_by, default_site=store.settings.site
        )
        infolog.record(
            conn,
            "info",
            "source_duplicated",
            f"source {new_id} created as a copy of {source_id} by {by} "
            "(inactive; secrets copied encrypted)",
            source_id=new_id,
            details={"copy_of": source_id, "by": by},
        )
    return change


def default_copy_id(source_id: str) -> str:
    """``<id>_copy`` (cut to the 100 characters a source id may have)."""
    return source_id[: 100 - len(COPY_SUFFIX)] + COPY_SUFFIX
