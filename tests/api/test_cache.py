"""Answers from memory: fresh, then served while refreshed, then recomputed; requests that
miss together share one computation; failures are not remembered; memory stays bounded."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from factorysync.api import cache
from factorysync.api.cache import Answers, TtlCache


def test_fresh_then_stale_while_refreshing_then_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "_refresh_point", lambda key: 0.5)
    calls: list[int] = []

    def make() -> bytes:
        calls.append(1)
        return f"v{len(calls)}".encode()

    async def scenario() -> None:
        answers = Answers(2.0)
        assert (await answers.get("k", make))[0] == b"v1"
        assert (await answers.get("k", make))[0] == b"v1" and len(calls) == 1  # fresh
        await asyncio.sleep(1.1)
        assert (await answers.get("k", make))[0] == b"v1"  # stale: served, refreshed behind
        for _ in range(60):  # well before the answer would expire
            await asyncio.sleep(0.01)
            if len(calls) == 2:
                break
        assert (await answers.get("k", make))[0] == b"v2" and len(calls) == 2
        await asyncio.sleep(2.1)
        assert (await answers.get("k", make))[0] == b"v3"  # expired: computed first
        answers.clear()
        assert (await answers.get("k", make))[0] == b"v4"

    asyncio.run(scenario())


def test_aged_answers_are_made_again_only_when_their_version_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache, "_refresh_point", lambda key: 0.5)
    calls: list[int] = []
    version = [7]

    def make() -> bytes:
        calls.append(1)
        return f"v{len(calls)}".encode()

    async def settle() -> None:
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not answers._pending:
                return

    async def scenario() -> None:
        assert (await answers.get("k", make, lambda: version[0]))[0] == b"v1"
        for _ in range(3):  # aged three times, the version unchanged: never made again
            await asyncio.sleep(0.3)
            assert (await answers.get("k", make, lambda: version[0]))[0] == b"v1"
            await settle()
        assert len(calls) == 1
        # Kept alive by the checks: 0.9 s after it was made, beyond its 0.4 s lifetime.
        assert answers.cache.get_aged("k") is not None
        version[0] = 8  # the data changed
        await asyncio.sleep(0.3)
        assert (await answers.get("k", make, lambda: version[0]))[0] == b"v1"  # served...
        await settle()
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


def test_ttl_cache_bounds() -> None:
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
