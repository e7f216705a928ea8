"""What every command module shares: the root Typer app and its global options, the
consoles and output helpers, and how a command opens the store.

This module imports no command module, so each of them can import it without a circle;
the package's ``__init__`` puts the commands on :data:`app`.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console

if TYPE_CHECKING:
    from factorysync.store.store import Store

app = typer.Typer(
    help="factorysync: keeps a plant dashboard's data sources synced into one store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SiteOpt = Annotated[
    str | None, typer.Option("--site", help="Only the sources of this site (plant).")
]
HostOpt = Annotated[
    str | None, typer.Option("--host", help="API address [default: FACTORYSYNC_API_HOST]")
]
PortOpt = Annotated[
    int | None,
    typer.Option("--port", min=0, max=65535, help="API port [default: FACTORYSYNC_API_PORT]"),
]


class Options:
    """Options of the whole command line, given before the command (``--debug``)."""

    debug = False


@app.callback()
def _global_options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="On an error, print its traceback too (before the command: "
            "factorysync --debug source sync ID); log at debug level.",
        ),
    ] = False,
) -> None:
    Options.debug = debug
    if debug:
        logging.getLogger("factorysync").setLevel(logging.DEBUG)


def open_store(ready: bool = True) -> Store:
    """The store of the current settings; ``ready`` refuses one that is not initialised
    or not at the current schema revision (``init`` and ``apply`` open it as it is)."""
    from factorysync.settings import get_settings
    from factorysync.store.store import Store

    store = Store(get_settings())
    if ready:
        store.ensure_ready()
    return store


def print_json(data: Any) -> None:
    sys.stdout.write(
        orjson.dumps(
            data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str
        ).decode()
        + "\n"
    )


def announce_admin(username: str, token: str) -> None:
    """The first admin's token, alone on the last line so scripts can take it with
    ``tail -n 1``; flushed at once, since a service keeps running after it."""
    out.print(f"admin     user {username!r} created; its API token (shown once, keep it safe):")
    sys.stdout.write(token + "\n")
    sys.stdout.flush()


def ago(when: datetime | None) -> str:
    """``3m ago`` or ``in 2h``: a time relative to now, as a table shows it."""
    if when is None:
        return "never"
    seconds = (datetime.now(UTC) - when).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{int(seconds // size)}{unit}"
            break
    else:
        text = f"{int(seconds)}s"
    return f"in {text}" if future else f"{text} ago"


def status_style(status: str) -> str:
    """The Rich style of a source's or a run's status."""
    return {
        "active": "green",
        "success": "green",
        "error": "red",
        "failed": "red",
        "maintenance": "yellow",
        "running": "cyan",
        "partial": "yellow",
    }.get(status, "dim")


def live_state(live: dict[str, Any]) -> str:
    """``receiving · 3s ago · 120/min · subscribed for 2h · 40 spooled``: a subscription
    or push source's live state."""
    style = {"receiving": "green", "error": "red", "quiet": "yellow"}.get(live["state"], "dim")
    text = f"[{style}]{live['state']}[/]"
    if live["last_message_at"] is not None:
        per_minute = live.get("messages_per_minute", live["records_last_minute"])
        text += f" · {ago(live['last_message_at'])} · {per_minute}/min"
    if live.get("subscribed_since") is not None:
        up = ago(live["subscribed_since"]).removesuffix(" ago")
        text += f" · subscribed for {up}"
    if live.get("spool_depth"):
        text += f" · [yellow]{live['spool_depth']} spooled[/]"
    return text


def cli_user() -> str:
    """Who runs this command, for the event log (``cli:<login>``)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in this environment
        return "cli"
