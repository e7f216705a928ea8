"""What the plant-side forwarding tests share: a store that forwards, JSON sources synced
for real, and the outbox read back as the publisher would send it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from factorysync import services
from factorysync.engine.runner import Runner
from factorysync.forward.outbox import Outbox, Work, to_json
from factorysync.intake import parse_sources
from factorysync.settings import Settings, reset_settings
from factorysync.store.registry_save import apply_declarations
from factorysync.store.schema import forward_outbox
from factorysync.store.store import Store
from tests.conftest import write_json

# Credentials the tests look for in logs, status and errors (a server without
# authorisation takes any).
PASSWORD = "s3cret-Uplink-pw"


@contextmanager
def forwarding_store(
    monkeypatch: pytest.MonkeyPatch, url: str, tables: str = "*"
) -> Iterator[Store]:
    """The test's store (the ``env`` fixture's) with forwarding set in the environment."""
    monkeypatch.setenv("FACTORYSYNC_FORWARD_URL", url)
    monkeypatch.setenv("FACTORYSYNC_FORWARD_TABLES", tables)
    monkeypatch.setenv("FACTORYSYNC_SITE", "plant-a")
    reset_settings()
    store = Store(Settings())
    services.init_store(store)
    try:
        yield store
    finally:
        store.dispose()
        reset_settings()


def machines(n: int, *, qty: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "machine": f"M-{i:03d}",
            "qty": i * 10 + qty,
            "oee": round(0.5 + i / 1000, 3),
            "running": i % 3 != 0,
            "ts": f"2026-01-05T{i % 24:02d}:00:00+07:00",
        }
        for i in range(n)
    ]


def json_source(
    source_id: str, path: Path, table: str, strategy: str = "full", **mapping: Any
) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": source_id,
        "source_type": "json",
        "refresh_interval": 60,
        "connections": [{"connection_config": {"file_path": str(path)}}],
        "mappings": [
            {
                "target_table": table,
                "sync_strategy": strategy,
                "mapping_config": {"primary_key": ["machine"], **mapping},
            }
        ],
    }


def register(store: Store, *sources: dict[str, Any]) -> None:
    with store.begin() as conn:
        apply_declarations(conn, parse_sources({"sources": list(sources)}), store.box)


def sync(store: Store, source_id: str, path: Path, rows: list[dict[str, Any]]) -> Any:
    write_json(path, rows)
    result = Runner(store).sync(source_id)
    assert result.sync_status == "success", result.error_message
    return result


def entries(store: Store) -> list[tuple[str, str, str]]:
    """(table, source, op) of every outbox entry, in order."""
    with store.connect() as conn:
        found = conn.execute(
            select(
                forward_outbox.c.table_name, forward_outbox.c.source_id, forward_outbox.c.op
            ).order_by(forward_outbox.c.seq)
        ).all()
    return [tuple(r) for r in found]  # type: ignore[misc]


def sent(store: Store) -> list[tuple[Work, list[dict[str, Any]]]]:
    """Each work item of the outbox with the rows (as dicts) it would send now."""
    outbox = Outbox(store)
    found = []
    for work in outbox.take(10_000):
        rows: list[dict[str, Any]] = []
        for shape, batch in outbox.batches(work):
            names = shape.key if work.op == "delete" else list(shape.kinds)
            as_sent = orjson.loads(to_json(batch))
            rows += [dict(zip(names, row, strict=True)) for row in as_sent]
        found.append((work, rows))
    return found
