"""The columnar path gives the same rows and counts as the row path (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from factorysync.connectors import registry as connector_registry
from factorysync.connectors.base import Batch, Connector, ReadRequest
from factorysync.connectors.file import FileConfig
from factorysync.engine.runner import Runner
from factorysync.store.store import Store
from tests.engine.test_runner import json_source, register, table_rows


class ArrowSource(Connector):
    """Serves ``records`` in batches: as Arrow when the engine asks, else as rows."""

    type_name = "arrowtest"
    config_model = FileConfig
    columnar = True
    records: ClassVar[list[dict[str, Any]]] = []
    batch_size: ClassVar[int] = 4
    served_arrow: ClassVar[int] = 0

    def _check(self) -> str:
        return "ok"

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        rows = ArrowSource.records
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            if request.columnar:
                ArrowSource.served_arrow += 1
                yield Batch([], arrow=pa.RecordBatch.from_pylist(chunk))
            else:
                yield Batch(chunk)


@pytest.fixture
def arrow_source(monkeypatch: pytest.MonkeyPatch) -> type[ArrowSource]:
    monkeypatch.setitem(connector_registry.BUILTIN, "command", f"{__name__}:ArrowSource")
    ArrowSource.served_arrow = 0
    return ArrowSource


def source(sid: str, columnar: bool, **mapping: Any) -> dict[str, Any]:
    src = json_source(sid, Path("unused"), **mapping)
    src["source_type"] = "command"
    src["connections"][0]["connection_type"] = "command"
    if not columnar:  # a validation rule that never fails forces the row path
        src["mappings"][0]["mapping_config"].setdefault("validate", []).append(
            {"field": "qty", "rule": "min", "value": -1e18}
        )
    return src


def machine_records(n: int, bump: int = 0) -> list[dict[str, Any]]:
    from datetime import UTC, datetime, timedelta

    base = datetime(2026, 1, 5, tzinfo=UTC)
    return [
        {
            "machineId": f"M{i:02d}",
            "ts": base + timedelta(minutes=i),
            "qty": i * 3 + (bump if i % 5 == 0 else 0),
            "temp": None if i % 7 == 0 else i / 4,
            "ok": i % 2 == 0,
            "line": f"L{i % 3}",
        }
        for i in range(n)
    ]


def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    drop = {"_source_id", "_run_id", "_synced_at", "_row_hash"}
    return sorted(
        ({k: v for k, v in r.items() if k not in drop} for r in rows),
        key=lambda r: r["machine_id"],
    )


@pytest.mark.parametrize("strategy", ["full", "incremental"])
def test_columnar_equals_row_path(
    store: Store, arrow_source: type[ArrowSource], strategy: str
) -> None:
    extra = (
        {"cursor_field": "ts", "sync_strategy": "incremental"} if strategy == "incremental" else {}
    )
    register(
        store,
        source("fast", True, primary_key="machine_id", **extra),
        source("slow", False, primary_key="machine_id", **extra),
    )
    runner = Runner(store)
    history = []
    for step, records in enumerate(
        [
            machine_records(20),
            machine_records(20),
            machine_records(23, bump=1),
            machine_records(18, bump=1),
        ]
    ):
        arrow_source.records = records
        fast, slow = runner.sync("fast"), runner.sync("slow")
        assert fast.sync_status == slow.sync_status == "success", (fast.error_message, slow)
        counts = [
            (r.records_processed, r.records_inserted, r.records_updated, r.records_deleted)
            for r in (fast, slow)
        ]
        assert counts[0] == counts[1], (step, counts)
        history.append(counts[0])
        assert strip(table_rows(store, "fast")) == strip(table_rows(store, "slow"))
    assert arrow_source.served_arrow > 0
    if strategy == "full":
        assert history == [(20, 20, 0, 0), (20, 0, 0, 0), (23, 3, 4, 0), (18, 0, 0, 5)]


def test_a_batch_that_does_not_fit_falls_back(
    store: Store, arrow_source: type[ArrowSource]
) -> None:
    register(
        store,
        source(
            "mixed",
            True,
            primary_key="id",
            fields={"id": "id", "qty": {"from": "qty", "type": "integer"}},
        ),
    )
    arrow_source.records = [{"id": i, "qty": str(i)} for i in range(4)] + [{"id": 9, "qty": "nine"}]
    result = Runner(store).sync("mixed")
    # The first batch casts column-wise; the second has a bad value, is mapped row by row,
    # and the bad row is quarantined with its reason.
    assert (result.records_processed, result.records_inserted, result.records_rejected) == (5, 4, 1)
    from factorysync import services

    (bad,) = services.quarantined(store, "mixed")
    assert bad["reasons"] == ["qty: cannot convert 'nine' to integer: not an integer"]


def test_first_load_with_a_repeated_key(store: Store, arrow_source: type[ArrowSource]) -> None:
    """A key repeated in the source breaks the bulk first load on PostgreSQL; the run then
    loads through staging, where the last row wins, and counts stay exact."""
    register(store, source("dupes", True, primary_key="id"))
    arrow_source.records = [{"id": i % 6, "v": i} for i in range(10)]
    result = Runner(store).sync("dupes")
    assert result.sync_status == "success", result.error_message
    assert (result.records_processed, result.records_inserted) == (10, 6)
    rows = {r["id"]: r["v"] for r in table_rows(store, "dupes")}
    assert rows == {0: 6, 1: 7, 2: 8, 3: 9, 4: 4, 5: 5}
    again = Runner(store).sync("dupes")
    assert (again.records_inserted, again.records_updated, again.records_deleted) == (0, 0, 0)


def fail_reads(monkeypatch: pytest.MonkeyPatch, reason: str, after: int = 2) -> Any:
    """ArrowSource reads ``after`` batches, then fails with ``reason``; returns the real
    ``read``, to put back."""
    from factorysync.errors import ConnectorFatal

    real = ArrowSource.read

    def read_then_fail(self: ArrowSource, request: ReadRequest) -> Iterator[Batch]:
        for n, batch in enumerate(real(self, request)):
            if n == after:
                raise ConnectorFatal(reason)
            yield batch

    monkeypatch.setattr(ArrowSource, "read", read_then_fail)
    return real


def test_first_load_failing_midway_leaves_nothing(
    store: Store, arrow_source: type[ArrowSource], monkeypatch: pytest.MonkeyPatch
) -> None:
    register(store, source("broken", True, primary_key="id"))
    arrow_source.records = [{"id": i} for i in range(12)]
    fail_reads(monkeypatch, "disk unplugged")
    assert Runner(store).sync("broken").sync_status == "failed"
    from sqlalchemy import inspect

    with store.connect() as conn:
        assert not inspect(conn).has_table("broken") or table_rows(store, "broken") == []


def many_records(n: int, bump: int = 0) -> list[dict[str, Any]]:
    """Enough rows for several multi-row INSERT statements, with nulls in every type."""
    from datetime import UTC, datetime, timedelta

    base = datetime(2026, 1, 5, tzinfo=UTC)
    return [
        {
            "id": i,
            "qty": None if i % 11 == 0 else i * 3 + (bump if i % 9 == 0 else 0),
            "temp": None if i % 7 == 0 else i / 4,
            "ok": None if i % 13 == 0 else i % 2 == 0,
            "line": None if i % 17 == 0 else f"L{i % 3}",
            "ts": base + timedelta(seconds=i),
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("rows_per_insert", [7, 1000])
def test_multi_row_inserts_equal_row_path(
    store: Store,
    arrow_source: type[ArrowSource],
    monkeypatch: pytest.MonkeyPatch,
    rows_per_insert: int,
) -> None:
    """SQLite takes Arrow batches as multi-row INSERTs: whole statements, a rest, slices
    and the bound-parameter limit give the same rows as the row path."""
    from sqlite3 import SQLITE_LIMIT_VARIABLE_NUMBER

    from sqlalchemy import event

    from factorysync.store import bulk

    monkeypatch.setattr(bulk, "SQLITE_ROWS_PER_INSERT", rows_per_insert)
    monkeypatch.setattr(bulk, "SQLITE_SLICE_ROWS", 50)
    monkeypatch.setattr(arrow_source, "batch_size", 333)
    if store.engine.dialect.name == "sqlite":
        # 20 parameters a statement: at most three rows of six values
        def low_limit(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.setlimit(SQLITE_LIMIT_VARIABLE_NUMBER, 20)

        store.engine.dispose()
        event.listen(store.engine, "connect", low_limit)
    register(
        store,
        source("fast", True, primary_key="id"),
        source("slow", False, primary_key="id"),
    )
    runner = Runner(store)
    for step, records in enumerate([many_records(1000), many_records(1001, bump=1)]):
        arrow_source.records = records
        fast, slow = runner.sync("fast"), runner.sync("slow")
        assert fast.sync_status == slow.sync_status == "success", (fast.error_message, slow)
        assert (fast.records_inserted, fast.records_updated) == (
            slow.records_inserted,
            slow.records_updated,
        )
        assert fast.records_inserted == (1000 if step == 0 else 1), fast
        got, want = table_rows(store, "fast"), table_rows(store, "slow")
        assert len(got) == len(records)
        key = {"_source_id", "_run_id", "_synced_at", "_row_hash"}
        assert sorted(({k: v for k, v in r.items() if k not in key} for r in got), key=str) == (
            sorted(({k: v for k, v in r.items() if k not in key} for r in want), key=str)
        )
    assert arrow_source.served_arrow > 0


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([None, None, "2026-01-05T06:00:00+07:00", "2026-01-05 07:30Z"], pa.timestamp("us", "UTC")),
        (["2026-01-05", None, "2026-02-28"], pa.date32()),
        (["2026-01-05", "2026-01-06", "soon"], pa.string()),
        (["soon", "2026-01-05", "2026-01-06"], pa.string()),
        ([None, "2026-01-05\n", "2026-01-06"], pa.string()),
        (["M-01", "M-02"], pa.string()),
        ([None, None], pa.string()),
    ],
)
def test_text_columns_become_dates_only_when_every_value_is_one(
    values: list[str | None], expected: pa.DataType
) -> None:
    from factorysync.engine.columnar import _typed_text

    assert _typed_text(pa.array(values, pa.string())).type == expected
