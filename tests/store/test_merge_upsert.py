"""A merge with nothing to delete (incremental runs) is one upsert from staging on
PostgreSQL; on both stores it gives the same rows and exact counts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from factorysync.kinds import row_hash
from factorysync.store.store import Store
from factorysync.store.targets import TargetTable


def write(store: Store, rows: list[dict[str, object]], run_id: int) -> tuple[int, int]:
    with store.begin() as conn:
        table = TargetTable(conn, "counters", source_id="line-1", key=["machine"])
        table.stage(rows, [row_hash(r) for r in rows])
        counts = table.merge(run_id, datetime.now(UTC), delete_missing=None)
        table.drop_stage()
    return counts.inserted, counts.updated


def stored(store: Store) -> dict[str, tuple[object, ...]]:
    with store.connect() as conn:
        rows = conn.execute(text("SELECT machine, total, _run_id FROM counters")).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_incremental_merges_count_exactly_and_keep_the_last_row_of_a_key(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store.dialect == "postgresql":  # the upsert needs no diff (nor staging index)

        def diff_path(self: TargetTable) -> None:
            raise AssertionError("the merge took the diff path")

        monkeypatch.setattr(TargetTable, "prepare_merge", diff_path)
    assert write(store, [{"machine": "M1", "total": 1}, {"machine": "M2", "total": 2}], 1) == (
        2,
        0,
    )
    # M1 twice in one batch: the last wins; M2 unchanged; M3 new.
    batch = [
        {"machine": "M1", "total": 10},
        {"machine": "M2", "total": 2},
        {"machine": "M3", "total": 3},
        {"machine": "M1", "total": 11},
    ]
    assert write(store, batch, 2) == (1, 1)
    assert stored(store) == {"M1": (11, 2), "M2": (2, 1), "M3": (3, 2)}
    # Another source's row with the same key is not this source's to update.
    with store.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO counters (machine, total, _source_id, _run_id) "
                "VALUES ('M9', 9, 'line-2', 7)"
            )
        )
    assert write(store, [{"machine": "M9", "total": 90}], 3) == (1, 0)
    with store.connect() as conn:
        owners = conn.execute(
            text("SELECT _source_id, total FROM counters WHERE machine = 'M9' ORDER BY 1")
        ).all()
    assert [tuple(r) for r in owners] == [("line-1", 90), ("line-2", 9)]
