"""A full re-sync's staging and merge: one COPY across the batches (PostgreSQL), no key
index when the staged keys ascend, and no write step the diff has no row for."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from factorysync.connectors.base import Batch, ReadRequest
from factorysync.engine.runner import Runner
from factorysync.store.open_copy import OpenCopy
from factorysync.store.store import Store
from tests.engine.test_columnar import ArrowSource, arrow_source, fail_reads, source
from tests.engine.test_runner import register, table_rows

__all__ = ["arrow_source"]  # the fixture, imported for the tests here


class Seen:
    """Statements run on the store (SQLAlchemy's and the COPYs opened across batches)."""

    def __init__(self) -> None:
        self.sql: list[str] = []
        self.copies: list[str] = []

    def count(self, pattern: str) -> int:
        return sum(1 for s in self.sql if re.search(pattern, s))


@pytest.fixture
def seen(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seen]:
    found = Seen()

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        found.sql.append(sql)

    real = OpenCopy.__init__

    def opened(self: OpenCopy, conn: Any, sql: str, **kwargs: Any) -> None:
        found.copies.append(sql)
        real(self, conn, sql, **kwargs)

    monkeypatch.setattr(OpenCopy, "__init__", opened)
    event.listen(store.engine, "before_cursor_execute", statement)
    yield found
    event.remove(store.engine, "before_cursor_execute", statement)


def records(ids: list[int], bump: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    return [{"id": i, "v": i * 10 + (1 if i in bump else 0), "name": f"n{i}"} for i in ids]


def values(store: Store, table: str) -> dict[int, int]:
    return {r["id"]: r["v"] for r in table_rows(store, table)}


@pytest.mark.parametrize("order", ["ascending", "shuffled"])
def test_a_full_resync_counts_exactly_in_key_order_or_not(
    store: Store, arrow_source: type[ArrowSource], seen: Seen, order: str
) -> None:
    """Updated, new and gone rows, staged in order (no index on PostgreSQL) or not (the
    index is built, and it also finds repeated keys): the same counts and rows."""
    register(store, source("resync", True, primary_key="id"))
    arrow_source.records = records(list(range(20)))
    assert Runner(store).sync("resync").records_inserted == 20
    ids = [i for i in range(3, 26) if i != 10]  # 0-2 and 10 gone, 20-25 new
    if order == "shuffled":
        ids = [*ids[::-1], 7]  # 7 twice: the last one read wins
    arrow_source.records = records(ids, bump=frozenset({4, 8, 12}))
    if order == "shuffled":
        arrow_source.records[-1]["v"] = 777
    seen.sql.clear()
    result = Runner(store).sync("resync")
    assert result.sync_status == "success", result.error_message
    updated = 4 if order == "shuffled" else 3
    assert (result.records_inserted, result.records_updated, result.records_deleted) == (
        6,
        updated,
        4,
    )
    expected = {i: i * 10 + (1 if i in (4, 8, 12) else 0) for i in ids}
    if order == "shuffled":
        expected[7] = 777
    assert values(store, "resync") == expected
    if store.dialect == "postgresql":
        indexed = seen.count(r"CREATE UNIQUE INDEX ON _fs_stage_resync")
        assert bool(indexed) == (order == "shuffled")


def test_an_unchanged_full_resync_writes_nothing(
    store: Store, arrow_source: type[ArrowSource], seen: Seen
) -> None:
    register(store, source("same", True, primary_key="id"))
    arrow_source.records = records(list(range(30)))
    Runner(store).sync("same")
    before = table_rows(store, "same")
    seen.sql.clear()
    result = Runner(store).sync("same")
    assert (result.records_inserted, result.records_updated, result.records_deleted) == (0, 0, 0)
    assert table_rows(store, "same") == before
    if store.dialect == "postgresql":
        # The diff is empty: no step that writes the target runs.
        writes = r"^\s*(UPDATE|INSERT INTO|DELETE FROM) same\b"
        assert seen.count(writes) == 0, [s for s in seen.sql if re.search(writes, s)]


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_full_resync_stages_every_batch_through_one_copy(
    store: Store, arrow_source: type[ArrowSource], seen: Seen
) -> None:
    register(store, source("copy", True, primary_key="id"))
    arrow_source.records = records(list(range(40)))  # 10 batches of 4
    Runner(store).sync("copy")
    seen.copies.clear()
    arrow_source.records = records(list(range(40)), bump=frozenset({5}))
    result = Runner(store).sync("copy")
    assert (result.records_inserted, result.records_updated) == (0, 1)
    assert len([c for c in seen.copies if "_fs_stage_copy" in c]) == 1, seen.copies


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_slow_source_commits_its_staging_now_and_then(
    store: Store, arrow_source: type[ArrowSource], seen: Seen, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past STAGE_TXN_S the staging transaction (and its COPY) is committed and begun
    again: here after every batch, with the same counts and rows."""
    from factorysync.engine import stage_txn

    register(store, source("slow", True, primary_key="id"))
    arrow_source.records = records(list(range(40)))
    Runner(store).sync("slow")
    monkeypatch.setattr(stage_txn, "STAGE_TXN_S", 0.0)
    seen.copies.clear()
    arrow_source.records = records(list(range(2, 42)), bump=frozenset({5, 17}))
    result = Runner(store).sync("slow")
    assert (result.records_inserted, result.records_updated, result.records_deleted) == (2, 2, 2)
    assert len([c for c in seen.copies if "_fs_stage_slow" in c]) == 10, seen.copies
    assert values(store, "slow") == {i: i * 10 + (1 if i in (5, 17) else 0) for i in range(2, 42)}


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_full_resync_failing_midway_changes_nothing(
    store: Store, arrow_source: type[ArrowSource], monkeypatch: pytest.MonkeyPatch
) -> None:
    register(store, source("midway", True, primary_key="id"))
    arrow_source.records = records(list(range(12)))
    Runner(store).sync("midway")
    before = table_rows(store, "midway")
    arrow_source.records = records(list(range(1, 13)), bump=frozenset({3}))
    real = fail_reads(monkeypatch, "cable pulled")
    failed = Runner(store).sync("midway")
    assert failed.sync_status == "failed"
    assert "cable pulled" in (failed.error_message or "")
    assert table_rows(store, "midway") == before
    monkeypatch.setattr(ArrowSource, "read", real)
    again = Runner(store).sync("midway")
    assert (again.records_inserted, again.records_updated, again.records_deleted) == (1, 1, 1)


@pytest.mark.parametrize("batch_size", [4, 100])
def test_a_full_resync_on_the_row_path_keeps_the_last_row_of_a_key(
    store: Store,
    arrow_source: type[ArrowSource],
    seen: Seen,
    monkeypatch: pytest.MonkeyPatch,
    batch_size: int,
) -> None:
    """Rows staged one by one are not followed for order: their repeated keys are found
    (PostgreSQL builds the index), whatever order they came in, in one batch or more."""
    monkeypatch.setattr(ArrowSource, "batch_size", batch_size)
    register(store, source("rows", False, primary_key="id"))
    arrow_source.records = records(list(range(8)))
    Runner(store).sync("rows")
    arrow_source.records = [*records(list(range(8))), {"id": 9, "v": 1, "name": "x"}]
    arrow_source.records.append({"id": 9, "v": 2, "name": "y"})  # ascending, then 9 again
    seen.sql.clear()
    result = Runner(store).sync("rows")
    assert result.sync_status == "success", result.error_message
    assert (result.records_inserted, result.records_updated, result.records_deleted) == (1, 0, 0)
    assert values(store, "rows")[9] == 2
    if store.dialect == "postgresql":
        assert seen.count(r"CREATE UNIQUE INDEX ON _fs_stage_rows")


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("tail", ["arrow", "rows"])
def test_a_first_load_into_a_shared_table_with_a_repeated_key_loads_again_through_staging(
    store: Store, arrow_source: type[ArrowSource], monkeypatch: pytest.MonkeyPatch, tail: str
) -> None:
    """The table (another source's) has its key index: the COPY of the first load fails
    on a key read twice, the error surfaces when the COPY ends (at the end of the load, or
    before a batch that must go row by row), and the run loads again through staging."""
    from factorysync.connectors.base import Batch

    register(store, source("one", True, primary_key="id"))
    one = source("two", True, primary_key="id")
    one["mappings"][0]["target_table"] = "one"
    register(store, one)
    arrow_source.records = records([1, 2, 3])
    assert Runner(store).sync("one").records_inserted == 3
    arrow_source.records = records([1, 2, 3, 4, 2, 5])  # 2 again in the second batch
    if tail == "rows":
        real = ArrowSource.read

        def then_rows(self: ArrowSource, request: ReadRequest) -> Iterator[Batch]:
            yield from real(self, request)
            yield Batch([{"id": 6, "v": 60, "name": "n6"}])  # no Arrow: the row path

        monkeypatch.setattr(ArrowSource, "read", then_rows)
    result = Runner(store).sync("two")
    assert result.sync_status == "success", result.error_message
    inserted = 6 if tail == "rows" else 5
    assert result.records_inserted == inserted
    with store.connect() as conn:
        from sqlalchemy import text

        found = conn.execute(text("SELECT id, v FROM one WHERE _source_id = 'two'")).all()
    assert {i: v for i, v in found}[2] == 20 and len(found) == inserted
