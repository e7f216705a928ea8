"""File sources with auto_reload: synced within a second of a change, on real files."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from factorysync.realtime.filewatch import FileWatcher
from factorysync.realtime.service import RealtimeService
from factorysync.store.schema import data_source_sync_history
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.conftest import write_json
from tests.realtime.conftest import register, wait_for


def file_source(source_id: str, path: str, **config: Any) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": source_id,
        "source_type": "json",
        "refresh_interval": 3600,
        "connections": [{"connection_config": {"file_path": path, "auto_reload": True, **config}}],
        "mappings": [{"target_table": source_id, "mapping_config": {"primary_key": ["id"]}}],
    }


def values(store: Store, table: str) -> dict[int, Any]:
    with store.connect() as conn:
        try:
            return {r["id"]: r["v"] for r in read_rows(conn, table)}
        except Exception:
            return {}


def syncs(store: Store, source_id: str) -> int:
    with store.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(data_source_sync_history.c.source_id == source_id)
            ).scalar_one()
        )


@pytest.fixture
def service(store: Store) -> Iterator[RealtimeService]:
    svc = RealtimeService(store)
    yield svc
    svc.stop()


def watcher(service: RealtimeService, source_id: str) -> FileWatcher:
    service.reconcile()
    assert source_id in service.workers, service.failed
    w = service.workers[source_id][1]
    assert isinstance(w, FileWatcher)
    time.sleep(0.3)  # the OS watch is set up once the thread runs
    return w


def test_changed_file_is_synced_within_a_second(
    store: Store, data_dir: Path, service: RealtimeService
) -> None:
    path = write_json(data_dir / "counts.json", [{"id": 1, "v": 1}])
    register(store, file_source("counts", "counts.json"))
    watcher(service, "counts")

    write_json(path, [{"id": 1, "v": 2}, {"id": 2, "v": 5}])
    started = time.monotonic()
    wait_for(lambda: values(store, "counts") == {1: 2, 2: 5}, timeout=5, what="new content")
    assert time.monotonic() - started < 1.0


def test_file_replaced_by_rename_and_bursts_are_debounced(
    store: Store, data_dir: Path, service: RealtimeService
) -> None:
    path = write_json(data_dir / "line" / "oee.json", [{"id": 1, "v": 0}])
    register(store, file_source("oee", str(path)))
    w = watcher(service, "oee")

    tmp = write_json(data_dir / "line" / "oee.json.tmp", [{"id": 1, "v": 10}])
    os.replace(tmp, path)
    wait_for(lambda: values(store, "oee") == {1: 10}, timeout=5, what="renamed-in content")
    wait_for(lambda: w.syncs >= 1, what="the sync to be counted")
    before = syncs(store, "oee")

    for i in range(20):  # an exporter rewriting the file in quick succession
        write_json(path, [{"id": 1, "v": 100 + i}])
    wait_for(lambda: values(store, "oee") == {1: 119}, timeout=5, what="the last write")
    time.sleep(0.5)
    assert 1 <= syncs(store, "oee") - before <= 3


def test_glob_sources_watch_new_files(
    store: Store, data_dir: Path, service: RealtimeService
) -> None:
    (data_dir / "exports").mkdir()
    write_json(data_dir / "exports" / "a.json", [{"id": 1, "v": "a"}])
    register(store, file_source("exports", "exports/*.json"))
    watcher(service, "exports")

    write_json(data_dir / "exports" / "b.json", [{"id": 2, "v": "b"}])
    wait_for(lambda: values(store, "exports") == {1: "a", 2: "b"}, timeout=5, what="b.json")
    (data_dir / "exports" / "notes.txt").write_text("not a match")
