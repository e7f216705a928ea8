"""Short-lived answers kept in memory (``api_cache_s``), so polling dashboards cost little.

Many dashboards ask for the same pages every few seconds, and every request shows its
token. Within ``api_cache_s`` a repeated data request is answered from memory and a
token checked once is accepted without asking the store again. So data can be that much
older than the store, and a token revoked by another process keeps working that long;
changes made through this process (API syncs, source edits, revocations) clear the
caches at once. ``api_cache_s = 0`` turns both off.

An answer is fresh for the first half (or a little more) of ``api_cache_s``; after
that it is still served while one refresh runs in the background, so a polling client
never waits for the store unless nobody asked for that answer for a whole
``api_cache_s``. Requests that miss together
wait for one computation instead of each running their own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import anyio
import anyio.to_thread

V = TypeVar("V")
log = logging.getLogger("factorysync.api")


class TtlCache(Generic[V]):
    """Entries expire ``ttl_s`` after they were stored; bounded in count and bytes (LRU)."""

    def __init__(self, ttl_s: float, max_entries: int = 4096, max_bytes: int = 64 << 20) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[float, int, V]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def get(self, key: Hashable) -> V | None:
        found = self.get_aged(key)
        return None if found is None else found[0]

    def get_aged(self, key: Hashable) -> tuple[V, float] | None:
        """The value and its age in seconds, while younger than ``ttl_s``."""
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored, size, value = entry
            age = time.monotonic() - stored
            if age >= self.ttl_s:
                del self._entries[key]
                self._bytes -= size
                return None
            self._entries.move_to_end(key)
            return value, age

    def put(self, key: Hashable, value: V, size: int = 0) -> None:
        if not self.enabled or size > self.max_bytes // 8:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (time.monotonic(), size, value)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, dropped, _) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def touch(self, key: Hashable) -> bool:
        """Start ``key``'s lifetime again (its value is known to be current)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False
            self._entries[key] = (time.monotonic(), entry[1], entry[2])
            self._entries.move_to_end(key)
            return True

    def discard(self, key: Hashable) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._bytes -= entry[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


Answer = tuple[bytes, str]  # body, ETag
Version = Callable[[], Hashable]
# Makes an answer given the version of the one in memory (None: there is none): returns
# the current version and the body, or no body when that version is still current.
Produce = Callable[[Hashable | None], tuple[Hashable | None, bytes | None]]
# Answers made at once, per process. Each is a thread holding a store connection. On
# SQLite the query runs in this process, in short driver calls that let go of the GIL:
# more makers only wait for each other's GIL (every wait up to the interpreter's 5 ms
# switch interval) and keep the event loop, which answers from memory, from running. On
# PostgreSQL a maker mostly waits for the server, so more of them overlap usefully.
MAKERS = 6
MAKERS_REMOTE = 16


def versioned(make: Callable[[], bytes], version: Version | None = None) -> Produce:
    """The producer of ``make`` checked by ``version`` (see :class:`Answers`)."""

    def produce(known: Hashable | None) -> tuple[Hashable | None, bytes | None]:
        # The version is read before the data: a change in between makes the next
        # check see a newer version, never an answer older than its version.
        now = version() if version is not None else None
        if known is not None and now == known:
            return now, None
        return now, make()

    return produce


def _refresh_point(key: Hashable) -> float:
    """Where in its lifetime an answer is refreshed: 0.5 … 0.8, different per key, so
    answers stored together are not all refreshed at the same moment."""
    return 0.5 + (hash(key) % 1000) / 1000 * 0.3


def etag_of(body: bytes) -> str:
    return f'W/"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


class Answers:
    """Response bodies by request, each with its ETag (see the module's description).

    ``version``: a cheap question whose answer changes whenever the data behind an answer
    may have changed (for table pages: the data versions of the table's sources). An aged
    answer is then first checked against it — one small query — and only made again when
    it changed, so polled pages of unchanged tables cost the store almost nothing. A
    producer (:meth:`produced`) asks both questions itself, e.g. on one store connection.

    At most ``threads`` answers are made at once (:data:`MAKERS`); other requests that
    miss wait their turn.
    """

    def __init__(self, ttl_s: float, threads: int = MAKERS) -> None:
        self.cache: TtlCache[Answer] = TtlCache(ttl_s)
        self.threads = threads
        self._limiter: tuple[asyncio.AbstractEventLoop, anyio.CapacityLimiter] | None = None
        self._pending: dict[Hashable, asyncio.Future[Answer]] = {}
        self._refreshing: set[asyncio.Task[Answer]] = set()
        # How each answer is made (and checked), so that one served without its route
        # (fast path) can be refreshed too, and the version it was made at. Bounded like
        # the cache; a forgotten one is learnt again.
        self._makers: dict[Hashable, Produce] = {}
        self._versions: dict[Hashable, Hashable] = {}

    async def get(
        self, key: Hashable, make: Callable[[], bytes], version: Version | None = None
    ) -> Answer:
        """The answer for ``key``: from memory, or ``make()`` run in a worker thread."""
        return await self.produced(key, versioned(make, version))

    async def produced(self, key: Hashable, produce: Produce) -> Answer:
        """The answer for ``key``: from memory, or ``produce`` run in a worker thread."""
        if len(self._makers) > 2 * self.cache.max_entries:
            self._makers.clear()
            self._versions.clear()
        self._makers[key] = produce
        found = self.cache.get_aged(key)
        if found is None:
            return await self._compute(key, produce)
        answer, age = found
        self._refresh_if_aged(key, age, produce)
        return answer

    def fast(self, key: Hashable) -> Answer | None:
        """The answer for ``key`` if it is in memory (refreshed in the background when
        aged, as by ``get``); None when only its route can answer (in the event loop)."""
        known = self._makers.get(key)
        if known is None:
            return None
        found = self.cache.get_aged(key)
        if found is None:
            return None
        answer, age = found
        self._refresh_if_aged(key, age, known)
        return answer

    def _refresh_if_aged(self, key: Hashable, age: float, produce: Produce) -> None:
        if age >= self.cache.ttl_s * _refresh_point(key) and key not in self._pending:
            task = asyncio.get_running_loop().create_task(
                self._compute(key, produce, self._versions.get(key))
            )
            self._refreshing.add(task)
            task.add_done_callback(self._refreshed)

    async def _run(
        self, produce: Produce, known: Hashable | None
    ) -> tuple[Hashable | None, bytes | None]:
        loop = asyncio.get_running_loop()
        if self._limiter is None or self._limiter[0] is not loop:
            self._limiter = (loop, anyio.CapacityLimiter(self.threads))
        return await anyio.to_thread.run_sync(produce, known, limiter=self._limiter[1])

    async def _compute(
        self, key: Hashable, produce: Produce, known: Hashable | None = None
    ) -> Answer:
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = self._pending[key] = asyncio.get_running_loop().create_future()
        try:
            current, body = await self._run(produce, known)
            kept = self.cache.get(key) if body is None else None
            if kept is not None and self.cache.touch(key):
                answer = kept  # unchanged data: the answer in memory is current again
            else:
                if body is None:  # dropped from memory meanwhile: make it after all
                    current, body = await self._run(produce, None)
                    if body is None:
                        raise RuntimeError(f"no answer was made for {key!r}")
                answer = (body, etag_of(body))
                self.cache.put(key, answer, len(body))
            if current is not None:
                self._versions[key] = current
            pending.set_result(answer)
            return answer
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved: waiters, if any, raise it themselves
            raise
        finally:
            del self._pending[key]

    def _refreshed(self, task: asyncio.Task[Answer]) -> None:
        self._refreshing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The stale answer expires on its own; the next request sees the error.
            log.debug("background refresh failed: %s", type(task.exception()).__name__)

    def put(self, key: Hashable, body: bytes) -> Answer:
        answer = (body, etag_of(body))
        self.cache.put(key, answer, len(body))
        return answer

    def clear(self) -> None:
        self.cache.clear()
        self._makers.clear()
        self._versions.clear()
