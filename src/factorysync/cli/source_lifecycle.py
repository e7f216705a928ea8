"""``source delete`` and ``source duplicate``: a source's end and its copies.

The commands sit on the ``source`` group (:data:`factorysync.cli.source.source_app`,
put there by the package's ``__init__``) and call the services the API and the console
call (:mod:`factorysync.services.lifecycle`). ``source reset`` and ``source
enable|disable|maintenance`` are in :mod:`factorysync.cli.source`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from factorysync import services
from factorysync.cli.base import JsonOpt, cli_user, open_store, out, print_json


def _plan_lines(plan: dict[str, Any], drop_data: bool) -> list[str]:
    """What the delete removes and keeps, one line each, as the prompt shows it."""
    lines = []
    for t in plan["tables"]:
        if not t["exists"]:
            lines.append(f"  {t['target_table']}: no table yet")
        elif drop_data:
            fate = "the table is dropped" if t["would_drop_table"] else "the table stays"
            others = ", ".join(t["other_sources"])
            also = f" (also written by {others})" if others else ""
            lines.append(f"  {t['target_table']}: {t['rows']} row(s) deleted; {fate}{also}")
        else:
            lines.append(f"  {t['target_table']}: {t['rows']} row(s) kept")
    if drop_data:
        lines.append(f"  quarantine: {plan['quarantined']} record(s) deleted")
    lines.append(f"  history: {plan['runs']} run(s) kept")
    return lines


def delete(
    source_id: str,
    drop_data: Annotated[
        bool,
        typer.Option(
            "--drop-data/--keep-data",
            help="Also delete the rows the source wrote in its target tables and its "
            "quarantine (a table no other source writes is dropped once empty); "
            "--keep-data (the default) keeps them.",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json: JsonOpt = False,
) -> None:
    """Delete a source: its connections, mappings and sync state; its run history stays.

    Refused while a run of the source is in progress. Without --yes, shows what goes and
    what stays and asks first."""
    store = open_store()
    if not yes:
        plan = services.deletion_plan(store, source_id)
        mode = "with its data" if drop_data else "keeping its data"
        out.print(f"delete source {source_id} ({plan['name']}), {mode}:", highlight=False)
        for line in _plan_lines(plan, drop_data):
            out.print(line, highlight=False)
        typer.confirm(f"delete {source_id}?", abort=True)
    result = services.delete_source(store, source_id, drop_data=drop_data, deleted_by=cli_user())
    if json:
        print_json(result)
        return
    for table, done in result["tables"].items():
        dropped = ", table dropped" if done["table_dropped"] else ""
        out.print(f"{table}: {done['rows_deleted']} row(s) deleted{dropped}", highlight=False)
    if drop_data:
        out.print(f"quarantine: {result['quarantine_removed']} record(s) deleted", highlight=False)
    kept = "" if drop_data else " (rows already synced are kept)"
    out.print(f"{source_id}: deleted{kept}; its run history stays", highlight=False)


def duplicate(
    source_id: str,
    new_id: str,
    name: Annotated[
        str | None, typer.Option(help='Name of the copy [default: "<name> (copy)"].')
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Register a copy of a source under NEW_ID (inactive; secrets copied encrypted).

    The copy writes the same target tables as the original: change its mappings, then
    enable it. Secrets are copied inside the store, never printed."""
    store = open_store()
    change = services.duplicate_source(store, source_id, new_id, name=name, by=cli_user())
    if json:
        print_json({"source_id": change.source_id, "copy_of": source_id, "status": "inactive"})
        return
    out.print(
        f"{change.source_id}: created as a copy of {source_id} (inactive; secrets copied "
        f"encrypted). Change it (apply, the API or the console), then "
        f"'factorysync source enable {change.source_id}'.",
        highlight=False,
    )
