"""The micro-batch writer's merge: exact counts and the latest state per key, on both
stores. On PostgreSQL a batch is upserted in one statement (``TargetTable.upsert``);
where that cannot express the batch, the staging path writes it, with the same result."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from factorysync.realtime.writer import Incoming, MicroBatchWriter
from factorysync.store.store import Store
from factorysync.store.targets import TargetTable
from tests.realtime.conftest import mqtt_source, register

TABLE = "machine_state"


def writer_for(store: Store, fields: dict[str, Any], key: list[str]) -> MicroBatchWriter:
    register(
        store,
        mqtt_source(
            "press-line",
            "127.0.0.1",
            1883,
            ["plant/+/status"],
            table=TABLE,
            mapping={"primary_key": key, "fields": fields},
        ),
    )
    writer = MicroBatchWriter(store, "press-line", window_s=3600)
    writer.open()
    return writer


FIELDS = {
    "machine_id": "machine_id",
    "speed": {"from": "speed", "type": "integer"},
    "state": "state",
    "at": {"from": "at", "type": "datetime"},
}


@pytest.fixture
def staged(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many rows each batch written through the staging table had."""
    calls: list[int] = []
    original = TargetTable.stage

    def stage(self: TargetTable, rows: list[dict[str, Any]], hashes: list[str]) -> int:
        calls.append(len(rows))
        return original(self, rows, hashes)

    monkeypatch.setattr(TargetTable, "stage", stage)
    return calls


def counts(writer: MicroBatchWriter) -> tuple[int, int, int]:
    r = writer.window.result
    assert r is not None
    return r.records_processed, r.records_inserted, r.records_updated


def table_rows(store: Store) -> dict[str, tuple[Any, ...]]:
    with store.connect() as conn:
        rows = conn.execute(
            text(f"SELECT machine_id, speed, state, _deleted_at FROM {TABLE}")
        ).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def msg(machine: str, speed: Any, state: str = "run", at: str = "2026-11-26T08:00:00+07:00"):
    return Incoming([{"machine_id": machine, "speed": speed, "state": state, "at": at}])


def test_counts_are_exact_and_the_last_message_of_a_key_wins(
    store: Store, staged: list[int]
) -> None:
    writer = writer_for(store, FIELDS, ["machine_id"])
    try:
        writer.flush([msg("M1", 10), msg("M2", 20), msg("M1", 11, "stop")])
        assert counts(writer) == (3, 2, 0)
        assert table_rows(store) == {"M1": (11, "stop", None), "M2": (20, "run", None)}

        # Unchanged rows are not counted (nor rewritten); a changed one is an update.
        writer.flush([msg("M1", 11, "stop"), msg("M2", 21), msg("M3", None)])
        assert counts(writer) == (6, 3, 1)
        assert table_rows(store) == {
            "M1": (11, "stop", None),
            "M2": (21, "run", None),
            "M3": (None, "run", None),
        }
        with store.connect() as conn:
            at = conn.execute(text(f"SELECT at FROM {TABLE} WHERE machine_id = 'M1'")).scalar()
        stamp = at if isinstance(at, datetime) else datetime.fromisoformat(at)
        if stamp.tzinfo is None:  # SQLite keeps UTC without its offset
            stamp = stamp.replace(tzinfo=UTC)
        assert stamp == datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
        # PostgreSQL wrote both batches in one statement each, SQLite through staging.
        assert staged == ([] if store.engine.dialect.name == "postgresql" else [3, 3])
    finally:
        writer.stop()


def test_a_soft_deleted_row_comes_back_and_dropped_fields_are_emptied(store: Store) -> None:
    writer = writer_for(store, FIELDS, ["machine_id"])
    try:
        writer.flush([msg("M1", 10), msg("M2", 20)])
        with store.begin() as conn:
            conn.execute(text(f"ALTER TABLE {TABLE} ADD COLUMN shift TEXT"))
            conn.execute(
                text(f"UPDATE {TABLE} SET shift = 'A', _deleted_at = :now WHERE machine_id = 'M1'"),
                {"now": datetime.now(UTC).replace(tzinfo=None)},
            )
            conn.execute(text(f"UPDATE {TABLE} SET shift = 'B' WHERE machine_id = 'M2'"))
        # Same values as before: the deletion marker and the column this source does not
        # map any more still make them updates.
        writer.flush([msg("M1", 10), msg("M2", 20)])
        assert counts(writer) == (4, 2, 2)
        with store.connect() as conn:
            got = conn.execute(
                text(f"SELECT machine_id, shift, _deleted_at FROM {TABLE} ORDER BY machine_id")
            ).all()
        assert [tuple(r) for r in got] == [("M1", None, None), ("M2", None, None)]
    finally:
        writer.stop()


def test_values_that_need_the_staging_path_are_written_the_same(
    store: Store, staged: list[int]
) -> None:
    """A value wider than its column widens it first; a JSON value goes through staging."""
    fields = {"machine_id": "machine_id", "speed": "speed", "state": "state"}
    writer = writer_for(store, fields, ["machine_id"])
    try:
        writer.flush([msg("M1", 10), msg("M2", 20)])
        writer.flush([msg("M1", 10.5), msg("M2", 20)])  # integer column widened to float
        assert counts(writer) == (4, 2, 1)
        writer.flush([Incoming([{"machine_id": "M2", "speed": 1, "state": {"code": 7}}])])
        assert counts(writer) == (5, 2, 2)
        assert table_rows(store)["M1"][0] == 10.5
        if store.engine.dialect.name == "postgresql":
            assert staged == [1]  # the JSON value
    finally:
        writer.stop()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgresql_upsert_needs_the_key_index(store: Store) -> None:
    """Without the unique (_source_id, key) index ON CONFLICT cannot be used: the upsert
    declines and the staging path writes the batch."""
    writer = writer_for(store, FIELDS, ["machine_id"])
    try:
        writer.flush([msg("M1", 10)])
        with store.begin() as conn:
            table = TargetTable(conn, TABLE, source_id="press-line", key=["machine_id"])
            assert table._has_key_index()
            conn.execute(text(f'DROP INDEX "ux_{TABLE}_key"'))
            table = TargetTable(conn, TABLE, source_id="press-line", key=["machine_id"])
            assert not table._has_key_index()
            now = datetime.now(UTC)
            row = {"machine_id": "M1", "speed": 12, "state": "run"}
            assert table.upsert([row], ["h"], 1, now) is None
    finally:
        writer.stop()
