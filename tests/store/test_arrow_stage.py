"""A SQLite store's first load through an Arrow stage file (store/arrow_stage.py): the
same rows and storage types as binding the values, nothing left behind, errors reported."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from factorysync.connectors import registry as connector_registry
from factorysync.engine.runner import Runner
from factorysync.store import arrow_stage
from factorysync.store.store import Store
from tests.engine.test_columnar import ArrowSource, source
from tests.engine.test_runner import register


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the stage is how a SQLite store takes a first load


@pytest.fixture
def arrow_source(monkeypatch: pytest.MonkeyPatch) -> type[ArrowSource]:
    monkeypatch.setitem(
        connector_registry.BUILTIN, "command", f"{ArrowSource.__module__}:ArrowSource"
    )
    return ArrowSource


@pytest.fixture
def copied(monkeypatch: pytest.MonkeyPatch) -> list[arrow_stage.ArrowStage]:
    """The stages copied into the store, in order."""
    stages: list[arrow_stage.ArrowStage] = []
    real_copy = arrow_stage.ArrowStage.copy_into

    def copy(self: arrow_stage.ArrowStage, conn: Any) -> int:
        stages.append(self)
        return real_copy(self, conn)

    monkeypatch.setattr(arrow_stage.ArrowStage, "copy_into", copy)
    return stages


def segments(stages: list[arrow_stage.ArrowStage]) -> list[int]:
    return [len(stage.segments) for stage in stages]


def plant_records(n: int) -> list[dict[str, Any]]:
    base = datetime(2026, 3, 1, 6, tzinfo=UTC)
    notes = ['12" flange, "checked"', "line\nbreak", "Prüfung ok", "", None, "a;b,c"]
    return [
        {
            "id": i,
            "qty": None if i % 9 == 0 else i * 7,
            "temp": None if i % 5 == 0 else i / 8,
            "ok": None if i % 11 == 0 else i % 2 == 0,
            "note": notes[i % len(notes)],
            "at": base + timedelta(seconds=i * 37),
            "day": date(2026, 3, 1 + i % 28),
            "price": Decimal(f"{i}.{i % 100:02d}"),
        }
        for i in range(n)
    ]


def stored(store: Store, table: str) -> list[tuple[Any, ...]]:
    """Every column's value and SQLite storage type, provenance aside, by id."""
    with store.engine.connect() as conn:
        cols = [
            r[1]
            for r in conn.execute(text(f'PRAGMA table_info("{table}")'))
            if r[1] not in {"_source_id", "_run_id", "_synced_at", "_row_hash"}
        ]
        picks = ", ".join(f'typeof("{c}"), "{c}"' for c in cols)
        return [tuple(r) for r in conn.execute(text(f'SELECT {picks} FROM "{table}" ORDER BY id'))]


def stage_files(store: Store) -> list[Path]:
    database = Path(str(store.engine.url.database))
    return sorted(database.parent.glob(f"{database.name}.stage-*"))


def test_the_stage_stores_what_bound_values_would(
    store: Store,
    arrow_source: type[ArrowSource],
    monkeypatch: pytest.MonkeyPatch,
    copied: list[arrow_stage.ArrowStage],
) -> None:
    """Integers, decimals, floats, booleans, text with quotes and line breaks, times,
    dates and empty values: the same values and storage types either way."""
    monkeypatch.setattr(arrow_source, "batch_size", 50)
    register(
        store, source("staged", True, primary_key="id"), source("bound", True, primary_key="id")
    )
    arrow_source.records = plant_records(400)
    staged = Runner(store).sync("staged")
    assert staged.sync_status == "success", staged.error_message
    assert segments(copied) == [1]  # the stage took the load: one table, every batch alike
    monkeypatch.setattr(arrow_stage, "available", lambda database: False)
    bound = Runner(store).sync("bound")
    assert bound.sync_status == "success", bound.error_message
    assert segments(copied) == [1]
    assert staged.records_inserted == bound.records_inserted == 400
    got, want = stored(store, "staged"), stored(store, "bound")
    assert len(got) == 400
    assert got == want
    assert ("text", "line\nbreak") in [row[8:10] for row in got]
    assert stage_files(store) == []


def test_batches_that_change_their_columns_go_to_tables_of_their_own(
    store: Store,
    arrow_source: type[ArrowSource],
    monkeypatch: pytest.MonkeyPatch,
    copied: list[arrow_stage.ArrowStage],
) -> None:
    """A column empty in the first batch, a count that turns decimal, a column that
    appears later: every row arrives, as the bound path stores it."""
    records: list[dict[str, Any]] = [{"id": i, "n": i, "late": None} for i in range(4)]
    records += [{"id": i, "n": i + 0.5, "late": f"x{i}"} for i in range(4, 8)]
    records += [{"id": i, "n": i, "late": "y", "extra": i * 2} for i in range(8, 12)]
    register(
        store, source("shifting", True, primary_key="id"), source("ref", True, primary_key="id")
    )
    arrow_source.records = records
    result = Runner(store).sync("shifting")
    assert result.sync_status == "success", result.error_message
    assert result.records_inserted == 12
    assert copied and segments(copied)[0] >= 2
    monkeypatch.setattr(arrow_stage, "available", lambda database: False)
    assert Runner(store).sync("ref").sync_status == "success"
    assert stored(store, "shifting") == stored(store, "ref")
    assert stage_files(store) == []


def test_no_stage_file_is_left_by_a_reload_or_a_failure(
    store: Store, arrow_source: type[ArrowSource], monkeypatch: pytest.MonkeyPatch
) -> None:
    from factorysync.connectors.base import ReadRequest

    register(
        store, source("dupes", True, primary_key="id"), source("broken", True, primary_key="id")
    )
    # A repeated key: the bulk load is rolled back and the run loads through staging.
    arrow_source.records = [{"id": i % 6, "v": i} for i in range(10)]
    result = Runner(store).sync("dupes")
    assert (result.sync_status, result.records_inserted) == ("success", 6)
    assert stage_files(store) == []

    real = ArrowSource.read

    def read_then_fail(self: ArrowSource, request: ReadRequest) -> Any:
        for n, batch in enumerate(real(self, request)):
            if n == 2:
                raise OSError("the share went away")
            yield batch

    monkeypatch.setattr(ArrowSource, "read", read_then_fail)
    arrow_source.records = [{"id": i} for i in range(12)]
    failed = Runner(store).sync("broken")
    assert failed.sync_status == "failed"
    assert "the share went away" in (failed.error_message or "")
    assert stage_files(store) == []
    with store.engine.connect() as conn:
        assert not conn.execute(text("SELECT name FROM sqlite_master WHERE name='broken'")).all()


def test_a_writer_that_fails_fails_its_run_only(
    store: Store, arrow_source: type[ArrowSource], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver cannot write its file (a full disk, say): the run fails with the
    driver's reason, nothing is stored, and the next run loads everything."""
    import adbc_driver_sqlite.dbapi as adbc

    real_connect = adbc.connect

    def full_disk(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(adbc, "connect", full_disk)
    register(store, source("load", True, primary_key="id"))
    arrow_source.records = [{"id": i, "v": f"v{i}"} for i in range(30)]
    failed = Runner(store).sync("load")
    assert failed.sync_status == "failed"
    assert "No space left on device" in (failed.error_message or "")
    assert stage_files(store) == []
    with store.engine.connect() as conn:
        assert not conn.execute(text("SELECT name FROM sqlite_master WHERE name='load'")).all()
    monkeypatch.setattr(adbc, "connect", real_connect)
    again = Runner(store).sync("load")
    assert (again.sync_status, again.records_inserted) == ("success", 30)


def test_files_of_a_process_that_died_are_swept(tmp_path: Path) -> None:
    database = tmp_path / "store.db"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = tmp_path / f"store.db.stage-{gone.stdout.strip()}-0a1b2c"
    alive = tmp_path / f"store.db.stage-{__import__('os').getpid()}-0a1b2c"
    other = tmp_path / "other.db.stage-1-0a1b2c"
    for path in (dead, alive, other):
        path.write_bytes(b"")
    arrow_stage.sweep(str(database))
    assert not dead.exists()
    assert alive.exists() and other.exists()


def test_a_full_resync_stages_in_c_and_merges_as_bound_rows_do(
    store: Store,
    arrow_source: type[ArrowSource],
    monkeypatch: pytest.MonkeyPatch,
    copied: list[arrow_stage.ArrowStage],
) -> None:
    """The second sync of a full source stages through the file too: inserts, updates
    and deletes counted as the bound path counts them, the same rows after."""
    monkeypatch.setattr(arrow_source, "batch_size", 40)
    register(
        store, source("staged", True, primary_key="id"), source("bound", True, primary_key="id")
    )
    first, second = plant_records(300), plant_records(330)[20:]
    for row in second[:50]:
        row["note"], row["qty"] = "changed", -1
    results = {}
    for sid in ("staged", "bound"):
        if sid == "bound":
            monkeypatch.setattr(arrow_stage, "available", lambda database: False)
        arrow_source.records = first
        assert Runner(store).sync(sid).sync_status == "success"
        arrow_source.records = second
        results[sid] = Runner(store).sync(sid)
    assert [stage.table for stage in copied] == [
        "staged",
        "_fs_stage_staged",
    ]  # the first load, then the re-sync
    counts = {
        sid: (r.sync_status, r.records_inserted, r.records_updated, r.records_deleted)
        for sid, r in results.items()
    }
    assert counts["staged"] == counts["bound"] == ("success", 30, 50, 20)
    assert stored(store, "staged") == stored(store, "bound")
    assert stage_files(store) == []


@pytest.mark.parametrize("loads", [1, 2], ids=["first-load", "resync"])
def test_a_batch_on_the_row_path_still_wins_over_earlier_batches(
    store: Store, arrow_source: type[ArrowSource], monkeypatch: pytest.MonkeyPatch, loads: int
) -> None:
    """A later batch the columnar path cannot take (a nested value) goes row by row; a key
    it repeats from an earlier batch, still on its way in C, keeps the later row."""
    monkeypatch.setattr(arrow_source, "batch_size", 4)
    register(store, source("mixed", True, primary_key="id"))
    plain = [{"id": i, "v": f"first {i}"} for i in range(8)]
    nested = [{"id": i, "v": f"later {i}", "extra": {"n": i}} for i in (1, 6, 8, 9)]
    for n in range(loads):
        arrow_source.records = plain if n < loads - 1 else plain + nested
        result = Runner(store).sync("mixed")
        assert result.sync_status == "success", result.error_message
    with store.engine.connect() as conn:
        rows = dict(conn.execute(text('SELECT id, v FROM "mixed" ORDER BY id')).all())
    assert rows == {
        **{i: f"first {i}" for i in range(8)},
        **{i: f"later {i}" for i in (1, 6, 8, 9)},
    }
    assert stage_files(store) == []


@pytest.mark.parametrize(
    ("batches", "ascending"),
    [
        ([[1, 2, 3], [4, 9], [10]], True),
        ([["A-01", "A-02"], ["B-01", "Ä-01"]], True),  # binary order, as SQLite's
        ([[1, 2, 3], [3, 4]], False),  # a key repeated across batches
        ([[1, 3, 2]], False),
        ([[1, 2], [2.5, 3.0]], True),
        ([[1, 2], ["3"]], False),  # a number and a text: not comparable
    ],
)
def test_the_stage_follows_whether_keys_ascend(
    tmp_path: Path, batches: list[list[Any]], ascending: bool
) -> None:
    import pyarrow as pa

    stage = arrow_stage.ArrowStage(str(tmp_path / "s.db"), '"t"', lambda n: f'"{n}"', {})
    try:
        for values in batches:
            stage.put(["id"], [pa.array(values)], keys=pa.array(values))
        assert stage.ascending is ascending
    finally:
        stage.discard()
    assert not list(tmp_path.glob("s.db.stage-*"))


@pytest.mark.parametrize("shuffled", [False, True], ids=["ascending", "shuffled"])
def test_a_first_load_in_key_order_builds_its_indexes_first(
    store: Store, arrow_source: type[ArrowSource], monkeypatch: pytest.MonkeyPatch, shuffled: bool
) -> None:
    """Keys in ascending order: the new table's indexes exist before the rows go in (they
    are appended); otherwise they are built after. The rows and indexes are the same."""
    import random

    from factorysync.store.targets.evolution import EvolvingTarget

    steps: list[str] = []
    real_copy, real_build = arrow_stage.ArrowStage.copy_into, EvolvingTarget._build_pending_indexes

    def copy(self: arrow_stage.ArrowStage, conn: Any) -> int:
        steps.append("copy")
        return real_copy(self, conn)

    def build(self: EvolvingTarget) -> None:
        if self._indexes_pending:
            steps.append("indexes")
        real_build(self)

    monkeypatch.setattr(arrow_stage.ArrowStage, "copy_into", copy)
    monkeypatch.setattr(EvolvingTarget, "_build_pending_indexes", build)
    monkeypatch.setattr(arrow_source, "batch_size", 25)
    records = plant_records(200)
    if shuffled:
        random.Random(7).shuffle(records)
    register(store, source("ordered", True, primary_key="id"))
    arrow_source.records = records
    result = Runner(store).sync("ordered")
    assert (result.sync_status, result.records_inserted) == ("success", 200)
    assert steps == (["copy", "indexes"] if shuffled else ["indexes", "copy"])
    with store.engine.connect() as conn:
        indexes = {r[1] for r in conn.execute(text('PRAGMA index_list("ordered")'))}
        assert conn.execute(text('SELECT count(DISTINCT id) FROM "ordered"')).scalar() == 200
    assert {"ux_ordered_key", "ix_ordered_synced"} <= indexes


def test_without_a_stage_file_the_values_are_bound(
    store: Store, arrow_source: type[ArrowSource], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No file can be made beside the store (a read-only folder, say): the first load
    binds its values instead, and nothing is lost."""
    from factorysync.store import db

    def refused(path: Path) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(db, "create_private_file", refused)
    register(store, source("bound", True, primary_key="id"))
    arrow_source.records = plant_records(120)
    result = Runner(store).sync("bound")
    assert (result.sync_status, result.records_inserted) == ("success", 120)
    assert len(stored(store, "bound")) == 120
