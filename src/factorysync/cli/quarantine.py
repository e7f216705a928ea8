"""``quarantine SOURCE`` and ``quarantine list|replay|clear SOURCE``: the records a source's
runs refused."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.table import Table
from typer.core import TyperGroup

from factorysync import services
from factorysync.cli.base import JsonOpt, ago, cli_user, open_store, out, print_json


class _ListByDefault(TyperGroup):
    """``quarantine SOURCE`` lists (the ``list`` command); ``quarantine replay|clear
    SOURCE`` act. A source named like a command is listed with ``quarantine list NAME``."""

    # ``ctx`` is a click Context: click's own, or the copy newer typer versions carry.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


quarantine_app = typer.Typer(
    cls=_ListByDefault,
    help="Records a source's runs refused: list or export them, replay them, clear them. "
    "'factorysync quarantine SOURCE' lists them.",
    no_args_is_help=True,
)


@quarantine_app.command("list")
def quarantine_list(
    source_id: str,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    format: Annotated[
        Literal["table", "json", "csv"],
        typer.Option("--format", help="table, json, or csv (an export: one line per entry)."),
    ] = "table",
    json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """The source's quarantine entries, most recently refused first, with the total."""
    page = services.quarantine_page(open_store(), source_id, limit=limit, offset=offset)
    if json or format == "json":
        print_json(page)
        return
    if format == "csv":
        sys.stdout.write(services.quarantine_csv(page["entries"]))
        return
    table = Table("id", "target", "seen", "last seen", "run", "kept", "reasons", "record", box=None)
    for r in page["entries"]:
        table.add_row(
            str(r["id"]),
            r["target_table"],
            str(r["times_seen"]),
            ago(r["last_seen"]),
            str(r["run_id"] or ""),
            "yes" if r["kept_previous"] else "",
            "; ".join(r["reasons"]),
            orjson.dumps(r["record"], option=orjson.OPT_NON_STR_KEYS).decode()[:100],
        )
    out.print(table)
    shown = len(page["entries"])
    first = offset + 1 if shown else offset
    out.print(f"entries {first}-{offset + shown} of {page['total']}", highlight=False)


@quarantine_app.command("replay")
def quarantine_replay(source_id: str, json: JsonOpt = False) -> None:
    """Load the entries that pass the current mapping and rules; keep the others."""
    result = services.replay_quarantine(open_store(), source_id, trigger=cli_user()[:32])
    if json:
        print_json(result)
        return
    out.print(
        f"run {result['run_id']}: {result['examined']} entries checked, "
        f"{result['loaded']} loaded ({result['records_inserted']} inserted, "
        f"{result['records_updated']} updated), {result['still_rejected']} still rejected, "
        f"{result['not_replayable']} not replayable; {result['remaining']} left",
        highlight=False,
    )


@quarantine_app.command("clear")
def quarantine_clear(source_id: str, json: JsonOpt = False) -> None:
    """Remove every quarantine entry of the source."""
    result = services.clear_quarantine(open_store(), source_id, cleared_by=cli_user())
    if json:
        print_json(result)
        return
    out.print(f"{result['removed']} quarantine entries removed", highlight=False)
