"""Command line: parses arguments and calls the same services the API uses.

Every command exits 0 on success and non-zero with a one-line reason on error.
``--json`` prints machine-readable output using the registry's column names.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import click
import orjson
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from factorysync import __version__, services
from factorysync.errors import ConfigError, FactorySyncError, full_traceback
from factorysync.security.secrets import install_log_redaction
from factorysync.settings import get_settings
from factorysync.store.store import Store

app = typer.Typer(
    help="factorysync: keeps a plant dashboard's data sources synced into one store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
source_app = typer.Typer(help="Inspect and operate single sources.", no_args_is_help=True)
app.add_typer(source_app, name="source")
out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class _Options:
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
    _Options.debug = debug
    if debug:
        logging.getLogger("factorysync").setLevel(logging.DEBUG)


def _store(ready: bool = True) -> Store:
    store = Store(get_settings())
    if ready:
        store.ensure_ready()
    return store


def _print_json(data: Any) -> None:
    sys.stdout.write(
        orjson.dumps(
            data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str
        ).decode()
        + "\n"
    )


def _ago(when: datetime | None) -> str:
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


def _status_style(status: str) -> str:
    return {
        "active": "green",
        "success": "green",
        "error": "red",
        "failed": "red",
        "maintenance": "yellow",
        "running": "cyan",
        "partial": "yellow",
    }.get(status, "dim")


# -- setup ------------------------------------------------------------------------------
@app.command()
def init() -> None:
    """Create or upgrade the store and the secret key file."""
    store = _store(ready=False)
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
        # The token alone on the last line, so scripts can take it with `tail -n 1`.
        out.print(f"admin     user {admin[0]!r} created; its API token (shown once, keep it safe):")
        sys.stdout.write(admin[1] + "\n")


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


def _print_changes(changes: list[Any], *, brief: bool = False) -> dict[str, int]:
    """One line per source with a line per changed field; returns the count of each
    action. ``brief``: leave out unchanged sources and what a created one holds."""
    for c in changes:
        if brief and c.action == "unchanged":
            continue
        out.print(f"{_MARKS[c.action]} {c.source_id} ({c.action})", highlight=False)
        for detail in [] if brief and c.action == "created" else c.details:
            out.print(f"    {detail}", highlight=False)
    return {a: sum(1 for c in changes if c.action == a) for a in _MARKS}


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(help="YAML file with a 'sources' list.")],
    prune: Annotated[bool, typer.Option(help="Remove sources that are not in the file.")] = False,
    dry_run: DryRunOpt = False,
    json: JsonOpt = False,
) -> None:
    """Make the registry match a YAML file of source declarations (idempotent)."""
    changes = services.apply_file(_store(ready=False), file, prune=prune, dry_run=dry_run)
    if json:
        _print_json([c.__dict__ for c in changes])
        return
    counts = _print_changes(changes)
    would = "dry run, nothing changed: would be " if dry_run else ""
    out.print(
        f"{would}{counts['created']} created, {counts['updated']} updated, "
        f"{counts['removed']} removed, {counts['unchanged']} unchanged"
    )


@app.command("import-legacy")
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
    changes, notes = services.import_legacy(_store(ready=False), file, root, dry_run=dry_run)
    if json:
        _print_json({"changes": [c.__dict__ for c in changes], "notes": notes})
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


# -- sources ----------------------------------------------------------------------------
@source_app.command("list")
def source_list(
    status: Annotated[str | None, typer.Option(help="Only sources with this status.")] = None,
    json: JsonOpt = False,
) -> None:
    """List the registered sources: status (and failing), cadence, last and next sync.

    Subscription (MQTT, OPC UA) and push sources have no next sync: their live state
    shows instead (receiving, quiet, waiting, error; latest data; records a minute)."""
    rows = services.sources(_store(), status)
    if json:
        _print_json(rows)
        return
    table = Table(
        "source_id",
        "name",
        "type",
        "status",
        "prio",
        "cadence",
        "last sync",
        "next sync / live",
        "errors",
        box=None,
    )
    for r in rows:
        shown = f"[{_status_style(r['status'])}]{r['status']}[/]"
        if r["failing"]:
            shown += f" [red]failing ({r['consecutive_failures']})[/]"
        table.add_row(
            r["source_id"],
            r["name"],
            r["source_type"],
            shown,
            str(r["priority"]),
            r["cadence"]["text"],
            _ago(r["last_sync"]),
            _live(r["live"]) if r["live"] is not None else _ago(r["next_sync"]),
            str(r["error_count"] or ""),
        )
    out.print(table)
    failing = sum(1 for r in rows if r["failing"])
    out.print(f"{len(rows)} source(s)" + (f", [red]{failing} failing[/]" if failing else ""))


def _live(live: dict[str, Any]) -> str:
    """``receiving · 3s ago · 120/min``: a subscription or push source's live state."""
    style = {"receiving": "green", "error": "red", "quiet": "yellow"}.get(live["state"], "dim")
    text = f"[{style}]{live['state']}[/]"
    if live["last_message_at"] is not None:
        text += f" · {_ago(live['last_message_at'])} · {live['records_last_minute']}/min"
    if live.get("subscribed_since") is not None:
        up = _ago(live["subscribed_since"]).removesuffix(" ago")
        text += f" · subscribed for {up}"
    return text


@source_app.command("show")
def source_show(source_id: str, json: JsonOpt = False) -> None:
    """Show one source with its connections and mappings (secrets masked), its cadence
    and why, and whether it is failing."""
    from factorysync.store.registry import get_source

    store = _store()
    with store.connect() as conn:
        source = services.public_source(store, get_source(conn, source_id))
    if json:
        _print_json(source)
        return
    out.print(f"cadence  {source['cadence']['text']}", highlight=False)
    if source["failing"]:
        out.print(
            f"[red]failing[/]  {source['consecutive_failures']} consecutive failed run(s)",
            highlight=False,
        )
    if source["live"] is not None:
        out.print(f"live     {_live(source['live'])}", highlight=False)
    out.print_json(orjson.dumps(source, default=str).decode())


@source_app.command("sync")
def source_sync(
    source_id: Annotated[list[str], typer.Argument(help="One or more source ids.")],
    json: JsonOpt = False,
) -> None:
    """Sync sources now, in the foreground; exits non-zero when a sync fails."""
    results = services.sync_many(_store(), source_id)
    if json:
        _print_json([r.as_dict() for r in results])
    else:
        _print_results(results)
    # A partial run loaded data but left something undone (deletes skipped): it exits
    # non-zero too, so a script notices, and says so.
    unfinished = [r for r in results if r.sync_status != "success"]
    if unfinished:
        failed = sum(r.sync_status != "partial" for r in unfinished)
        partial = len(unfinished) - failed
        counts = ", ".join(
            [f"{failed} sync(s) failed"] * bool(failed)
            + [f"{partial}{'' if failed else ' sync(s)'} partial"] * bool(partial)
        )
        raise FactorySyncError(
            f"{counts}: " + "; ".join(f"{r.source_id}: {r.error_message}" for r in unfinished)
        )


def _cli_user() -> str:
    """Who runs this command, for the event log (``cli:<login>``)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in this environment
        return "cli"


@source_app.command("reset")
def source_reset(
    source_id: str,
    mapping: Annotated[
        str | None,
        typer.Option(help="Reset only the mapping writing this target table."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Forget the cursor and connector state: the next sync reads the whole source again."""
    result = services.reset_source(_store(), source_id, target_table=mapping, reset_by=_cli_user())
    if json:
        _print_json(result)
        return
    for table, removed in result["mappings"].items():
        cursor = removed["cursor"]
        was = f"cursor was {cursor}" if cursor is not None else "no cursor stored"
        state = ", connector state cleared" if removed["connector_state"] else ""
        out.print(f"{source_id} → {table}: reset ({was}{state})", highlight=False)
    out.print(f"the next sync of {source_id} reads the whole source again", highlight=False)


def _print_results(results: list[Any]) -> None:
    table = Table(
        "source_id",
        "status",
        "processed",
        "inserted",
        "updated",
        "deleted",
        "rejected",
        "ms",
        box=None,
    )
    for r in results:
        table.add_row(
            r.source_id,
            f"[{_status_style(r.sync_status)}]{r.sync_status}[/]",
            str(r.records_processed),
            str(r.records_inserted),
            str(r.records_updated),
            str(r.records_deleted),
            str(r.records_rejected),
            str(r.sync_duration_ms),
        )
    out.print(table)
    # Why a run failed is the error line on stderr; notes of a successful run go here.
    for r in results:
        if r.error_message and r.sync_status == "success":
            out.print(f"[red]{r.source_id}[/]: {r.error_message}", highlight=False)


def _set_status(source_id: str, status: str) -> None:
    from factorysync.store.registry import set_status

    with _store().begin() as conn:
        set_status(conn, source_id, status)
    out.print(f"{source_id}: {status}")


@source_app.command("enable")
def source_enable(source_id: str) -> None:
    """Set a source active (also closes an open circuit)."""
    _set_status(source_id, "active")


@source_app.command("disable")
def source_disable(source_id: str) -> None:
    """Set a source inactive: the scheduler skips it."""
    _set_status(source_id, "inactive")


@source_app.command("maintenance")
def source_maintenance(source_id: str) -> None:
    """Put a source in maintenance: the scheduler skips it."""
    _set_status(source_id, "maintenance")


@app.command()
def history(
    source_id: Annotated[str | None, typer.Argument(help="Only runs of this source.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    json: JsonOpt = False,
) -> None:
    """Recent sync runs, newest first."""
    rows = services.history(_store(), source_id, limit)
    if json:
        _print_json(rows)
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
            f"[{_status_style(r['sync_status'])}]{r['sync_status']}[/]",
            str(r["records_processed"]),
            str(r["records_inserted"]),
            str(r["records_updated"]),
            str(r["records_deleted"]),
            str(r["records_rejected"]),
            str(r["sync_duration_ms"] or ""),
            _ago(r["sync_started_at"]),
            (r["error_message"] or "")[:80],
        )
    out.print(table)


class _ListByDefault(TyperGroup):
    """``quarantine SOURCE`` lists (the ``list`` command); ``quarantine replay|clear
    SOURCE`` act. A source named like a command is listed with ``quarantine list NAME``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


quarantine_app = typer.Typer(
    cls=_ListByDefault,
    help="Records a source's runs refused: list or export them, replay them, clear them. "
    "'factorysync quarantine SOURCE' lists them.",
    no_args_is_help=True,
)
app.add_typer(quarantine_app, name="quarantine")


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
    page = services.quarantine_page(_store(), source_id, limit=limit, offset=offset)
    if json or format == "json":
        _print_json(page)
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
            _ago(r["last_seen"]),
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
    result = services.replay_quarantine(_store(), source_id, trigger=_cli_user()[:32])
    if json:
        _print_json(result)
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
    result = services.clear_quarantine(_store(), source_id, cleared_by=_cli_user())
    if json:
        _print_json(result)
        return
    out.print(f"{result['removed']} quarantine entries removed", highlight=False)


@app.command()
def status(json: JsonOpt = False) -> None:
    """Counts by status, failing sources, runs in progress, scheduler lag (polled sources),
    the live state of realtime and push sources, and workers."""
    summary = services.status_summary(_store())
    if json:
        _print_json(summary)
        return
    out.print(f"store            {summary['store']}")
    out.print(
        f"sources          {summary['sources']}  "
        + "  ".join(f"{k}={v}" for k, v in sorted(summary["by_status"].items()))
    )
    failing = summary["failing_sources"]
    out.print(
        f"failing          {summary['failing']}"
        + (
            "  "
            + "  ".join(f"[red]{f['source_id']}[/] ({f['consecutive_failures']})" for f in failing)
            if failing
            else ""
        ),
        highlight=False,
    )
    out.print(f"runs in progress {summary['runs_in_progress']}")
    out.print(f"scheduler lag    {summary['scheduler_lag_s']} s (polled sources)")
    for r in summary["realtime"]:
        out.print(
            f"live             {r['source_id']} ({r['connection_type']})  {_live(r)}",
            highlight=False,
        )
    for w in summary.get("workers", []):
        out.print(
            f"worker           {w['worker_id']}  {w['status']}  running "
            f"{w['running']}/{w['max_concurrent']}  leases {w['leases']}  heartbeat "
            f"{_ago(w['heartbeat_at'])}"
        )
    out.print(
        "runs (24 h)      "
        + ("  ".join(f"{k}={v}" for k, v in sorted(summary["runs_last_24h"].items())) or "none")
    )


# -- long-running ---------------------------------------------------------------------
def serve_forever(store: Store, host: str | None = None, port: int | None = None) -> None:
    """Run the scheduler and serve the API and console until SIGINT/SIGTERM.

    The scheduler runs in its own thread next to uvicorn; on a signal, uvicorn stops
    taking requests, then the scheduler lets runs in progress finish.
    """
    import threading

    from factorysync.api.server import serve as serve_api
    from factorysync.engine.scheduler import Scheduler

    settings = store.settings
    host = host or settings.api_host
    port = settings.api_port if port is None else port
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.getLogger("factorysync").setLevel(level)
    logging.getLogger("factorysync.infolog").setLevel(level)
    scheduler = Scheduler(store)

    def _stop(signum: int, _frame: Any) -> None:
        err.print(f"stopping ({signal.Signals(signum).name}): finishing runs in progress…")
        scheduler.stop()

    # uvicorn handles the signal first (graceful shutdown), then hands it on to these.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    admin = services.create_first_admin(store)
    if admin is not None:
        out.print(f"admin     user {admin[0]!r} created; its API token (shown once, keep it safe):")
        sys.stdout.write(admin[1] + "\n")
    thread = threading.Thread(target=scheduler.run_forever, name="scheduler")
    thread.start()
    from factorysync.realtime.service import RealtimeService

    # On PostgreSQL, realtime sources are leased like the scheduler's runs, so that `run`
    # and any `factorysync worker` processes share them.
    realtime = RealtimeService(store, owner=scheduler.worker_id, lease_s=scheduler.lease_s)
    realtime.start()
    out.print(
        f"scheduler running on {store.safe_url}; API and console on http://{host}:{port} "
        "(Ctrl-C stops)"
    )
    try:
        serve_api(store, host, port)
    finally:
        realtime.stop()
        scheduler.stop()
        thread.join()


HostOpt = Annotated[
    str | None, typer.Option("--host", help="API address [default: FACTORYSYNC_API_HOST]")
]
PortOpt = Annotated[
    int | None,
    typer.Option("--port", min=0, max=65535, help="API port [default: FACTORYSYNC_API_PORT]"),
]


@app.command()
def run(host: HostOpt = None, port: PortOpt = None) -> None:
    """Run the scheduler and workers, and serve the API and console, until stopped."""
    serve_forever(_store(), host, port)


@app.command()
def demo(
    serve: Annotated[bool, typer.Option(help="Keep running the scheduler afterwards.")] = True,
    size_mb: Annotated[float, typer.Option(min=0.1, max=10000, help="Size of the data set.")] = 5.0,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Where the demo files go, inside a data root "
            "[default: factorysync-demo in the first data root].",
        ),
    ] = None,
    host: HostOpt = None,
    port: PortOpt = None,
    json: JsonOpt = False,
) -> None:
    """Generate a plant data set of 40+ JSON sources, import, sync and (by default) serve."""
    from factorysync.demo.run import run_demo

    store = _store(ready=False)
    results = run_demo(store, directory, size_mb=size_mb, console=None if json else out)
    if json:
        _print_json([r.as_dict() for r in results])
    failed = [r for r in results if r.sync_status != "success"]
    if failed:
        raise FactorySyncError(f"{len(failed)} demo source(s) failed to sync")
    if serve:
        serve_forever(store, host, port)


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


def _load_command_modules() -> None:
    from factorysync.commands import load_all

    load_all()


_load_command_modules()


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Every secret the process decrypts or resolves is masked in every log line, whoever
    # logs it (a driver's message, a traceback).
    install_log_redaction()
    # Foreground commands print their own outcome; the event log echoes only in `run`.
    logging.getLogger("factorysync.infolog").setLevel(logging.CRITICAL)
    code: object = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    except ConfigError as exc:
        _report(exc, f"error: {exc}")
        code = 2
    except FactorySyncError as exc:
        _report(exc, f"error: {exc}")
        code = 1
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        text = " ".join(str(exc).split())
        _report(
            exc,
            f"error: unexpected {type(exc).__name__}"
            + (f": {text}" if text else "")
            + " (factorysync --debug … prints the traceback)",
        )
        code = 1
    _leave(code)


def _report(exc: BaseException, line: str) -> None:
    """The error's line on stderr, after its whole traceback with ``--debug``."""
    if _Options.debug:
        sys.stderr.write(full_traceback(exc) + "\n")
    sys.stderr.write(line + "\n")


def _leave(code: object) -> NoReturn:
    """End the process: stores closed, exit handlers run and output flushed, then out
    without the interpreter's teardown of every loaded module (about 0.1 s a command).
    A command that left threads running exits the ordinary way."""
    if code is None or isinstance(code, int):
        status = code or 0
    else:
        sys.stderr.write(f"{code}\n")  # as Python prints a SystemExit message
        status = 1
    if threading.active_count() > 1:
        sys.exit(status)
    Store.dispose_all()
    atexit._run_exitfuncs()  # what interpreter shutdown runs first: logging, finalizers
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the output is lost, as Python reports
            status = status or 120
    os._exit(status)


if __name__ == "__main__":
    # `python -m factorysync.cli`: run the importable module, whose Typer apps are the ones
    # the modules in factorysync.commands registered their commands on.
    from factorysync.cli import main as _main

    _main()
