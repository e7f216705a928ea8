"""Globs of files: new and changed files between syncs, the union as the full snapshot, and
confinement to the data roots."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from factorysync.engine.runner import Runner
from factorysync.errors import ConnectorFatal
from factorysync.store.store import Store
from tests.connectors.conftest import batches, records
from tests.engine.test_runner import counts, register, table_rows


def day_file(folder: Path, day: int, ids: range) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"output_2026-01-{day:02d}.csv"
    lines = ["id;machine;ts;qty"] + [
        f"{i};M-{i % 3};2026-01-{day:02d}T{i % 24:02d}:00:00+07:00;{i * 2}" for i in ids
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def glob_source(source_id: str, strategy: str) -> dict[str, Any]:
    mapping: dict[str, Any] = {"primary_key": "id"}
    if strategy == "incremental":
        mapping["cursor_field"] = "ts"
    return {
        "source_id": source_id,
        "name": source_id,
        "source_type": "csv",
        "connections": [
            {"connection_config": {"file_path": "imports/output_*.csv", "delimiter": ";"}}
        ],
        "mappings": [
            {"target_table": source_id, "sync_strategy": strategy, "mapping_config": mapping}
        ],
    }


def test_incremental_reads_only_new_and_changed_files(store: Store, data_dir: Path) -> None:
    imports = data_dir / "imports"
    first = day_file(imports, 5, range(0, 3))
    register(store, glob_source("arrivals", "incremental"))
    runner = Runner(store)
    result = runner.sync("arrivals")
    assert result.sync_status == "success", result.error_message
    assert (result.records_processed, *counts(result)) == (3, 3, 0, 0)

    day_file(imports, 6, range(3, 5))  # a file arrives
    result = runner.sync("arrivals")
    assert (result.records_processed, *counts(result)) == (2, 2, 0, 0)

    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    result = runner.sync("arrivals")  # touched, same content: not read again
    assert result.sync_status == "success" and result.records_processed == 0

    with first.open("a") as fh:  # the first file gets a late row
        fh.write("9;M-0;2026-01-07T08:00:00+07:00;18\n")
    result = runner.sync("arrivals")
    assert (result.records_processed, *counts(result)) == (4, 1, 0, 0)

    (imports / "output_2026-01-06.csv").unlink()  # incremental never deletes
    assert runner.sync("arrivals").records_processed == 0
    assert {r["id"] for r in table_rows(store, "arrivals")} == {0, 1, 2, 3, 4, 9}
    day_file(imports, 8, range(20, 22))
    assert runner.sync("arrivals").records_processed == 2
    with store.connect() as conn:
        state = conn.execute(
            text("SELECT state FROM data_source_sync_state WHERE state_key = 'connector'")
        ).scalar_one()
    state = state if isinstance(state, dict) else json.loads(state)
    assert sorted(state["files"]) == [str(first), str(imports / "output_2026-01-08.csv")]


def test_full_sync_treats_the_union_as_the_snapshot(store: Store, data_dir: Path) -> None:
    imports = data_dir / "imports"
    day_file(imports, 5, range(0, 3))
    second = day_file(imports, 6, range(3, 6))
    register(store, glob_source("union", "full"))
    runner = Runner(store)
    assert counts(runner.sync("union")) == (6, 0, 0)
    assert counts(runner.sync("union")) == (0, 0, 0)
    second.unlink()
    assert counts(runner.sync("union")) == (0, 0, 3)
    day_file(imports, 7, range(10, 12))
    assert counts(runner.sync("union")) == (2, 0, 0)
    assert len(table_rows(store, "union")) == 5


def test_markers_in_the_state(data_dir: Path, make: Any) -> None:
    imports = data_dir / "imports"
    day_file(imports, 5, range(0, 3))
    day_file(imports, 6, range(3, 5))
    connector = make("file", {"file_path": "imports/*.csv", "delimiter": ";"})
    got = batches(connector, strategy="incremental")
    assert sum(len(b.records) for b in got) == 5
    state = got[-1].state
    assert state is not None and len(state["files"]) == 2
    marker = state["files"][str(imports / "output_2026-01-05.csv")]
    assert set(marker) == {"size", "mtime_ns", "sha256", "checked_ns"}
    assert records(connector, strategy="incremental", state=state) == []
    # Another setting changes how rows are read: every file is read again.
    other = make("file", {"file_path": "imports/*.csv", "delimiter": ";", "decimal": ","})
    assert len(records(other, strategy="incremental", state=state)) == 5
    # A full read always reads everything.
    assert len(records(connector, state=state)) == 5


def test_paths_stay_inside_the_data_roots(data_dir: Path, tmp_path: Path, make: Any) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("a\n1\n")
    with pytest.raises(ConnectorFatal, match="outside the data roots"):
        make("file", {"file_path": str(outside / "secret.csv")}).check()
    with pytest.raises(ConnectorFatal, match="outside the data roots"):
        make("file", {"file_path": "../outside/secret.csv"}).check()
    (data_dir / "link.csv").symlink_to(outside / "secret.csv")
    with pytest.raises(ConnectorFatal, match="outside the data roots"):
        make("file", {"file_path": "link.csv"}).check()
    with pytest.raises(ConnectorFatal, match="outside the data roots"):
        records(make("file", {"file_path": "*.csv"}))


def test_a_glob_without_files_fails_the_check(data_dir: Path, make: Any) -> None:
    with pytest.raises(ConnectorFatal, match=r"no file matches 'imports/\*.csv'"):
        make("file", {"file_path": "imports/*.csv"}).check()
