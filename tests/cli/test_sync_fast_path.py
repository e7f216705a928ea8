"""``factorysync source sync`` of an unchanged file source: recorded without reading
(factorysync.cli.fast_sync), exactly as a normal run that changed nothing, and only when
nothing that decides the result changed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine, inspect, text

from tests.conftest import run_cli

TRACE = {"FACTORYSYNC_FAST_PATH": "trace"}
FAST = "fast path: "
NOT_FAST = "fast path not taken"
ROWS = "id,qty\n1,5\n2,7\n"
# Columns that differ between any two runs (times, ids, who ran it).
VOLATILE = {
    "id",
    "created_at",
    "updated_at",
    "last_sync",
    "next_sync",
    "sync_started_at",
    "sync_completed_at",
    "sync_duration_ms",
    "worker",
    "run_id",
}


def declaration(strategy: str = "full", file_path: str = "small.csv", **mapping: Any) -> str:
    config = {"primary_key": ["id"], **mapping}
    if strategy == "incremental":
        config["cursor_field"] = "id"
    source = {
        "source_id": "small",
        "name": "Small",
        "source_type": "csv",
        "connections": [
            {
                "connection_name": "primary",
                "connection_type": "file",
                "connection_config": {"file_path": file_path, "file_type": "csv"},
            }
        ],
        "mappings": [
            {"target_table": "small_t", "sync_strategy": strategy, "mapping_config": config}
        ],
    }
    return orjson.dumps({"sources": [source]}).decode()


def apply(tmp_path: Path, decl: str) -> None:
    (tmp_path / "sources.yaml").write_text(decl)
    run_cli("apply", str(tmp_path / "sources.yaml"), check=True)


def sync(*args: str, fast: bool | None = None, check: bool = True) -> list[dict[str, Any]]:
    """Run ``source sync small --json``; ``fast``: which path it must have taken."""
    proc = run_cli("source", "sync", "small", "--json", *args, env=TRACE)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stdout + proc.stderr)
    if fast is not None:
        assert (FAST + "small unchanged" in proc.stderr) is fast, proc.stderr
    return list(orjson.loads(proc.stdout)) if proc.stdout.strip() else []


def counts(result: list[dict[str, Any]]) -> tuple[int, ...]:
    r = result[0]
    return tuple(
        r[f"records_{k}"] for k in ("processed", "inserted", "updated", "deleted", "rejected")
    )


@pytest.fixture
def source(env: dict[str, str], tmp_path: Path, data_dir: Path) -> Path:
    """A 2-row CSV file source, initialised and synced once (full)."""
    run_cli("init", check=True)
    (data_dir / "small.csv").write_text(ROWS)
    apply(tmp_path, declaration())
    sync(fast=False)
    return data_dir / "small.csv"


def dump(url: str) -> dict[str, Counter[str]]:
    """Every row of every table, without the columns that differ between runs."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    found: dict[str, Counter[str]] = {}
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).mappings().all()
            found[table] = Counter(
                orjson.dumps(
                    {k: _plain(k, v) for k, v in row.items() if k not in VOLATILE},
                    option=orjson.OPT_SORT_KEYS,
                    default=str,
                ).decode()
                for row in rows
            )
    engine.dispose()
    return found


def _plain(name: str, value: Any) -> Any:
    if name == "state" and value:
        state = orjson.loads(value) if isinstance(value, str) else dict(value)
        state.pop("run_id", None)  # the marker names its run
        return state
    return value


def _utc(value: Any) -> datetime:
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def change(before: dict[str, Counter[str]], after: dict[str, Counter[str]]) -> Any:
    return {
        t: (
            sorted((after[t] - before.get(t, Counter())).elements()),
            sorted((before.get(t, Counter()) - after[t]).elements()),
        )
        for t in after
        if after[t] != before.get(t)
    }


def test_an_unchanged_source_is_recorded_as_a_normal_run_would(
    source: Path, env: dict[str, str]
) -> None:
    url = env["FACTORYSYNC_DATABASE_URL"]
    first = dump(url)  # after the first load
    fast = sync(fast=True)
    second = dump(url)
    proc = run_cli("source", "sync", "small", "--json", env={"FACTORYSYNC_FAST_PATH": "off"})
    assert proc.returncode == 0, proc.stderr
    normal = orjson.loads(proc.stdout)
    third = dump(url)
    fast = sync(fast=True)
    fourth = dump(url)
    assert counts(normal) == counts(fast) == (2, 0, 0, 0, 0)
    same = ("run_id", "sync_duration_ms")
    assert {k: v for k, v in normal[0].items() if k not in same} == {
        k: v for k, v in fast[0].items() if k not in same
    }
    assert fast[0]["run_id"] == normal[0]["run_id"] + 1
    # The same rows appear (history, event log) and change (registry, state) either way,
    # after the first load and after a normal run.
    assert change(first, second) == change(second, third) == change(third, fourth)
    assert set(change(first, second)) >= {"data_source_sync_history", "infolog"}
    # Times and ids: the registry and the state entries name the new run.
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        reg = conn.execute(
            text("SELECT last_sync, next_sync FROM data_source_registry WHERE source_id='small'")
        ).one()
        hist = conn.execute(
            text(
                "SELECT id, sync_completed_at FROM data_source_sync_history "
                "ORDER BY id DESC LIMIT 1"
            )
        ).one()
        states = conn.execute(
            text("SELECT run_id FROM data_source_sync_state WHERE source_id='small'")
        ).scalars()
        assert set(states) == {hist.id}
    engine.dispose()
    assert hist.id == fast[0]["run_id"]
    assert str(reg.last_sync)[:19] == str(hist.sync_completed_at)[:19]
    assert 3590 < (_utc(reg.next_sync) - _utc(reg.last_sync)).total_seconds() <= 3600
    # A third time: still the fast path, on the marker the fast run left.
    assert counts(sync(fast=True)) == (2, 0, 0, 0, 0)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_table_is_the_normal_one(source: Path) -> None:
    proc = run_cli("source", "sync", "small", env=TRACE)
    assert proc.returncode == 0
    assert FAST in proc.stderr
    header, row = proc.stdout.splitlines()
    assert header.split() == [
        "source_id",
        "status",
        "processed",
        "inserted",
        "updated",
        "deleted",
        "rejected",
        "ms",
    ]
    assert row.split()[:7] == ["small", "success", "2", "0", "0", "0", "0"]
    # Column for column what the normal command prints (rich's table, not a terminal).
    normal = run_cli("source", "sync", "small", env={"FACTORYSYNC_FAST_PATH": "off"})
    normal_header, normal_row = normal.stdout.splitlines()
    ms = header.index(" ms")
    assert normal_header[:ms] == header[:ms] and normal_row[:ms] == row[:ms]
    # Narrower than the table: rich fits it to the width, as the normal command does.
    proc = run_cli("source", "sync", "small", env={**TRACE, "COLUMNS": "40"})
    assert FAST in proc.stderr
    assert max(len(line) for line in proc.stdout.splitlines()) <= 40


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_switch_and_debug_take_the_normal_path(source: Path) -> None:
    off = run_cli("source", "sync", "small", env={"FACTORYSYNC_FAST_PATH": "off"})
    assert off.returncode == 0 and FAST not in off.stderr
    debug = run_cli("--debug", "source", "sync", "small", env=TRACE)
    assert debug.returncode == 0 and FAST not in debug.stderr
    assert counts(sync(fast=True)) == (2, 0, 0, 0, 0)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_same_size_and_time_with_other_content_is_read(source: Path) -> None:
    stat = source.stat()
    source.write_text(ROWS.replace("1,5", "1,6"))
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert source.stat().st_size == stat.st_size
    assert counts(sync(fast=False)) == (2, 0, 1, 0, 0)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_touched_file_with_the_same_content_changes_nothing(source: Path) -> None:
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**10))
    assert counts(sync()) == (2, 0, 0, 0, 0)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_mapping_edited_by_apply_is_read(source: Path, tmp_path: Path) -> None:
    assert counts(sync(fast=True)) == (2, 0, 0, 0, 0)
    apply(tmp_path, declaration(on_invalid="skip"))
    assert counts(sync(fast=False)) == (2, 0, 0, 0, 0)
    assert counts(sync(fast=True)) == (2, 0, 0, 0, 0)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_disabled_source_takes_the_normal_path(source: Path) -> None:
    run_cli("source", "disable", "small", check=True)
    sync(fast=False, check=False)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_after_a_failed_run_the_next_one_reads(source: Path) -> None:
    moved = source.with_name("elsewhere.txt")
    source.rename(moved)
    assert sync(fast=False, check=False)[0]["sync_status"] == "failed"
    moved.rename(source)
    assert counts(sync(fast=False)) == (2, 0, 0, 0, 0)
    assert counts(sync(fast=True)) == (2, 0, 0, 0, 0)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_glob_that_gains_a_file_is_read(
    env: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:
    run_cli("init", check=True)
    (data_dir / "a.csv").write_text(ROWS)
    apply(tmp_path, declaration(file_path="*.csv"))
    assert counts(sync(fast=False)) == (2, 2, 0, 0, 0)
    # A first load that inserted vouches for the next run too: it reads the same.
    assert counts(sync(fast=True)) == (2, 0, 0, 0, 0)
    (data_dir / "b.csv").write_text("id,qty\n3,1\n")
    assert counts(sync(fast=False)) == (3, 1, 0, 0, 0)
    (data_dir / "b.csv").unlink()
    assert counts(sync(fast=False)) == (2, 0, 0, 1, 0)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_incremental_and_reset(env: dict[str, str], tmp_path: Path, data_dir: Path) -> None:
    run_cli("init", check=True)
    (data_dir / "small.csv").write_text(ROWS)
    apply(tmp_path, declaration("incremental"))
    assert counts(sync(fast=False)) == (2, 2, 0, 0, 0)
    # A run that read something leaves no marker: the next one reads only what changed.
    assert counts(sync(fast=False)) == (0, 0, 0, 0, 0)
    assert counts(sync(fast=True)) == (0, 0, 0, 0, 0)
    run_cli("source", "reset", "small", check=True)
    assert counts(sync(fast=False)) == (2, 0, 0, 0, 0)
    assert counts(sync(fast=False)) == (0, 0, 0, 0, 0)
    (data_dir / "small.csv").write_text(ROWS + "3,9\n")
    assert counts(sync(fast=False))[1] == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_rejected_record_leaves_no_marker(
    env: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:
    run_cli("init", check=True)
    (data_dir / "small.csv").write_text(ROWS + "3,-1\n")
    rule = [{"field": "qty", "rule": "min", "value": 0}]
    apply(tmp_path, declaration(validate=rule))
    sync(fast=False)
    assert counts(sync(fast=False))[4] == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_database_source_takes_the_normal_path(
    env: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:
    run_cli("init", check=True)
    with sqlite3.connect(data_dir / "plant.db") as db:
        db.execute("CREATE TABLE oee (id INTEGER PRIMARY KEY, qty INTEGER)")
        db.execute("INSERT INTO oee VALUES (1, 5)")
    decl = orjson.loads(declaration())
    decl["sources"][0]["source_type"] = "database"
    decl["sources"][0]["connections"][0].update(
        connection_type="database",
        connection_config={"dialect": "sqlite", "database": "plant.db", "table": "oee"},
    )
    apply(tmp_path, orjson.dumps(decl).decode())
    for _ in range(3):
        assert counts(sync(fast=False))[0] == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_another_setting_takes_the_normal_path(source: Path) -> None:
    proc = run_cli("source", "sync", "small", env={**TRACE, "FACTORYSYNC_BATCH_SIZE": "10"})
    assert proc.returncode == 0 and NOT_FAST in proc.stderr
    # A FACTORYSYNC_ variable that is no setting is ignored, as the settings ignore it.
    other = {**TRACE, "FACTORYSYNC_WORKER_NAME": "w1", "FACTORYSYNC_REQUIRE_SERVICES": "1"}
    proc = run_cli("source", "sync", "small", env=other)
    assert proc.returncode == 0 and FAST + "small unchanged" in proc.stderr, proc.stderr


def test_the_fast_path_knows_the_schema_revision() -> None:
    from factorysync.cli.fast_sync import _head_revision
    from factorysync.store.db import HEAD_REVISION

    assert _head_revision() == HEAD_REVISION


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_realtime_source_takes_the_normal_path(
    env: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:
    run_cli("init", check=True)
    decl = orjson.loads(declaration())
    source = decl["sources"][0]
    source["source_type"] = "mqtt"
    source["connections"][0].update(
        connection_type="mqtt",
        connection_config={"host": "127.0.0.1", "topics": ["plant/#"]},
    )
    source["mappings"][0].update(sync_strategy="realtime", sync_frequency="realtime")
    apply(tmp_path, orjson.dumps(decl).decode())
    proc = run_cli("source", "sync", "small", env=TRACE)
    assert proc.returncode != 0
    assert "not a file source" in proc.stderr and "realtime" in proc.stderr


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_fast_path_loads_no_engine(source: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from factorysync.cli.fast_sync import try_sync\n"
        "assert try_sync(['source', 'sync', 'small']) == 0\n"
        "heavy = ('sqlalchemy', 'pydantic', 'pyarrow', 'numpy', 'typer', 'orjson', 'typing')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"


def test_the_fast_path_defaults_are_the_settings_defaults() -> None:
    """Settings the fast path reads itself start from the same defaults as Settings."""
    from factorysync.cli.fast_sync import DEFAULTS, KNOWN, SETTINGS
    from factorysync.settings import Settings

    fields = Settings.model_fields
    for name, value in DEFAULTS.items():
        default = fields[name].default
        assert default == (Path(value) if isinstance(default, Path) else value), name
    assert KNOWN - {"fast_path"} <= set(fields)
    assert set(SETTINGS) == set(fields), "cli/fast_sync.SETTINGS lists every setting"


def _store_sql(url: str, *statements: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def test_target_rows_removed_or_added_by_hand_are_synced_again(
    source: Path, env: dict[str, str]
) -> None:
    """A full run puts back what was deleted from its target by hand: the fast path does
    not vouch for a source whose target tables' row counts moved since its marked run."""
    url = env["FACTORYSYNC_DATABASE_URL"]
    assert counts(sync(fast=True)) == (2, 0, 0, 0, 0)
    _store_sql(url, "DELETE FROM small_t")  # emptied to be loaded again
    assert counts(sync(fast=False)) == (2, 2, 0, 0, 0)
    assert counts(sync(fast=True)) == (2, 0, 0, 0, 0)
    _store_sql(url, "DELETE FROM small_t WHERE id = 2")
    assert counts(sync(fast=False)) == (2, 1, 0, 0, 0)
    _store_sql(url, "INSERT INTO small_t (id, qty) VALUES (3, 9)")
    assert counts(sync(fast=False)) == (2, 0, 0, 0, 0)  # no detect_deletes: row 3 stays
    assert counts(sync(fast=True)) == (2, 0, 0, 0, 0)
