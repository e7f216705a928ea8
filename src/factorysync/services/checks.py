"""Checking a source's connections without reading data (``source test``, the API, the
console's test button)."""

from __future__ import annotations

import time
from typing import Any

from factorysync.errors import FactorySyncError
from factorysync.security.redaction import Redactor
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.store import Store


def test_source(store: Store, source_id: str) -> dict[str, Any]:
    """Check every connection of a source (no data is read); messages are redacted."""
    from factorysync.connectors.registry import open_connection

    with store.connect() as conn:
        decl = declaration_of(get_source(conn, source_id), store.box)
    redact = Redactor()
    for c in decl.connections:
        redact.add(c.authentication_config)
    checks = []
    for c in sorted(decl.connections, key=lambda c: not c.is_primary):
        clock = time.perf_counter()
        try:
            check = open_connection(c, source_id, store.settings, redact=redact).check()
            ok, message = True, check.message
        except Exception as exc:  # every failure is the answer, not an error of the request
            ok = False
            message = str(exc) if isinstance(exc, FactorySyncError | OSError) else repr(exc)
        checks.append(
            {
                "connection_name": c.connection_name,
                "ok": ok,
                "message": redact(message),
                "latency_ms": round((time.perf_counter() - clock) * 1000, 1),
            }
        )
    return {"source_id": source_id, "ok": all(c["ok"] for c in checks), "connections": checks}
