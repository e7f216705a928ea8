"""File sources with auto_reload: synced when their file changes, on real files."""

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
from tests.realtime.conftest import register
from tests.waiting import wait_until


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


def watcher(service: RealtimeService, source_id: str, touch: Path) -> FileWatcher:
    """The source's running watcher, once its watch on the file system is live.

    The watcher thread sets up the operating system's watch after it starts, and a
    change made before then goes unseen. So ``touch`` (a watched file) is rewritten with
    its own content until the watcher syncs: from then on every change is seen.
    """
    service.reconcile()
    assert source_id in service.workers, service.failed
    w = service.workers[source_id][1]
    assert isinstance(w, FileWatcher)
    content = touch.read_bytes()

    def seen_a_change() -> bool:
        touch.write_bytes(content)
        return wait_until_or_not(lambda: w.syncs > 0, within=1.0)

    wait_until(seen_a_change, what=f"the watch of {source_id} to see a change")
    return w


def wait_until_or_not(check: Any, within: float) -> bool:
    """Whether ``check`` holds within ``within`` seconds (a probe, never a failure)."""
    try:
        wait_until(check, timeout=within)
    except AssertionError:
        return False
    return True


def watch_triggers(store: Store, source_id: str) -> list[str | None]:
    with store.connect() as conn:
        return list(
            conn.execute(
                select(data_source_sync_history.c.trigger)
                .where(data_source_sync_history.c.source_id == source_id)
                .order_by(data_source_sync_history.c.id)
            ).scalars()
        )


def test_changed_file_is_synced_by_the_watch(
    store: Store, data_dir: Path, service: RealtimeService
) -> None:
    path = write_json(data_dir / "counts.json", [{"id": 1, "v": 1}])
    register(store, file_source("counts", "counts.json"))
    watcher(service, "counts", path)

    write_json(path, [{"id": 1, "v": 2}, {"id": 2, "v": 5}])
    # The schedule would run it in an hour (refresh_interval 3600): only the watch syncs it.
    wait_until(
        lambda: values(store, "counts") == {1: 2, 2: 5},
        what="the new content",
        state=lambda: values(store, "counts"),
    )
    assert set(watch_triggers(store, "counts")) == {"watch"}


def test_file_replaced_by_rename_and_bursts_are_debounced(
    store: Store, data_dir: Path, service: RealtimeService
) -> None:
    path = write_json(data_dir / "line" / "oee.json", [{"id": 1, "v": 0}])
    register(store, file_source("oee", str(path)))
    w = watcher(service, "oee", path)

    tmp = write_json(data_dir / "line" / "oee.json.tmp", [{"id": 1, "v": 10}])
    os.replace(tmp, path)
    wait_until(lambda: values(store, "oee") == {1: 10}, what="the renamed-in content")

    # A burst is writes closer together than the watcher's quiet period (50 ms). A
    # machine too busy to write 20 small files within it has not made a burst: then
    # the burst is written again, after the syncs it caused have settled.
    for attempt in range(1, 6):
        settle(store, w)
        before = syncs(store, "oee")
        started = time.monotonic()
        for i in range(20):  # an exporter rewriting the file in quick succession
            write_json(path, [{"id": 1, "v": 100 * attempt + i}])
        burst_s = time.monotonic() - started
        last = {1: 100 * attempt + 19}
        wait_until(lambda last=last: values(store, "oee") == last, what="the last write")
        if burst_s < 0.04:
            break
    settle(store, w)
    # One sync for the burst, and one more when changes arrived during it.
    assert 1 <= syncs(store, "oee") - before <= 3, (syncs(store, "oee") - before, burst_s)


def settle(store: Store, w: FileWatcher) -> None:
    """Wait until the watcher has no sync running and none has started for a while."""

    def quiet() -> bool:
        counted = w.syncs
        return not running(store, w.source_id) and not wait_until_or_not(
            lambda: w.syncs != counted or running(store, w.source_id), within=0.5
        )

    wait_until(quiet, what="the watcher to settle")


def running(store: Store, source_id: str) -> bool:
    with store.connect() as conn:
        return (
            conn.execute(
                select(func.count()).where(
                    data_source_sync_history.c.source_id == source_id,
                    data_source_sync_history.c.sync_status == "running",
                )
            ).scalar_one()
            > 0
        )


def test_glob_sources_watch_new_files(
    store: Store, data_dir: Path, service: RealtimeService
) -> None:
    (data_dir / "exports").mkdir()
    first = write_json(data_dir / "exports" / "a.json", [{"id": 1, "v": "a"}])
    register(store, file_source("exports", "exports/*.json"))
    watcher(service, "exports", first)

    write_json(data_dir / "exports" / "b.json", [{"id": 2, "v": "b"}])
    wait_until(lambda: values(store, "exports") == {1: "a", 2: "b"}, what="b.json")
    (data_dir / "exports" / "notes.txt").write_text("not a match")
