"""Discovery of a registered source: its fields, kinds and sample values, for mapping.

Shared by the CLI (``factorysync source discover``) and the API.

Fields holding timestamps without a time zone are marked ``naive`` with a note: the
connector reads typed ones (database timestamps without a time zone, CSV dates in
``date_formats``, Excel dates) in the connection's ``timezone`` (default UTC); text ones
(JSON, API and command output) stay text unless a mapping field types them as
``datetime``, which then reads them in that zone.
"""

from __future__ import annotations

import re
from typing import Any

from factorysync.connectors.registry import open_connection
from factorysync.errors import ConfigError, FactorySyncError
from factorysync.security.redaction import Redactor
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.store import Store

# ISO 8601 date-time text without an offset (with one, it is typed as it says).
NAIVE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?$")


def discover_source(
    store: Store,
    source_id: str,
    *,
    connection_name: str | None = None,
    target_table: str | None = None,
    limit: int = 200,
) -> dict[str, Any]:
    """Fields of ``source_id`` read from up to ``limit`` records of one connection.

    The connection is the primary one unless named; the records sit where the mapping
    (``target_table``, else the first active one) says (``records_path``). Errors are
    raised with known secrets removed.
    """
    with store.connect() as conn:
        decl = declaration_of(get_source(conn, source_id), store.box)
    names = [c.connection_name for c in decl.connections]
    if connection_name is None:
        chosen = decl.primary()
    else:
        found = [c for c in decl.connections if c.connection_name == connection_name]
        if not found:
            raise ConfigError(
                f"source {source_id!r} has no connection {connection_name!r} "
                f"(connections: {', '.join(names)})"
            )
        chosen = found[0]
    mappings = [m for m in decl.mappings if m.is_active] or decl.mappings
    if target_table is not None:
        mappings = [m for m in decl.mappings if m.target_table == target_table]
        if not mappings:
            raise ConfigError(f"source {source_id!r} has no mapping to {target_table!r}")
    records_path = mappings[0].mapping_config.records_path if mappings else None
    redact = Redactor()
    redact.add(chosen.authentication_config)
    settings = store.settings
    try:
        connector = open_connection(
            chosen, source_id, settings, redact=redact, batch_size=min(settings.batch_size, limit)
        )
        fields = connector.discover(records_path=records_path, limit=limit)
    except FactorySyncError as exc:
        raise type(exc)(redact(str(exc))) from None
    zone = connector.timezone
    described = []
    for f in fields:
        entry: dict[str, Any] = {
            "name": f.name,
            "kind": f.kind,
            "nullable": f.nullable,
            "samples": f.samples,
        }
        note = naive_note(f.kind, f.samples, zone, typed=f.naive)
        if note is not None:
            entry["naive"] = True
            entry["note"] = note
        described.append(entry)
    return {
        "source_id": source_id,
        "connection_name": chosen.connection_name,
        "records_path": records_path,
        "timezone": zone,
        "fields": described,
    }


def naive_note(kind: str | None, samples: list[Any], zone: str, *, typed: bool) -> str | None:
    """What a field of timestamps without a time zone becomes (None: not such a field).

    ``typed``: the connector read them as timestamps; else text samples that are all
    ISO date-times without an offset make the field one.
    """
    setting = "set connection_config.timezone" if zone == "UTC" else "connection_config.timezone"
    if typed:
        return f"naive timestamps, read as {zone} ({setting})"
    texts = [v for v in samples if v is not None]
    if kind != "string" or not texts:
        return None
    if all(isinstance(v, str) and NAIVE_TEXT.match(v) for v in texts):
        return (
            "naive timestamps in text, kept as text: a mapping field {type: datetime} "
            f"reads them as {zone} ({setting})"
        )
    return None
