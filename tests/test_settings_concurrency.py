"""How many runs a service starts at once: what the administrator set, else a default that
suits the store (a SQLite store has one writer; PostgreSQL takes many)."""

from __future__ import annotations

from pathlib import Path

import pytest

from factorysync.settings import SQLITE_CONCURRENT_SYNCS, Settings
from factorysync.store.store import Store


@pytest.mark.parametrize(
    ("url", "given", "expected"),
    [
        ("sqlite:///./factorysync.db", None, SQLITE_CONCURRENT_SYNCS),
        ("postgresql+psycopg://postgres@127.0.0.1/fs", None, 32),
        ("sqlite:///./factorysync.db", 20, 20),
        ("postgresql+psycopg://postgres@127.0.0.1/fs", 3, 3),
    ],
)
def test_runs_at_once(url: str, given: int | None, expected: int) -> None:
    settings = Settings(database_url=url, max_concurrent_syncs=given)
    assert settings.concurrent_syncs == expected


def test_the_store_pools_a_connection_per_run_and_four_more(tmp_path: Path) -> None:
    store = Store(Settings(database_url=f"sqlite:///{tmp_path / 'fs.db'}"))
    try:
        assert store.engine.pool.size() == SQLITE_CONCURRENT_SYNCS + 4
    finally:
        store.dispose()


def test_an_empty_variable_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTORYSYNC_MAX_CONCURRENT_SYNCS", "")
    assert Settings(database_url="sqlite:///x.db").concurrent_syncs == SQLITE_CONCURRENT_SYNCS
