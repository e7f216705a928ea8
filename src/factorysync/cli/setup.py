"""``init``, ``apply FILE`` and ``import-legacy FILE``: create the store and declare sources."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from factorysync import services
from factorysync.cli.base import JsonOpt, announce_admin, err, open_store, out, print_json

DryRunOpt = Annotated[
    bool,
    typer.Option("--dry-run", help="Print the changes it would make, and change nothing."),
]
_MARKS = {
    "created": "[green]+[/]",
    "updated": "[yellow]~[/]",
    "removed": "[red]-[/]",
    "unchanged": "[dim]=[/]",
}


def init() -> None:
    """Create or upgrade the store and the secret key file."""
    store = open_store(ready=False)
    result = services.init_store(store)
    out.print(f"store     {store.safe_url} (schema revision {result.revision})")
    for path in result.tightened:
        out.print(f"store     {path} was readable by others: now mode 0600", highlight=False)
    state = "created (mode 0600)" if result.key_created else "in use"
    out.print(f"secrets   key {state}: {result.key_origin}")
    if result.data_root_created is not None:
        out.print(f"data      root {result.data_root_created} created", highlight=False)
    for problem in result.data_root_problems:
        err.print(
            f"warning: {problem}: sources may not read it, so other commands refuse to "
            "start; set FACTORYSYNC_DATA_ROOTS to a folder of its own",
            highlight=False,
        )
    admin = services.create_first_admin(store)
    if admin is not None:
        announce_admin(*admin)


def _print_changes(changes: list[Any], *, brief: bool = False) -> dict[str, int]:
    """One line per source with a line per changed field; returns the count of each
    action. ``brief``: leave out unchanged sources and what a created one holds."""
    for c in changes:
        if brief and c.action == "unchanged":
            continue
        what = f"site {c.source_id}" if getattr(c, "kind", "source") == "site" else c.source_id
        out.print(f"{_MARKS[c.action]} {what} ({c.action})", highlight=False)
        for detail in [] if brief and c.action == "created" else c.details:
            out.print(f"    {detail}", highlight=False)
    sources = [c for c in changes if getattr(c, "kind", "source") == "source"]
    return {a: sum(1 for c in sources if c.action == a) for a in _MARKS}


def apply(
    file: Annotated[
        Path, typer.Argument(help="YAML file with a 'sources' list (and optionally 'sites').")
    ],
    prune: Annotated[bool, typer.Option(help="Remove sources that are not in the file.")] = False,
    dry_run: DryRunOpt = False,
    json: JsonOpt = False,
) -> None:
    """Make the registry match a YAML file of source declarations (idempotent)."""
    changes = services.apply_file(open_store(ready=False), file, prune=prune, dry_run=dry_run)
    if json:
        print_json([c.__dict__ for c in changes])
        return
    counts = _print_changes(changes)
    would = "dry run, nothing changed: would be " if dry_run else ""
    sites = [c for c in changes if c.kind == "site"]
    made = sum(1 for c in sites if c.action == "created")
    site_summary = f"; sites: {made} created, {len(sites) - made} updated" if sites else ""
    out.print(
        f"{would}{counts['created']} created, {counts['updated']} updated, "
        f"{counts['removed']} removed, {counts['unchanged']} unchanged{site_summary}"
    )


def import_legacy(
    file: Annotated[Path, typer.Argument(help="constant.js or a JSON list of sources.")],
    root: Annotated[
        Path | None, typer.Option(help="Folder that relative filePath values start from.")
    ] = None,
    dry_run: DryRunOpt = False,
    json: JsonOpt = False,
) -> None:
    """Register each entry of a front end's default_source_data as a JSON file source.

    A source that exists already (same legacy id) keeps its mappings, target tables,
    schedule and rules: only its name, file and legacy id are set from the list."""
    changes, notes = services.import_legacy(open_store(ready=False), file, root, dry_run=dry_run)
    if json:
        print_json({"changes": [c.__dict__ for c in changes], "notes": notes})
        return
    # A dry run shows every source in full; an import what it changed.
    counts = _print_changes(changes, brief=not dry_run)
    for note in notes:
        out.print(f"[yellow]note[/] {note}", highlight=False)
    if dry_run:
        out.print(
            f"dry run, nothing changed: {len(changes)} source(s) would be imported: "
            f"{counts['created']} created, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged"
        )
        return
    out.print(
        f"imported {len(changes)} source(s): {counts['created']} created, "
        f"{counts['updated']} updated, {counts['unchanged']} unchanged"
    )
