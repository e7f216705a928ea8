"""A service's native memory upkeep: malloc arenas capped once and freed memory trimmed
periodically; SQLite connections that keep few prepared statements."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import event, text

from factorysync.cli.runtime import (
    SQLITE_CACHED_STATEMENTS,
    MallocTrim,
    _few_cached_statements,
    _glibc,
)
from factorysync.store.store import Store
from tests.waiting import wait_until


class FakeLibc:
    def __init__(self) -> None:
        self.mallopt_calls: list[tuple[int, int]] = []
        self.trim_calls = 0

    def mallopt(self, param: int, value: int) -> int:
        self.mallopt_calls.append((param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        assert pad == 0
        self.trim_calls += 1
        return 1


def test_caps_the_arenas_once_and_trims_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    libc = FakeLibc()
    trim = MallocTrim(every_s=0.01, libc=libc)
    trim.start()
    wait_until(lambda: libc.trim_calls >= 3, what="three trims")
    trim.stop()
    after_stop = libc.trim_calls
    assert libc.mallopt_calls == [(MallocTrim.M_ARENA_MAX, MallocTrim.ARENAS)]
    assert trim.trims == after_stop
    assert trim._thread is not None and not trim._thread.is_alive()


def test_the_environment_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    libc = FakeLibc()
    trim = MallocTrim(every_s=60, libc=libc)
    trim.start()
    trim.stop()
    assert libc.mallopt_calls == []


@pytest.mark.skipif(_glibc() is None, reason="needs glibc")
def test_trimming_gives_freed_memory_back() -> None:
    """A process that allocated and freed many small blocks from several threads holds
    less resident memory after one trim with the real C library."""
    script = textwrap.dedent(
        """
        import ctypes, threading
        from factorysync.cli.runtime import MallocTrim

        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]

        def rss_kb():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS"):
                    return int(line.split()[1])

        def churn():
            blocks = [libc.malloc(2000) for _ in range(20000)]
            for b in blocks[::2]:
                libc.free(b)
            keep = blocks[1::2]
            for b in keep[:-1]:  # all but the heap's top block: not trimmed from the top
                libc.free(b)

        threads = [threading.Thread(target=churn) for _ in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        before = rss_kb()
        trim = MallocTrim(every_s=3600)
        trim.trim()
        print(before, rss_kb(), trim.trims)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    before, after, trims = (int(v) for v in done.stdout.split())
    assert trims == 1
    assert after < before - 20_000, (before, after)  # about 80 MB freed: most of it back


def test_service_connections_keep_few_statements(store: Store) -> None:
    """Every SQLite connection opened after the call asks the driver for the smaller
    statement cache and works; the connection opened before is not reused."""
    if store.dialect != "sqlite":  # PostgreSQL's driver keeps none: nothing changes
        with store.connect() as conn:
            before = conn.connection.driver_connection
        _few_cached_statements(store)
        with store.connect() as conn:
            assert conn.connection.driver_connection is before
        return
    with store.connect() as conn:
        before = conn.connection.driver_connection
    asked: list[dict[str, object]] = []
    _few_cached_statements(store)
    event.listen(store.engine, "do_connect", lambda *a: asked.append(dict(a[3])))
    with store.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM data_source_registry")).scalar() == 0
        assert conn.connection.driver_connection is not before
    assert [a.get("cached_statements") for a in asked] == [SQLITE_CACHED_STATEMENTS]
