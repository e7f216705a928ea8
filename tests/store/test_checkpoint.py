"""The service's background write-ahead-log checkpoints (SQLite stores)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from factorysync.settings import sqlite_path
from factorysync.store import checkpoint
from factorysync.store.checkpoint import Checkpointer
from factorysync.store.store import Store
from tests.waiting import wait_until

MB = 1024 * 1024


@pytest.fixture
def backend() -> str:
    return "sqlite"  # checkpoints of the write-ahead log are SQLite's


def write_mb(store: Store, mb: int) -> None:
    """One transaction that logs about ``mb`` MB of new pages."""
    with store.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS ballast (b BLOB)"))
        for _ in range(mb):
            conn.execute(text("INSERT INTO ballast VALUES (randomblob(1048576))"))


@contextmanager
def running(store: Store, every_s: float) -> Iterator[Checkpointer]:
    """The store's checkpointer, started for the block with a pass every ``every_s``."""
    checkpoints = store.checkpointer()
    assert checkpoints is not None
    checkpoints.every_s = every_s
    checkpoints.start()
    try:
        yield checkpoints
    finally:
        checkpoints.stop()


def db_file(store: Store) -> Path:
    path = sqlite_path(store.url)
    assert path is not None
    return path


def test_a_commit_checkpoints_by_itself_without_the_service(store: Store) -> None:
    write_mb(store, 48)  # past SQLite's 1,000 pages (32 MB at 32 KiB a page)
    assert db_file(store).stat().st_size > 40 * MB


def test_the_service_leaves_the_copy_to_its_thread(store: Store) -> None:
    with running(store, every_s=3600.0):  # the thread waits: only a commit could copy
        write_mb(store, 48)
        assert db_file(store).stat().st_size < 8 * MB
        assert Path(f"{db_file(store)}-wal").stat().st_size > 40 * MB
        with store.connect() as conn:  # every row is there for readers all the same
            assert conn.execute(text("SELECT count(*) FROM ballast")).scalar() == 48


def test_the_thread_copies_the_log_soon_after_the_commit(store: Store) -> None:
    with running(store, every_s=0.05) as checkpoints:
        write_mb(store, 48)
        wait_until(lambda: db_file(store).stat().st_size > 40 * MB, what="the checkpoint")
    assert checkpoints._thread is None


def test_a_commit_past_the_bound_still_checkpoints(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the thread (stopped, or a reader holding the log) the log stays bounded."""
    monkeypatch.setattr(checkpoint, "DEFERRED_BYTES", 40 * MB)
    with running(store, every_s=3600.0):
        write_mb(store, 24)
        assert db_file(store).stat().st_size < 8 * MB
        write_mb(store, 24)  # the log passes 40 MB at this commit
        assert db_file(store).stat().st_size > 40 * MB
