"""``data_version``: what a cached answer of a target table is checked against — its
sources' data versions and the central ingest's messages, summed in one statement."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert, update

from factorysync.engine.runner import Runner
from factorysync.store.registry import data_version
from factorysync.store.schema import central_sites
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.store import Store
from tests.conftest import write_json
from tests.engine.test_runner import json_source, register


def test_sources_and_forwarded_messages_count(store: Store, data_dir: Path) -> None:
    with store.connect() as conn:
        assert data_version(conn, "production") == (0, 0)  # nobody writes it yet

    for sid in ("line1", "line2"):
        path = data_dir / f"{sid}.json"
        write_json(path, [{"id": 1, "qty": 5}])
        source = json_source(sid, path, primary_key="id")
        source["mappings"][0]["target_table"] = "production"
        register(store, source)
    with store.connect() as conn:
        start = data_version(conn, "production")
    assert start[1] == 2

    assert Runner(store).sync("line1").sync_status == "success"
    with store.connect() as conn:
        synced = data_version(conn, "production")
    assert synced[0] > start[0] and synced[1] == 2

    with store.begin() as conn:  # a central store's ingest applies messages to it too
        conn.execute(
            insert(central_sites).values(
                site="plant-a", table_name="production", messages_applied=7
            )
        )
        conn.execute(
            insert(central_sites).values(site="plant-b", table_name="other", messages_applied=99)
        )
        conn.execute(update(reg_t).where(reg_t.c.source_id == "line2").values(data_version=40))
    with store.connect() as conn:
        line1 = synced[0] - start[0]
        assert data_version(conn, "production") == (start[0] + line1 + 40 + 7, 3)
        assert data_version(conn, "other") == (99, 1)
