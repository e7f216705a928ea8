"""Test, discover and preview a source as the form describes it, before it is saved.

The connector is built exactly as a run builds it (same config validation, data roots,
command allow-list and API host rules), from the form's declaration. When an existing
source is edited, secrets left as "***" and masked parts of the config are filled from
the stored source. Every message passes through a redactor holding the secrets.

Discovery also suggests what the form still lacks (a target table from the source's
name, its key where the connector can tell, a mapped column per field with its type and
a time-zone note for naive timestamps); on a type that can browse (OPC UA) it lists the
server's variables instead. Sample values of any type are shown as text
(:func:`sample_text`).
"""

from __future__ import annotations

import time
from typing import Any, get_args

import orjson

from factorysync.config import SourceDecl
from factorysync.config.names import IDENTIFIER, snake_case
from factorysync.connectors.base import Connector, ReadRequest, describe_records
from factorysync.connectors.registry import open_connection
from factorysync.engine.discovery import naive_note
from factorysync.engine.mapping import FieldType, Mapper
from factorysync.errors import FactorySyncError
from factorysync.security.redaction import Redactor, redact_config
from factorysync.security.secret_values import MASK
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.store import Store
from factorysync.web.samples import sample_text

_FIELD_TYPES = get_args(FieldType)
PREVIEW_ROWS = 10
DISCOVER_LIMIT = 200
BROWSE_DEPTH = 3
BROWSE_NODES = 1000
BROWSE_SECONDS = 30


def _restore(sent: Any, shown: Any, stored: Any) -> Any:
    """``sent`` with every value still equal to what was shown masked put back as stored."""
    if isinstance(sent, dict) and isinstance(stored, dict):
        shown = shown if isinstance(shown, dict) else {}
        return {k: _restore(v, shown.get(k), stored.get(k)) for k, v in sent.items()}
    if isinstance(sent, str) and MASK in sent and sent == shown and stored is not None:
        return stored
    return sent


def with_stored_secrets(store: Store, decl: SourceDecl, source_id: str) -> SourceDecl:
    """The edited declaration with masked values replaced by the stored ones."""
    with store.connect() as conn:
        old = declaration_of(get_source(conn, source_id), store.box)
    redact = Redactor()
    for c in old.connections:
        redact.add(c.authentication_config)
    by_name = {c.connection_name: c for c in old.connections}
    for c in decl.connections:
        before = by_name.get(c.connection_name)
        if before is None:
            continue
        c.authentication_config = {
            k: before.authentication_config.get(k, v) if v == MASK else v
            for k, v in c.authentication_config.items()
        }
        shown = redact_config(before.connection_config, redact)
        c.connection_config = _restore(c.connection_config, shown, before.connection_config)
    return decl


def _connector(store: Store, decl: SourceDecl, limit: int) -> tuple[Connector, Redactor]:
    settings = store.settings
    redact = Redactor()
    connector = open_connection(
        decl.primary(),
        decl.source_id,
        settings,
        redact=redact,
        batch_size=min(settings.batch_size, limit),
    )
    return connector, redact


def _failure(exc: Exception, redact: Redactor | None) -> str:
    text = str(exc) if isinstance(exc, FactorySyncError | OSError) else repr(exc)
    problems = getattr(exc, "problems", None) or []
    if problems:
        text += ": " + "; ".join(problems)
    return redact(text) if redact is not None else text


def test(store: Store, decl: SourceDecl) -> dict[str, Any]:
    started = time.perf_counter()
    redact = None
    try:
        connector, redact = _connector(store, decl, DISCOVER_LIMIT)
        message = connector.check().message
        ok = True
    except Exception as exc:  # every failure is the answer shown in the form
        ok, message = False, _failure(exc, redact)
    return {
        "ok": ok,
        "message": redact(message) if redact is not None else message,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def discover(store: Store, decl: SourceDecl) -> dict[str, Any]:
    """Fields with samples and what to map them to; a server's variables for a type
    that browses (OPC UA)."""
    redact = None
    try:
        connector, redact = _connector(store, decl, DISCOVER_LIMIT)
        walk = getattr(connector, "browse", None)
        if walk is not None:
            found = walk(depth=BROWSE_DEPTH, max_nodes=BROWSE_NODES, max_seconds=BROWSE_SECONDS)
            return _browsed(found, table_name(connector.name_hint()), connector.key_hint())
        records_path = decl.mappings[0].mapping_config.records_path if decl.mappings else None
        fields = connector.discover(records_path=records_path, limit=DISCOVER_LIMIT)
        key = connector.key_hint()
        name = connector.name_hint()
    except Exception as exc:
        return {"ok": False, "message": _failure(exc, redact), "fields": []}
    zone = connector.timezone
    shown = []
    for f in fields:
        col = snake_case(f.name)
        shown.append(
            {
                "name": f.name,
                "kind": f.kind,
                "nullable": f.nullable,
                "samples": f.samples,
                "col": col,
                "from": f.name if col != f.name else "",
                "type": f.kind if f.kind in _FIELD_TYPES else "",
                "note": naive_note(f.kind, f.samples, zone, typed=f.naive) or "",
            }
        )
    by_name = {f["name"]: f["col"] for f in shown}
    return {
        "ok": True,
        "message": "",
        "fields": shown,
        "target_table": table_name(name),
        "key": [by_name.get(k, snake_case(k)) for k in key] if key else [],
        "timezone": zone,
    }


def table_name(hint: str | None) -> str:
    """A target table made from the source's own name (a table, a file, a topic, a URL)."""
    if not hint:
        return ""
    last = [p for p in hint.replace("\\", "/").split("?")[0].split("/") if p and p not in "+#"]
    stem = last[-1] if last else hint
    stem = stem.rsplit(".", 1)[0] if "." in stem and not stem.startswith(".") else stem
    name = snake_case(stem.replace("*", ""))
    return name if IDENTIFIER.match(name) else ""


def _browsed(found: dict[str, Any], table: str, key: list[str] | None) -> dict[str, Any]:
    variables = [
        {
            **v,
            "value": "" if v.get("value") is None else sample_text(v["value"]),
            "pick": orjson.dumps({"node_id": v["node_id"], "field": v["field"]}).decode(),
        }
        for v in found.get("variables", [])
    ]
    return {
        "ok": True,
        "message": found.get("truncated") or "",
        "browse": True,
        "fields": [],
        "variables": variables,
        "target_table": table,
        "key": key or [],
    }


def preview(store: Store, decl: SourceDecl) -> dict[str, Any]:
    """The first records mapped as the mapping says, with each record's problem if any."""
    redact = None
    try:
        connector, redact = _connector(store, decl, PREVIEW_ROWS)
        mapping = decl.mappings[0].mapping_config
        mapper = Mapper(mapping, zone=connector.timezone)  # as a run maps naive times
        records: list[Any] = []
        request = ReadRequest(records_path=mapping.records_path)
        for batch in connector.read(request):
            records.extend(batch.records[: PREVIEW_ROWS - len(records)])
            if len(records) >= PREVIEW_ROWS:
                break
        rows: list[dict[str, Any]] = []
        problems: list[str] = []
        for i, record in enumerate(records):
            try:
                rows.extend(mapper.map(r) for r in mapper.expand(record))
            except FactorySyncError as exc:
                problems.append(f"record {i + 1}: {redact(str(exc))}")
    except Exception as exc:
        return {"ok": False, "message": _failure(exc, redact), "columns": [], "rows": []}
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    return {
        "ok": not problems,
        "message": "; ".join(problems),
        "columns": columns,
        "rows": [[row.get(c) for c in columns] for row in rows[:PREVIEW_ROWS]],
        "fields": [f.name for f in describe_records(records)],
        "raw": [_raw_row(r) for r in records[:PREVIEW_ROWS]],
    }


def _raw_row(record: Any) -> dict[str, str]:
    if not isinstance(record, dict):
        return {"value": sample_text(record)}
    return {str(k): v if isinstance(v, str) else sample_text(v) for k, v in record.items()}
