"""Property: after any sequence of source changes and syncs, the target equals the source
and the history counts add up to the changes (full and incremental, SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect

from factorysync.engine.runner import Runner
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.conftest import write_json
from tests.engine.test_runner import json_source, register

_ids = itertools.count()
KEYS = st.integers(min_value=0, max_value=30)
# One step: a list of changes, then a sync. A change is (op, key, value).
CHANGE = st.tuples(st.sampled_from(["upsert", "delete"]), KEYS, st.integers(0, 3))
STEPS = st.lists(st.lists(CHANGE, max_size=12), min_size=1, max_size=6)
# No deadline and no "too slow" health check: both measure this machine's speed, and
# what is under test is the synced state, however long each example takes.
SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def target_state(store: Store, table: str) -> dict[int, tuple[int, int]]:
    """Target rows by key (a table is only created once it has had rows)."""
    with store.connect() as conn:
        if not inspect(conn).has_table(table):
            return {}
        return {r["id"]: (r["value"], r["ts"]) for r in read_rows(conn, table)}


@SETTINGS
@given(steps=STEPS)
def test_full_sync_mirrors_source(
    store: Store, data_dir: Path, steps: list[list[tuple[str, int, int]]]
) -> None:
    sid = f"prop_full_{next(_ids)}"
    path = data_dir / f"{sid}.json"
    source: dict[int, tuple[int, int]] = {}
    write_json(path, [])
    register(
        store,
        json_source(sid, path, primary_key="id", fields={"id": "id", "value": "value", "ts": "ts"}),
    )
    runner = Runner(store)
    for step, changes in enumerate(steps):
        before = dict(source)
        for op, key, value in changes:
            if op == "upsert":
                source[key] = (value, step)
            else:
                source.pop(key, None)
        write_json(path, [{"id": k, "value": v, "ts": t} for k, (v, t) in source.items()])
        result = runner.sync(sid)
        assert result.sync_status == "success", result.error_message
        assert target_state(store, sid) == source
        assert result.records_inserted == len(source.keys() - before.keys())
        assert result.records_deleted == len(before.keys() - source.keys())
        assert result.records_updated == sum(
            1 for k in source.keys() & before.keys() if source[k] != before[k]
        )


@SETTINGS
@given(steps=STEPS)
def test_incremental_sync_mirrors_source(
    store: Store, data_dir: Path, steps: list[list[tuple[str, int, int]]]
) -> None:
    """Incremental never deletes: a 'delete' drops the row from the file only, and the
    target keeps the last version it saw. Updates carry the newer cursor."""
    sid = f"prop_inc_{next(_ids)}"
    path = data_dir / f"{sid}.json"
    source: dict[int, tuple[int, int]] = {}
    seen: dict[int, tuple[int, int]] = {}
    write_json(path, [])
    register(
        store,
        json_source(
            sid,
            path,
            primary_key="id",
            cursor_field="ts",
            sync_strategy="incremental",
            fields={"id": "id", "value": "value", "ts": "ts"},
        ),
    )
    runner = Runner(store)
    for step, changes in enumerate(steps):
        before = dict(seen)
        for op, key, value in changes:
            if op == "upsert":
                source[key] = (value, step)
            else:
                source.pop(key, None)
        write_json(path, [{"id": k, "value": v, "ts": t} for k, (v, t) in source.items()])
        result = runner.sync(sid)
        assert result.sync_status == "success", result.error_message
        newest = max((t for _, t in source.values()), default=None)
        for key, row in source.items():
            if key not in seen or row[1] >= (max(t for _, t in seen.values()) if seen else -1):
                seen[key] = row
        if newest is None:
            seen = dict(before)
        assert target_state(store, sid) == seen
        assert result.records_deleted == 0
        assert result.records_inserted == len(seen.keys() - before.keys())
        assert result.records_updated == sum(
            1 for k in seen.keys() & before.keys() if seen[k] != before[k]
        )
