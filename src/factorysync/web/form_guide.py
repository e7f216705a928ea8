"""What guides the add/edit source form: probing a connection before its mapping is
written, and putting what discovery found into the form.

Test connection and Discover need the connection only: :func:`connection_only` makes the
declaration they run on from the form's connection, with a stand-in mapping (and the
connection type's ``probe_defaults`` for keys left empty: an OPC UA server is browsed
before any node is chosen). Preview and Save need the whole form.

Without JavaScript the server fills the form itself: :func:`apply_discovery` puts the
suggested target table, key and mapped fields into the inputs still empty, and
:func:`use_nodes` puts the OPC UA variables ticked in a browse listing into ``nodes``.
"""

from __future__ import annotations

from typing import Any

import orjson

from factorysync.config import SOURCE_ID
from factorysync.connectors.registry import connector_class
from factorysync.errors import ConfigError
from factorysync.web.forms import FIELD_ROWS, SourceForm

STAND_IN_ID = "new-source"
STAND_IN_TABLE = "probe"
PROBE_INTENTS = ("test", "discover")  # the intents that need no mapping


def connection_only(raw: dict[str, Any]) -> dict[str, Any]:
    """The declaration a test or discovery runs on: the form's connection, its
    ``records_path``, and a stand-in for everything else."""
    connection = dict(raw["connections"][0])
    config = dict(connection.get("connection_config") or {})
    try:
        defaults = connector_class(str(connection.get("connection_type"))).probe_defaults
    except ConfigError:
        defaults = {}
    for key, value in defaults.items():
        if config.get(key) in (None, "", [], {}):
            config[key] = value
    connection["connection_config"] = config
    given = (raw.get("mappings") or [{}])[0].get("mapping_config") or {}
    mapping_config = {"records_path": given["records_path"]} if given.get("records_path") else {}
    source_id = str(raw.get("source_id") or "")
    return {
        "source_id": source_id if SOURCE_ID.match(source_id) else STAND_IN_ID,
        "name": raw.get("name") or source_id or STAND_IN_ID,
        "source_type": raw["source_type"],
        "connections": [connection],
        "mappings": [
            {
                "target_table": STAND_IN_TABLE,
                "sync_strategy": "full",
                "mapping_config": mapping_config,
            }
        ],
    }


def connection_problems(form: SourceForm) -> None:
    """Keep only the connection's problems on ``form`` (a test or discovery ignores the
    rest of the form)."""
    form.errors = {k: v for k, v in form.errors.items() if k == "auth" or k.startswith("cfg")}
    form.form_errors = []


def apply_discovery(form: SourceForm, result: dict[str, Any]) -> None:
    """Fill the target table, key and field rows from a discovery, where still empty
    (and the source id and name, from the target table, on a new source)."""
    if not result.get("ok"):
        return
    values = form.values
    table = result.get("target_table") or ""
    if table and not values.get("target_table"):
        values["target_table"] = table
    if table and not values.get("source_id") and form.editing is None:
        values["source_id"] = table.replace("_", "-")
    if table and not values.get("name"):
        values["name"] = table.replace("_", " ").capitalize()
    if result.get("key") and not values.get("primary_key"):
        values["primary_key"] = ", ".join(result["key"])
    if result.get("browse") or any(row["col"] for row in form.field_rows):
        return
    rows = [
        {"col": f["col"], "from": f["from"], "type": f["type"], "expr": "", "extra": ""}
        for f in result.get("fields", [])
    ]
    empty = {"col": "", "from": "", "type": "", "expr": "", "extra": ""}
    form.field_rows = rows + [dict(empty) for _ in range(FIELD_ROWS)]


def use_nodes(form: SourceForm, picks: list[str]) -> None:
    """Put the ticked variables of a browse listing (``{"node_id", "field"}`` each) into
    the form's ``nodes`` input."""
    nodes = []
    for pick in picks:
        try:
            node = orjson.loads(pick)
        except orjson.JSONDecodeError:
            continue
        if isinstance(node, dict) and node.get("node_id") and node.get("field"):
            nodes.append({"node_id": str(node["node_id"]), "field": str(node["field"])})
    for f in form.fields:
        if f.key == "nodes":
            f.value = orjson.dumps(nodes, option=orjson.OPT_INDENT_2).decode()
            f.advanced = False
