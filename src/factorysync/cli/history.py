"""``history``: recent sync runs, newest first."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from factorysync import services
from factorysync.cli.base import (
    JsonOpt,
    SiteOpt,
    ago,
    open_store,
    out,
    print_json,
    status_style,
)


def history(
    source_id: Annotated[str | None, typer.Argument(help="Only runs of this source.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    site: SiteOpt = None,
    json: JsonOpt = False,
) -> None:
    """Recent sync runs, newest first (of one source, or of one site's sources)."""
    rows = services.history(open_store(), source_id, limit, site=site)
    if json:
        print_json(rows)
        return
    table = Table(
        "run",
        "source_id",
        "type",
        "status",
        "processed",
        "ins",
        "upd",
        "del",
        "rej",
        "ms",
        "started",
        "error",
        box=None,
    )
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["source_id"],
            r["sync_type"],
            f"[{status_style(r['sync_status'])}]{r['sync_status']}[/]",
            str(r["records_processed"]),
            str(r["records_inserted"]),
            str(r["records_updated"]),
            str(r["records_deleted"]),
            str(r["records_rejected"]),
            str(r["sync_duration_ms"] or ""),
            ago(r["sync_started_at"]),
            (r["error_message"] or "")[:80],
        )
    out.print(table)
