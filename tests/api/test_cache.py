"""Answers from memory: fresh, then served while refreshed, then recomputed; requests that
miss together share one computation; failures are not remembered; memory stays bounded."""

from __future__ import annotations

import asyncio
import functools
import threading
import time

import pytest

from factorysync.api import cache
from factorysync.api.cache import Answers, TtlCache
from tests.waiting import PATIENCE


class Clock:
    """Stands in for the cache's clock: time moves only when the test moves it, so the
    ages of answers are exact however busy the machine is."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(cache, "time", fake)
    return fake


async def settled(answers: Answers) -> None:
    """Wait (in real time) until no computation or background refresh is running."""
    deadline = time.monotonic() + PATIENCE
    while answers._pending or answers._refreshing:
        assert time.monotonic() < deadline, "a background refresh never ended"
        await asyncio.sleep(0.01)


def test_fresh_then_stale_while_refreshing_then_expired(
    monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setattr(cache, "_refresh_point", lambda key: 0.5)
    calls: list[int] = []

    def make() -> bytes:
        calls.append(1)
        return f"v{len(calls)}".encode()

    async def scenario() -> None:
        answers = Answers(2.0)
        assert (await answers.get("k", make))[0] == b"v1"
        clock.advance(0.5)
        assert (await answers.get("k", make))[0] == b"v1" and len(calls) == 1  # fresh
        clock.advance(0.6)
        assert (await answers.get("k", make))[0] == b"v1"  # stale: served, refreshed behind
        await settled(answers)
        assert (await answers.get("k", make))[0] == b"v2" and len(calls) == 2
        clock.advance(2.1)
        assert (await answers.get("k", make))[0] == b"v3"  # expired: computed first
        answers.clear()
        assert (await answers.get("k", make))[0] == b"v4"

    asyncio.run(scenario())


def test_aged_answers_are_made_again_only_when_their_version_changed(
    monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setattr(cache, "_refresh_point", lambda key: 0.5)
    calls: list[int] = []
    version = [7]

    def make() -> bytes:
        calls.append(1)
        return f"v{len(calls)}".encode()

    async def scenario() -> None:
        assert (await answers.get("k", make, lambda: version[0]))[0] == b"v1"
        for _ in range(3):  # aged three times, the version unchanged: never made again
            clock.advance(0.3)
            assert (await answers.get("k", make, lambda: version[0]))[0] == b"v1"
            await settled(answers)
        assert len(calls) == 1
        # Kept alive by the checks: 0.9 s after it was made, beyond its 0.4 s lifetime.
        assert answers.cache.get_aged("k") is not None
        version[0] = 8  # the data changed
        clock.advance(0.3)
        assert (await answers.get("k", make, lambda: version[0]))[0] == b"v1"  # served...
        await settled(answers)
        assert (await answers.get("k", make, lambda: version[0]))[0] == b"v2"  # ...remade
        assert answers.fast("k") == (b"v2", cache.etag_of(b"v2"))

    answers = Answers(0.4)
    asyncio.run(scenario())


def test_concurrent_misses_share_one_computation_and_errors_are_not_kept() -> None:
    started = threading.Event()
    calls: list[int] = []

    def slow() -> bytes:
        calls.append(1)
        started.set()
        time.sleep(0.1)
        return b"body"

    def broken() -> bytes:
        calls.append(1)
        raise LookupError("no such table")

    async def scenario() -> None:
        answers = Answers(10)
        results = await asyncio.gather(*(answers.get("k", slow) for _ in range(20)))
        assert len(calls) == 1 and {r[0] for r in results} == {b"body"}
        assert results[0][1].startswith('W/"')
        calls.clear()
        for _ in range(2):
            with pytest.raises(LookupError):
                await answers.get("bad", broken)
        assert len(calls) == 2

    asyncio.run(scenario())


def test_ttl_cache_bounds(clock: Clock) -> None:
    kept: TtlCache[bytes] = TtlCache(10, max_entries=3, max_bytes=80)
    for i in range(5):
        kept.put(i, b"x", size=1)
    assert [kept.get(i) for i in range(5)] == [None, None, b"x", b"x", b"x"]
    kept.put("big", b"y" * 20, size=20)  # more than an eighth of the budget: not kept
    assert kept.get("big") is None
    assert all(0.5 <= cache._refresh_point(k) <= 0.8 for k in range(100))
    off: TtlCache[bytes] = TtlCache(0)
    off.put("k", b"v")
    assert off.get("k") is None


def test_at_most_threads_answers_are_made_at_once() -> None:
    lock = threading.Lock()
    running = [0, 0]  # now, most at once

    def make(n: int) -> bytes:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return str(n).encode()

    async def scenario() -> None:
        answers = Answers(10, threads=2)
        results = await asyncio.gather(
            *(answers.get(n, functools.partial(make, n)) for n in range(8))
        )
        assert [r[0] for r in results] == [str(n).encode() for n in range(8)]

    asyncio.run(scenario())
    assert running[1] == 2  # the others waited their turn, and all were made
