"""Source templates (``data_source_templates``): the predefined ones, seeded by
``factorysync init``, and source declarations made from a template.

A row keeps the design's ``template_type`` (the connection type) and ``template_config``
(the source type and the connection, authentication and mapping configs); readers get
those parts beside the row's columns (:func:`list_templates`, :func:`get_template`).

A template holds a complete example connection (``connection_config``, and an
``authentication_config`` whose secrets are ``${env:NAME}`` references, never values)
plus a starting ``mapping_config``. :func:`declaration_from_template` overlays what the
user gives (``file_path``, ``host``, ``table``, …) and returns a source declaration that
``services.create_source`` registers like any other.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from sqlalchemy import Connection, insert, select, update

from factorysync.errors import ConfigError, NotFoundError
from factorysync.security.secret_values import mask_config
from factorysync.store.db import plain
from factorysync.store.schema import data_source_templates as templates_t
from factorysync.store.schema import users as users_t


def _t(
    name: str,
    display: str,
    description: str,
    source_type: str,
    connection_type: str,
    connection_config: dict[str, Any],
    authentication_config: dict[str, Any] | None = None,
    mapping_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "template_name": name,
        "display_name": display,
        "description": description,
        "source_type": source_type,
        "connection_type": connection_type,
        "connection_config": connection_config,
        "authentication_config": authentication_config or {},
        "mapping_config": mapping_config or {},
    }


def _table(dialect: str, port: int, schema: str | None, display: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "dialect": dialect,
        "host": "127.0.0.1",
        "port": port,
        "database": "mes",
        "table": "production",
        "connection_pool_size": 5,
        "connect_timeout": 10,
    }
    if schema:
        config["schema"] = schema
    return _t(
        f"{dialect}_table",
        f"{display} table",
        f"Rows of one {display} table (or a query), streamed; incremental by a cursor column.",
        "database",
        "database",
        config,
        {"username": "factorysync", "password": "${env:MES_DB_PASSWORD}"},
        {"primary_key": ["id"]},
    )


PREDEFINED: list[dict[str, Any]] = [
    _t(
        "json_file",
        "JSON file",
        "A JSON document (an array, or an object holding the records) or a glob of them.",
        "json",
        "file",
        {"file_path": "production.json", "file_type": "json", "encoding": "utf-8"},
    ),
    _t(
        "csv_file",
        "CSV file",
        "CSV exports; a glob picks up new files. Semicolons and decimal commas are common "
        "in plant exports: set delimiter and decimal.",
        "csv",
        "file",
        {
            "file_path": "imports/*.csv",
            "file_type": "csv",
            "delimiter": ",",
            "decimal": ".",
            "has_header": True,
            "encoding": "utf-8",
        },
    ),
    _t(
        "excel_workbook",
        "Excel workbook",
        "One sheet of .xlsx/.xls workbooks (name or 0-based index), header in the first row.",
        "excel",
        "file",
        {"file_path": "imports/report.xlsx", "file_type": "excel", "sheet": 0},
    ),
    _table("postgresql", 5432, "public", "PostgreSQL"),
    _table("mysql", 3306, None, "MySQL / MariaDB"),
    _table("mssql", 1433, "dbo", "SQL Server"),
    _t(
        "sqlite_file",
        "SQLite file",
        "A table of an SQLite database file inside the data roots (opened read-only).",
        "database",
        "database",
        {"dialect": "sqlite", "database": "plant.db", "table": "production"},
        None,
        {"primary_key": ["id"]},
    ),
    _t(
        "rest_api",
        "REST API",
        "JSON from an HTTP endpoint of a machine or MES, with a bearer token.",
        "api",
        "api",
        {"url": "https://mes.example.local/api/production", "method": "GET", "timeout": 30},
        {"type": "bearer", "token": "${env:MES_API_TOKEN}"},
        {"records_path": "data"},
    ),
    _t(
        "laravel_artisan",
        "Laravel artisan command",
        "Runs 'php artisan COMMAND' in the Laravel project and reads its JSON output "
        "(php must be on FACTORYSYNC_COMMAND_ALLOWLIST).",
        "artisan",
        "artisan",
        {
            "command": "production:export",
            "parameters": {"format": "json"},
            "working_directory": "/var/www/mes",
            "timeout": 300,
            "output_format": "json",
        },
        None,
        {"records_path": "data"},
    ),
    _t(
        "mqtt_topic",
        "MQTT topic",
        "Machine status messages from an MQTT broker (live).",
        "mqtt",
        "mqtt",
        {
            "host": "127.0.0.1",
            "port": 1883,
            "topics": ["plant/+/status"],
            "topic_template": "plant/{machine_id}/status",
            "qos": 1,
        },
        {"username": "factorysync", "password": "${env:MQTT_PASSWORD}"},
        {"primary_key": ["machine_id"]},  # the latest status of each machine
    ),
    _t(
        "opcua_nodes",
        "OPC UA nodes",
        "Values of OPC UA nodes of a machine controller (subscriptions).",
        "opcua",
        "opcua",
        {
            "endpoint": "opc.tcp://127.0.0.1:4840",
            "nodes": [{"node_id": "ns=2;s=Machine1.Temperature", "field": "temperature"}],
            "publishing_interval_ms": 1000,
        },
        None,
        # One row per value change: keyed by node and source timestamp, so a change read
        # from the server's history after a reconnect and received live lands once.
        {"primary_key": ["field", "source_timestamp"]},
    ),
]


# What a template row keeps in ``template_config``; its ``template_type`` is the
# connection type (as the design has it).
CONFIG_PARTS = ("source_type", "connection_config", "authentication_config", "mapping_config")


def stored_template(template: dict[str, Any]) -> dict[str, Any]:
    """A template as its ``data_source_templates`` row holds it."""
    return {
        "template_name": template["template_name"],
        "template_type": template["connection_type"],
        "template_config": {
            part: template.get(part) or ({} if part != "source_type" else None)
            for part in CONFIG_PARTS
        },
        "display_name": template.get("display_name") or template["template_name"],
        "description": template.get("description"),
    }


def _shown(row: Any) -> dict[str, Any]:
    """A stored template with its ``template_config`` parts beside it, as the console, the
    API and :func:`declaration_from_template` read it. A row written by plain SQL may
    hold less: missing parts read as empty, the source type as the connection type's
    usual one."""
    from factorysync.connectors.registry import DEFAULT_CONNECTION_TYPE

    found = plain(row)
    config = found["template_config"] if isinstance(found["template_config"], dict) else {}
    usual = next(
        (s for s, c in DEFAULT_CONNECTION_TYPE.items() if c == found["template_type"]), None
    )
    found.update(
        connection_type=found["template_type"],
        source_type=config.get("source_type") or usual or found["template_type"],
        display_name=found["display_name"] or found["template_name"],
        is_predefined=bool(found["is_predefined"]),
        **{part: config.get(part) or {} for part in CONFIG_PARTS[1:]},
    )
    return found


# Left out of what people are shown: ``template_config`` holds the parts again, its
# authentication config unmasked; ``created_by_id`` is the user's row (its name is shown).
HIDDEN = ("template_config", "created_by_id")


def public_template(template: dict[str, Any]) -> dict[str, Any]:
    """A template (as :func:`list_templates` reads it) as the API and ``source templates``
    show it: the authentication config masked, nothing that repeats it unmasked."""
    shown = {k: v for k, v in template.items() if k not in HIDDEN}
    shown["authentication_config"] = mask_config(template["authentication_config"])
    return shown


def all_predefined() -> list[dict[str, Any]]:
    """The built-in templates, then those connection types declare on their classes
    (plugins included); a name given twice keeps its first template."""
    from factorysync.connectors.registry import declared_templates

    found: dict[str, dict[str, Any]] = {}
    for template in [*PREDEFINED, *declared_templates()]:
        found.setdefault(template["template_name"], template)
    return list(found.values())


def seed_templates(conn: Connection) -> int:
    """Insert or refresh the predefined templates (user templates are left alone).

    Returns how many were inserted or changed.
    """
    existing = {r.template_name: r for r in conn.execute(select(templates_t)).mappings()}
    changed = 0
    for template in map(stored_template, all_predefined()):
        row = existing.get(template["template_name"])
        if row is None:
            conn.execute(insert(templates_t).values(**template, is_predefined=True))
            changed += 1
        elif row["is_predefined"] and any(row[k] != v for k, v in template.items()):
            conn.execute(
                update(templates_t)
                .where(templates_t.c.template_name == template["template_name"])
                .values(**template)
            )
            changed += 1
    return changed


def _template_rows() -> Any:
    """Template rows as callers read them: ``created_by`` is the user's name (its id is
    ``created_by_id``), as registry rows read."""
    columns = [c for c in templates_t.c if c.key != "created_by"]
    return select(
        *columns,
        templates_t.c.created_by.label("created_by_id"),
        users_t.c.username.label("created_by"),
    ).outerjoin(users_t, users_t.c.id == templates_t.c.created_by)


def list_templates(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(_template_rows().order_by(templates_t.c.template_name)).mappings()
    return [_shown(r) for r in rows]


def get_template(conn: Connection, name: str) -> dict[str, Any]:
    row = (
        conn.execute(_template_rows().where(templates_t.c.template_name == name)).mappings().first()
    )
    if row is None:
        names = ", ".join(t["template_name"] for t in list_templates(conn))
        raise NotFoundError(f"no template {name!r} (templates: {names or 'none'})")
    return _shown(row)


def _overlay(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied; a dotted key sets a nested value (csv.delimiter)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        target = out
        *parents, leaf = key.split(".")
        for part in parents:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {}
            target = child
        if value is None:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return out


def _default_strategy(template: dict[str, Any]) -> str:
    return default_strategy(str(template.get("connection_type") or ""))


def default_strategy(connection_type: str) -> str:
    """``realtime`` for a connection type that streams (MQTT, OPC UA, a polled device) or
    is pushed to (HTTP push): its values arrive as they change, not on a full sync every
    hour. Templates and the console's form both start from it."""
    from factorysync.connectors.registry import capability_of

    live = capability_of(connection_type, "streams") or capability_of(connection_type, "pushes")
    return "realtime" if live else "full"


def declaration_from_template(
    template: dict[str, Any],
    source_id: str,
    *,
    name: str | None = None,
    connection_config: dict[str, Any] | None = None,
    authentication_config: dict[str, Any] | None = None,
    mapping_config: dict[str, Any] | None = None,
    target_table: str | None = None,
    sync_strategy: str | None = None,
    refresh_interval: int | None = None,
) -> dict[str, Any]:
    """A source declaration: the template's settings with the given ones laid over them.

    A setting given as None removes the template's value (e.g. ``table`` for ``query``).
    """
    if not isinstance(source_id, str) or not source_id:
        raise ConfigError("a source needs a source_id")
    mapping = _overlay(template.get("mapping_config") or {}, mapping_config or {})
    conn_config = _overlay(template["connection_config"], connection_config or {})
    if "query" in (connection_config or {}) and "table" not in (connection_config or {}):
        conn_config.pop("table", None)  # a query replaces the template's example table
    declaration: dict[str, Any] = {
        "source_id": source_id,
        "name": name or f"{template['display_name']}: {source_id}",
        "source_type": template["source_type"],
        "connection_type": template["connection_type"],
        "connections": [
            {
                "connection_name": "primary",
                "connection_type": template["connection_type"],
                "connection_config": conn_config,
                "authentication_config": _overlay(
                    template.get("authentication_config") or {}, authentication_config or {}
                ),
                "is_primary": True,
            }
        ],
        "mappings": [
            {
                "target_table": target_table or re.sub(r"[^a-z0-9_]", "_", source_id),
                "sync_strategy": sync_strategy or _default_strategy(template),
                "mapping_config": mapping,
            }
        ],
    }
    if declaration["mappings"][0]["sync_strategy"] == "realtime":
        declaration["mappings"][0]["sync_frequency"] = "realtime"
    if refresh_interval is not None:
        declaration["refresh_interval"] = refresh_interval
    return declaration
