"""``site …``: the sites (plants) of the registry, their shifts, and the shift at an
instant. Sites are declared in a sources file's ``sites:`` list (``apply``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from factorysync.cli.base import JsonOpt, open_store, out, print_json
from factorysync.services import sites as site_service

site_app = typer.Typer(
    help="The sites (plants): zones, shifts, sources. Declared with apply.",
    no_args_is_help=True,
)


def _shift_text(shift: dict[str, object]) -> str:
    days = shift.get("days")
    on = f" ({','.join(str(d) for d in days)})" if isinstance(days, list) else ""
    return f"{shift['name']} {shift['start']}-{shift['end']}{on}"


@site_app.command("list")
def site_list(json: JsonOpt = False) -> None:
    """List the sites: time zone, shifts and number of sources."""
    rows = site_service.list_sites(open_store())
    if json:
        print_json(rows)
        return
    table = Table("site", "time zone", "sources", "shifts", "description", box=None)
    for r in rows:
        table.add_row(
            r["name"],
            r["time_zone"] or "-",
            str(r["sources"]),
            ", ".join(_shift_text(s) for s in r["shifts"]) or "-",
            r["description"] or "",
        )
    out.print(table)
    out.print(f"{len(rows)} site(s)")


@site_app.command("show")
def site_show(name: str, json: JsonOpt = False) -> None:
    """Show one site with its shifts."""
    site = site_service.get_site(open_store(), name)
    if json:
        print_json(site)
        return
    out.print(f"site         {site['name']}", highlight=False)
    out.print(f"time zone    {site['time_zone'] or '- (UTC)'}", highlight=False)
    out.print(f"sources      {site['sources']}", highlight=False)
    if site["description"]:
        out.print(f"description  {site['description']}", highlight=False)
    for shift in site["shifts"]:
        out.print(f"shift        {_shift_text(shift)}", highlight=False)


@site_app.command("shift")
def site_shift(
    name: str,
    at: Annotated[
        str | None,
        typer.Option(help="ISO 8601 instant (without an offset: UTC) [default: now]."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """The shift of a site running at an instant, in the site's time zone."""
    instant = None if at is None else site_service.parse_instant(at, "--at")
    found = site_service.shift_at(open_store(), name, instant)
    if json:
        print_json(found)
        return
    shift = found["shift"]
    where = f"{found['local_time']} ({found['time_zone'] or 'UTC'})"
    if shift is None:
        out.print(f"no shift at {where}", highlight=False)
    else:
        out.print(
            f"{_shift_text(shift)} at {where}, started {found['started_at']}", highlight=False
        )
