"""``source …``: list, show, sync, reset and set the status of single sources; test and
discover their connections; add one from a template."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from factorysync import services
from factorysync.cli.base import (
    JsonOpt,
    SiteOpt,
    ago,
    cli_user,
    live_state,
    open_store,
    out,
    print_json,
    status_style,
)
from factorysync.errors import ConfigError, ConnectorError, FactorySyncError
from factorysync.yamlsafe import InvalidYaml
from factorysync.yamlsafe import load as load_yaml

source_app = typer.Typer(help="Inspect and operate single sources.", no_args_is_help=True)


@source_app.command("list")
def source_list(
    status: Annotated[str | None, typer.Option(help="Only sources with this status.")] = None,
    site: SiteOpt = None,
    json: JsonOpt = False,
) -> None:
    """List the registered sources: site, status (and failing), cadence, last and next sync.

    Subscription (MQTT, OPC UA) and push sources have no next sync: their live state
    shows instead (receiving, quiet, waiting, error; latest data; records a minute)."""
    rows = services.sources(open_store(), status, site)
    if json:
        print_json(rows)
        return
    table = Table(
        "source_id",
        "name",
        "site",
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
        shown = f"[{status_style(r['status'])}]{r['status']}[/]"
        if r["failing"]:
            shown += f" [red]failing ({r['consecutive_failures']})[/]"
        table.add_row(
            r["source_id"],
            r["name"],
            r["site"],
            r["source_type"],
            shown,
            str(r["priority"]),
            r["cadence"]["text"],
            ago(r["last_sync"]),
            live_state(r["live"]) if r["live"] is not None else ago(r["next_sync"]),
            str(r["error_count"] or ""),
        )
    out.print(table)
    failing = sum(1 for r in rows if r["failing"])
    out.print(f"{len(rows)} source(s)" + (f", [red]{failing} failing[/]" if failing else ""))


@source_app.command("show")
def source_show(source_id: str, json: JsonOpt = False) -> None:
    """Show one source with its connections and mappings (secrets masked), its cadence
    and why, and whether it is failing."""
    from factorysync.store.registry import get_source

    store = open_store()
    with store.connect() as conn:
        source = services.public_source(store, get_source(conn, source_id))
    if json:
        print_json(source)
        return
    out.print(f"site     {source['site']}", highlight=False)
    out.print(f"cadence  {source['cadence']['text']}", highlight=False)
    if source["failing"]:
        out.print(
            f"[red]failing[/]  {source['consecutive_failures']} consecutive failed run(s)",
            highlight=False,
        )
    if source["live"] is not None:
        out.print(f"live     {live_state(source['live'])}", highlight=False)
    out.print_json(orjson.dumps(source, default=str).decode())


@source_app.command("sync")
def source_sync(
    source_id: Annotated[list[str], typer.Argument(help="One or more source ids.")],
    json: JsonOpt = False,
) -> None:
    """Sync sources now, in the foreground; exits non-zero when a sync fails."""
    results = services.sync_many(open_store(), source_id)
    if json:
        print_json([r.as_dict() for r in results])
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
    result = services.reset_source(
        open_store(), source_id, target_table=mapping, reset_by=cli_user()
    )
    if json:
        print_json(result)
        return
    for table, removed in result["mappings"].items():
        cursor = removed["cursor"]
        was = f"cursor was {cursor}" if cursor is not None else "no cursor stored"
        state = ", connector state cleared" if removed["connector_state"] else ""
        out.print(f"{source_id} → {table}: reset ({was}{state})", highlight=False)
    stream = result.get("stream")
    if stream is not None:
        had = "its position forgotten" if stream["connector_state"] else "no position stored"
        out.print(
            f"{source_id}: stream reset ({had}); a running stream starts again from scratch "
            "at the service's next registry scan",
            highlight=False,
        )
        return
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
            f"[{status_style(r.sync_status)}]{r.sync_status}[/]",
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
    from factorysync.cli.base import cli_user

    services.change_status(open_store(), source_id, status, by=cli_user())
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


# -- connections and templates ----------------------------------------------------------
def _one_line(text: str) -> str:
    return " ".join(text.split())


@source_app.command("test")
def source_test(source_id: str, json: JsonOpt = False) -> None:
    """Check each connection of a source (reachable, readable; nothing is synced)."""
    result = services.test_source(open_store(), source_id)
    if json:
        print_json(result)
    else:
        for c in result["connections"]:
            if c["ok"]:
                out.print(
                    f"[green]ok[/]  {c['connection_name']}  {c['latency_ms']:.0f} ms  "
                    f"{c['message']}",
                    highlight=False,
                )
    failed = [c for c in result["connections"] if not c["ok"]]
    if failed:
        raise ConnectorError(
            f"source {source_id!r}: "
            + "; ".join(
                f"connection {c['connection_name']!r} failed after {c['latency_ms']:.0f} ms: "
                f"{_one_line(c['message'])}"
                for c in failed
            )
        )


@source_app.command("discover")
def source_discover(
    source_id: str,
    connection: Annotated[
        str | None, typer.Option(help="Connection to read (default: the primary).")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Mapping whose records_path to use (default: the first).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Records to look at.")] = 200,
    browse: Annotated[
        bool,
        typer.Option(
            "--browse",
            help="OPC UA: list the server's variables (node id, path, type, access, value) "
            "instead of the fields of records, for choosing nodes.",
        ),
    ] = False,
    start: Annotated[
        str | None,
        typer.Option(help="With --browse: node to start at (a node id) [default: Objects]."),
    ] = None,
    depth: Annotated[
        int | None,
        typer.Option(min=1, max=20, help="With --browse: levels below the start [default: 3]."),
    ] = None,
    max_nodes: Annotated[
        int,
        typer.Option(min=1, max=1_000_000, help="With --browse: nodes to visit at most."),
    ] = 1000,
    max_seconds: Annotated[
        float,
        typer.Option(min=1, max=3600, help="With --browse: seconds the walk may take at most."),
    ] = 60,
    json: JsonOpt = False,
) -> None:
    """Fields of a source with their types and sample values (for writing a mapping);
    with --browse, the variables of an OPC UA source's server (for choosing its nodes)."""
    from factorysync.engine.discovery import discover_source

    if browse:
        found = _browse(
            source_id, connection, start or "Objects", depth or 3, max_nodes, max_seconds
        )
        _show_browsed(found, json)
        return
    if start is not None or depth is not None:
        raise ConfigError("--start and --depth go with --browse")
    try:
        found = discover_source(
            open_store(), source_id, connection_name=connection, target_table=target, limit=limit
        )
    except ConnectorError as exc:
        raise type(exc)(_one_line(str(exc))) from None
    if json:
        print_json(found)
        return
    table = Table("field", "type", "nullable", "samples", box=None)
    for f in found["fields"]:
        samples = ", ".join(_sample(v) for v in f["samples"])
        table.add_row(f["name"], f["kind"] or "(all null)", "yes" if f["nullable"] else "", samples)
    out.print(table)
    where = f" at {found['records_path']!r}" if found["records_path"] else ""
    out.print(
        f"{len(found['fields'])} field(s) in up to {limit} record(s) of connection "
        f"{found['connection_name']!r}{where}",
        highlight=False,
    )


def _browse(
    source_id: str,
    connection_name: str | None,
    start: str,
    depth: int,
    max_nodes: int,
    max_seconds: float,
) -> dict[str, Any]:
    """The browse listing of one connection of a source (the primary unless named);
    errors come with the connection's secrets removed."""
    from factorysync.connectors.registry import open_connection
    from factorysync.security.redaction import Redactor
    from factorysync.store.registry import declaration_of, get_source

    store = open_store()
    with store.connect() as conn:
        decl = declaration_of(get_source(conn, source_id), store.box)
    chosen = decl.primary()
    if connection_name is not None:
        named = [c for c in decl.connections if c.connection_name == connection_name]
        if not named:
            names = ", ".join(c.connection_name for c in decl.connections)
            raise ConfigError(
                f"source {source_id!r} has no connection {connection_name!r} (connections: {names})"
            )
        chosen = named[0]
    redact = Redactor()
    try:
        connector = open_connection(chosen, source_id, store.settings, redact=redact)
        walk = getattr(connector, "browse", None)
        if walk is None:
            raise ConfigError(
                f"source {source_id!r}: --browse lists the nodes of an OPC UA server; "
                f"connection_type {chosen.connection_type!r} has none (use discover without it)"
            )
        found: dict[str, Any] = walk(
            start=start, depth=depth, max_nodes=max_nodes, max_seconds=max_seconds
        )
    except FactorySyncError as exc:
        raise type(exc)(_one_line(redact(str(exc)))) from None
    return {"source_id": source_id, "connection_name": chosen.connection_name, **found}


def _show_browsed(found: dict[str, Any], json: bool) -> None:
    if json:
        print_json(found)
        return
    table = Table("node_id", "path", "type", "access", "value", box=None)
    for v in found["variables"]:
        value = "" if v["value"] is None else _sample(v["value"])
        if v["status"] not in (None, "Good"):
            value = f"({v['status']})"
        table.add_row(
            v["node_id"], v["path"], v["data_type"] or "", ",".join(v["access"] or []), value
        )
    out.print(table)
    out.print(
        f"{len(found['variables'])} variable(s) in {found['visited']} node(s) under "
        f"{found['start']} (depth {found['depth']}) of {found['endpoint']}",
        highlight=False,
    )
    if found["truncated"]:
        out.print(f"[yellow]listing truncated:[/] {found['truncated']}", highlight=False)


def _sample(value: Any) -> str:
    text = value.isoformat() if hasattr(value, "isoformat") else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _settings(pairs: list[str] | None, what: str, *, typed: bool) -> dict[str, Any]:
    """``KEY=VALUE`` options as a mapping; typed values are read as YAML scalars."""
    found: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} {pair!r}: expected KEY=VALUE")
        if typed:
            try:
                found[key.strip()] = load_yaml(value, f"{what} {key.strip()}") if value else ""
            except InvalidYaml:  # not YAML (e.g. a lone ','): the text itself
                found[key.strip()] = value
        else:
            found[key.strip()] = value
    return found


@source_app.command("add")
def source_add(
    source_id: str,
    template: Annotated[str, typer.Option(help="Template to start from (see 'source templates').")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="connection_config KEY=VALUE (repeatable; YAML values, dotted keys nest).",
        ),
    ] = None,
    auth: Annotated[
        list[str] | None,
        typer.Option(help="authentication_config KEY=VALUE (repeatable; use ${env:NAME})."),
    ] = None,
    target: Annotated[str | None, typer.Option(help="Target table (default: source id).")] = None,
    strategy: Annotated[
        str | None, typer.Option(help="Sync strategy: full or incremental.")
    ] = None,
    primary_key: Annotated[
        str | None, typer.Option(help="Primary key column(s), comma separated.")
    ] = None,
    cursor_field: Annotated[
        str | None, typer.Option(help="Cursor column for incremental syncs.")
    ] = None,
    records_path: Annotated[
        str | None, typer.Option(help="Where the records sit (JSON path, or the Excel sheet).")
    ] = None,
    refresh_interval: Annotated[
        int | None, typer.Option(min=1, help="Seconds between syncs.")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Register a new source from a template."""
    from factorysync.store.templates import declaration_from_template, get_template

    store = open_store()
    with store.connect() as conn:
        found = get_template(conn, template)
    mapping: dict[str, Any] = {}
    if primary_key is not None:
        mapping["primary_key"] = [k.strip() for k in primary_key.split(",") if k.strip()]
    if cursor_field is not None:
        mapping["cursor_field"] = cursor_field
    if records_path is not None:
        mapping["records_path"] = records_path
    declaration = declaration_from_template(
        found,
        source_id,
        name=name,
        connection_config=_settings(set_, "--set", typed=True),
        authentication_config=_settings(auth, "--auth", typed=False),
        mapping_config=mapping,
        target_table=target,
        sync_strategy=strategy,
        refresh_interval=refresh_interval,
    )
    change = services.create_source(store, declaration)
    if json:
        print_json(change.__dict__)
        return
    out.print(
        f"[green]+[/] {source_id} created from template {template!r}; "
        f"try: factorysync source test {source_id}",
        highlight=False,
    )


@source_app.command("templates")
def source_templates(json: JsonOpt = False) -> None:
    """List the source templates."""
    from factorysync.store.templates import list_templates, public_template

    with open_store().connect() as conn:
        templates = [public_template(t) for t in list_templates(conn)]
    if json:
        print_json(templates)
        return
    table = Table("template", "type", "connection", "description", box=None)
    for t in templates:
        table.add_row(
            t["template_name"], t["source_type"], t["connection_type"], t["description"] or ""
        )
    out.print(table)
