"""``source test``, ``source discover``, ``source add --template`` and ``source templates``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from factorysync import services
from factorysync.cli import JsonOpt, _print_json, _store, out, source_app
from factorysync.errors import ConfigError, ConnectorError
from factorysync.yamlsafe import InvalidYaml
from factorysync.yamlsafe import load as load_yaml


def _one_line(text: str) -> str:
    return " ".join(text.split())


@source_app.command("test")
def source_test(source_id: str, json: JsonOpt = False) -> None:
    """Check each connection of a source (reachable, readable; nothing is synced)."""
    result = services.test_source(_store(), source_id)
    if json:
        _print_json(result)
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
    json: JsonOpt = False,
) -> None:
    """Fields of a source with their types and sample values (for writing a mapping)."""
    from factorysync.connectors.discovery import discover_source

    try:
        found = discover_source(
            _store(), source_id, connection_name=connection, target_table=target, limit=limit
        )
    except ConnectorError as exc:
        raise type(exc)(_one_line(str(exc))) from None
    if json:
        _print_json(found)
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

    store = _store()
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
    change = services.create_source(store, declaration, created_by=f"template:{template}")
    if json:
        _print_json(change.__dict__)
        return
    out.print(
        f"[green]+[/] {source_id} created from template {template!r}; "
        f"try: factorysync source test {source_id}",
        highlight=False,
    )


@source_app.command("templates")
def source_templates(json: JsonOpt = False) -> None:
    """List the source templates."""
    from factorysync.security.secrets import mask_config
    from factorysync.store.templates import list_templates

    with _store().connect() as conn:
        templates = list_templates(conn)
    for t in templates:
        t["authentication_config"] = mask_config(t["authentication_config"])
    if json:
        _print_json(templates)
        return
    table = Table("template", "type", "connection", "description", box=None)
    for t in templates:
        table.add_row(
            t["template_name"], t["source_type"], t["connection_type"], t["description"] or ""
        )
    out.print(table)
