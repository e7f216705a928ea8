"""Test, discover and preview a source as the form describes it, before it is saved.

The connector is built exactly as a run builds it (same config validation, data roots,
command allow-list and API host rules), from the form's declaration. When an existing
source is edited, secrets left as "***" and masked parts of the config are filled from
the stored source. Every message passes through a redactor holding the secrets.
"""

from __future__ import annotations

import time
from typing import Any

from factorysync.config import SourceDecl
from factorysync.connectors.base import Connector, ReadRequest, describe_records
from factorysync.connectors.registry import open_connection
from factorysync.engine.mapping import Mapper
from factorysync.errors import FactorySyncError
from factorysync.security.redaction import Redactor, redact_config
from factorysync.security.secret_values import MASK
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.store import Store

PREVIEW_ROWS = 10
DISCOVER_LIMIT = 200


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
    redact = None
    try:
        connector, redact = _connector(store, decl, DISCOVER_LIMIT)
        records_path = decl.mappings[0].mapping_config.records_path if decl.mappings else None
        fields = connector.discover(records_path=records_path, limit=DISCOVER_LIMIT)
    except Exception as exc:
        return {"ok": False, "message": _failure(exc, redact), "fields": []}
    return {
        "ok": True,
        "message": "",
        "fields": [
            {"name": f.name, "kind": f.kind, "nullable": f.nullable, "samples": f.samples}
            for f in fields
        ],
    }


def preview(store: Store, decl: SourceDecl) -> dict[str, Any]:
    """The first records mapped as the mapping says, with each record's problem if any."""
    redact = None
    try:
        connector, redact = _connector(store, decl, PREVIEW_ROWS)
        mapping = decl.mappings[0].mapping_config
        mapper = Mapper(mapping)
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
    }
