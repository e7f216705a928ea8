"""Discovery of a registered source: its fields, kinds and sample values, for mapping.

Shared by the CLI (``factorysync source discover``) and the API.
"""

from __future__ import annotations

from typing import Any

from factorysync.connectors.base import ConnectorContext
from factorysync.connectors.registry import build_connector
from factorysync.errors import ConfigError, FactorySyncError
from factorysync.security.secrets import Redactor, resolve_env_refs
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.store import Store


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
    context = ConnectorContext(source_id, settings, min(settings.batch_size, limit))
    auth = resolve_env_refs(chosen.authentication_config, where=f"{chosen.connection_name} auth")
    redact.add(auth)
    assert chosen.connection_type is not None
    try:
        connector = build_connector(chosen.connection_type, chosen.connection_config, auth, context)
        fields = connector.discover(records_path=records_path, limit=limit)
    except FactorySyncError as exc:
        raise type(exc)(redact(str(exc))) from None
    return {
        "source_id": source_id,
        "connection_name": chosen.connection_name,
        "records_path": records_path,
        "fields": [
            {"name": f.name, "kind": f.kind, "nullable": f.nullable, "samples": f.samples}
            for f in fields
        ],
    }
