"""The unchanged-source marker counts the source's target tables (factorysync.store
.unchanged.target_counts), and vouches for none holding more rows than it counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from factorysync.engine.runner import Runner
from factorysync.engine.unchanged_mark import driver_query
from factorysync.store import unchanged
from factorysync.store.schema import data_source_sync_state as state_t
from factorysync.store.store import Store
from tests.conftest import write_json
from tests.engine.test_runner import json_source, machine_rows, register


def marker(store: Store, source_id: str) -> dict[str, Any] | None:
    with store.connect() as conn:
        found = conn.execute(
            select(state_t.c.state).where(
                state_t.c.source_id == source_id, state_t.c.state_key == unchanged.MARKER_KEY
            )
        ).scalar()
    return found if isinstance(found, dict) else None


def test_the_marker_holds_the_target_counts_up_to_the_limit(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(store, json_source("machines", write_json(data_dir / "m.json", machine_rows(5))))
    runner = Runner(store)
    assert runner.sync("machines").sync_status == "success"
    found = marker(store, "machines")
    assert found is not None and found["targets"] == {"machines": 5}

    # A table of more rows than are counted is not vouched for: the next run reads.
    monkeypatch.setattr(unchanged, "MAX_TARGET_ROWS", 4)
    assert runner.sync("machines").sync_status == "success"
    assert marker(store, "machines") is None
    with store.connect() as conn:
        rows = unchanged.source_rows(driver_query(conn), "machines")
        assert rows is not None
        assert unchanged.target_counts(driver_query(conn), rows) == {"machines": 5}  # 4 + 1
    monkeypatch.undo()
    assert runner.sync("machines").sync_status == "success"
    assert marker(store, "machines") is not None


def test_a_missing_target_table_cannot_be_counted(store: Store, data_dir: Path) -> None:
    register(store, json_source("gone", write_json(data_dir / "g.json", machine_rows(3))))
    runner = Runner(store)
    assert runner.sync("gone").sync_status == "success"
    assert marker(store, "gone") is not None
    with store.connect() as conn:
        rows = unchanged.source_rows(driver_query(conn), "gone")
        assert rows is not None
        rows["mappings"][0]["target_table"] = "no_such_table"
        with pytest.raises(Exception, match="no_such_table"):
            unchanged.target_counts(driver_query(conn), rows)
