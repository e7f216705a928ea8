"""The publisher: the plant's outbox sent to JetStream, entry by entry, in order.

It connects to the plant's own NATS server (``FACTORYSYNC_FORWARD_URL``, a leaf node of
the central hub), makes sure the stream exists when JetStream answers, and then loops:
take a window of outbox entries (:class:`~factorysync.forward.outbox.Outbox`), publish
each item's messages with a reply subject of its own (many in flight at once, bounded),
and delete an item's entries once JetStream acknowledged every message of it.

Anything that goes wrong — no server, the uplink to the hub down (no responders), an
acknowledgement that does not come, a store that cannot be read — ends the attempt: the
connection is closed (dropping what it still buffers), the error is kept for ``status``
with the URL's credentials masked, and the next attempt starts after a back-off from the
oldest entry still in the outbox, read afresh. A message that did reach the stream and
is sent again carries the same ``Nats-Msg-Id``, which JetStream drops.

One publisher sends a store's outbox at a time: it holds the lease of
:mod:`~factorysync.forward.lease` while it runs; another one stands by (sends nothing,
saves no state) until the lease is released or runs out, and then takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from factorysync.errors import ConfigError, FactorySyncError
from factorysync.forward import wire
from factorysync.forward.lease import RENEW_S, PublisherLease
from factorysync.forward.outbox import Outbox, Rows, Shape, Work
from factorysync.security.redaction import Redactor, learn_secrets
from factorysync.settings import Settings
from factorysync.store.store import Store
from factorysync.store.types import utcnow

log = logging.getLogger("factorysync.forward")

INSTALL = "pip install 'factorysync[nats]'"
STATE_SOURCE = "_forward"  # data_source_sync_state row of the publisher (no source id
STATE_KEY = "publisher"  # can start with "_")
DUPLICATE_WINDOW_S = 24 * 3600.0


class ForwardError(FactorySyncError):
    """An attempt to publish failed; the outbox keeps what was not acknowledged."""


class LeaseLost(ForwardError):
    """Another publisher holds the outbox now (this one was silent past the lease)."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"the outbox is published by {holder} now")
        self.holder = holder


def _nats() -> Any:
    try:
        import nats
    except ImportError:
        raise ConfigError(f"forwarding needs the nats-py package: {INSTALL}") from None
    return nats


def credentials(url: str) -> list[str]:
    """The secret parts of NATS URLs (passwords, tokens), for masking."""
    found = []
    for one in url.split(","):
        parts = urlsplit(one.strip())
        if parts.password:
            found.append(parts.password)
        elif parts.username:  # nats://TOKEN@host
            found.append(parts.username)
    return found


def safe_url(url: str) -> str:
    """The URL(s) as shown: credentials masked."""
    return Redactor(credentials(url))(url)


class PublisherState:
    """What ``status`` shows of the publisher, updated from its thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.connected = False
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.messages = 0
        self.rows = 0
        self.last_published_at: datetime | None = None
        self.standby_for: str | None = None  # the publisher holding the outbox lease

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "connected": self.connected,
                "last_error": self.last_error,
                "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
                "published_messages": self.messages,
                "published_rows": self.rows,
                "last_published_at": (
                    self.last_published_at.isoformat() if self.last_published_at else None
                ),
                "standby_for": self.standby_for,
            }

    def failed(self, error: str) -> None:
        with self._lock:
            self.connected = False
            self.last_error, self.last_error_at = error, utcnow()

    def up(self, connected: bool) -> None:
        with self._lock:
            self.connected = connected

    def standing_by(self, holder: str | None) -> None:
        with self._lock:
            self.standby_for = holder
            if holder is not None:
                self.connected = False

    def sent(self, messages: int, rows: int) -> None:
        with self._lock:
            self.messages += messages
            self.rows += rows
            self.last_published_at = utcnow()


class Publisher:
    """Publishes the outbox of ``store`` to ``settings.forward_url`` until stopped."""

    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        *,
        poll_s: float = 0.25,
        ack_wait_s: float = 10.0,
        max_in_flight: int = 256,
        window: int = 200,
        backoff_s: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self.store = store
        self.settings = settings or store.settings
        self.url = self.settings.forward_url
        if not self.url:
            raise ConfigError("forwarding is off: set FACTORYSYNC_FORWARD_URL")
        self.site = self.settings.site
        self.stream = self.settings.forward_stream
        self.poll_s, self.ack_wait_s = poll_s, ack_wait_s
        self.max_in_flight, self.window = max_in_flight, window
        self.backoff_s = backoff_s
        secrets = credentials(self.url)
        learn_secrets(secrets)  # masked in every log line of the process too
        self.redact = Redactor(secrets)
        self.outbox = Outbox(store)
        self.lease = PublisherLease(store)
        self._holding = False
        self._renewed_at = 0.0
        self.state = PublisherState()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved_at = 0.0

    @property
    def safe_url(self) -> str:
        return self.redact(self.url)

    # -- life ------------------------------------------------------------------------
    def start(self) -> threading.Thread:
        """Publish in a thread of its own (``factorysync run``)."""
        _nats()
        self._thread = threading.Thread(target=self.run, name="forward", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, stop: threading.Event | None = None) -> None:
        """Publish until ``stop`` (or :meth:`stop`) is set."""
        if stop is not None:
            self._stop = stop
        _nats()
        asyncio.run(self._main())

    async def _main(self) -> None:
        delay = self.backoff_s[0]
        while not self._stop.is_set():
            try:
                await self._hold()
                await self._attempt()
                delay = self.backoff_s[0]
            except LeaseLost as lost:  # stand by: the other publisher sends it all
                self._stand_by(lost.holder)
                await self._sleep(RENEW_S * (0.5 + random.random()))
            except Exception as exc:  # every failure is waited out, then tried again
                error = self.describe(exc)
                self.state.failed(error)
                log.warning("forwarding to %s failed: %s", self.safe_url, error)
                self._save_state(force=True)
                await self._sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.backoff_s[1])
        self.state.up(False)
        self._save_state(force=True)
        if self._holding:
            try:
                await asyncio.to_thread(self.lease.release)
            except Exception as exc:  # the store is away: the lease runs out instead
                log.debug("publisher lease not released: %s", self.describe(exc))
            self._holding = False

    async def _hold(self, *, every_s: float = 0.0) -> None:
        """Take or renew the outbox lease (at most once in ``every_s``); raises
        :class:`LeaseLost` when another publisher holds it."""
        import time

        if self._holding and time.monotonic() - self._renewed_at < every_s:
            return
        holder = await asyncio.to_thread(self.lease.acquire)
        if holder is not None:
            raise LeaseLost(holder)
        self._renewed_at = time.monotonic()
        if not self._holding:
            self._holding = True
            if self.state.snapshot()["standby_for"] is not None:
                log.info("forwarding: this process publishes the outbox now")
            self.state.standing_by(None)
            self._saved_at = 0.0  # saved at once: status names the new publisher

    async def _keep(self) -> None:
        """Renew the lease while waiting; losing it ends the holding (the next
        :meth:`_hold` raises), a store that does not answer is tried again later."""
        try:
            await self._hold(every_s=RENEW_S)
        except LeaseLost as lost:
            self._stand_by(lost.holder)
        except Exception as exc:
            log.debug("publisher lease not renewed: %s", self.describe(exc))

    def _stand_by(self, holder: str) -> None:
        was = self.state.snapshot()["standby_for"]
        self._holding = False
        self.state.standing_by(holder)
        if was != holder:
            log.warning(
                "forwarding: %s publishes this store's outbox; this process stands by "
                "until it stops (one publisher per store: `run` with "
                "FACTORYSYNC_FORWARD_URL, or `forward`)",
                holder,
            )

    def describe(self, exc: BaseException) -> str:
        """An error as ``status`` shows it: one line, credentials masked."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        if type(exc).__name__ not in text:
            text = f"{type(exc).__name__}: {text}"
        return self.redact(text)[:500]

    async def _sleep(self, seconds: float) -> None:
        end = asyncio.get_running_loop().time() + seconds
        while not self._stop.is_set():
            left = end - asyncio.get_running_loop().time()
            if left <= 0:
                return
            if self._holding:
                await self._keep()  # the lease is kept while waiting, failures too
            self._save_state()  # every few seconds: status tells a live publisher
            await asyncio.sleep(min(left, 0.1))

    # -- one attempt -----------------------------------------------------------------
    async def _attempt(self) -> None:
        nats = _nats()
        failure: list[str] = []

        async def on_error(exc: Exception) -> None:
            failure.append(self.describe(exc))

        async def on_disconnect() -> None:
            self.state.up(False)

        # Each server is tried twice, then the attempt fails (this loop backs off; the
        # client's own reconnects would buffer messages to send late).
        connecting = asyncio.wait_for(
            nats.connect(
                [u.strip() for u in self.url.split(",") if u.strip()],
                allow_reconnect=False,
                connect_timeout=5,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.5,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                closed_cb=on_disconnect,
                name=f"factorysync-forward-{self.site}",
            ),
            60,
        )
        try:
            nc = await connecting
        except Exception as exc:
            why = failure[-1] if failure else self.describe(exc)
            raise ForwardError(f"cannot connect to {self.safe_url}: {why}") from None
        try:
            await self._ensure_stream(nc)
            await self._pump(nc, failure)
        finally:
            self.state.up(False)
            if not nc.is_closed:
                with contextlib.suppress(Exception):  # it failed already: nothing to add
                    await asyncio.wait_for(nc.close(), 5)

    async def _ensure_stream(self, nc: Any) -> None:
        """Create the stream when JetStream answers that it is missing; an unreachable
        JetStream (uplink down) is not an error here: the publishes will say so."""
        from nats.js.api import StorageType
        from nats.js.errors import NotFoundError

        jsm = nc.jsm(timeout=3)
        try:
            await jsm.stream_info(self.stream)
        except NotFoundError:
            await jsm.add_stream(
                name=self.stream,
                subjects=[f"{wire.SUBJECT_PREFIX}.>"],
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_S,
            )
        except Exception as exc:
            # Through a leaf node without JetStream domains the API is not forwarded at
            # all: the central side makes the stream, publishing works regardless.
            log.debug("stream %s not checked: %s", self.stream, self.describe(exc))

    async def _pump(self, nc: Any, failure: list[str]) -> None:
        loop = asyncio.get_running_loop()
        inbox = nc.new_inbox()
        waiting: dict[str, asyncio.Future[Any]] = {}

        async def on_ack(msg: Any) -> None:
            found = waiting.pop(msg.subject, None)
            if found is not None and not found.done():
                found.set_result(msg)

        sub = await nc.subscribe(f"{inbox}.*", cb=on_ack)
        await nc.flush(timeout=5)
        number = 0
        while not self._stop.is_set():
            await self._hold(every_s=RENEW_S)
            works = await asyncio.to_thread(self.outbox.take, self.window)
            if not works:
                if nc.is_closed:
                    raise ForwardError(failure[-1] if failure else "connection closed")
                self._connected()
                self._save_state()
                await self._sleep(self.poll_s)
                continue
            outstanding: deque[asyncio.Future[Any]] = deque()
            sent: list[tuple[Work, list[asyncio.Future[Any]], int]] = []
            for work in works:
                await self._keep()  # a long window keeps the lease too
                if not self._holding:  # lost: the rest of the window is the holder's
                    raise LeaseLost(self.state.snapshot()["standby_for"] or "another publisher")
                futures: list[asyncio.Future[Any]] = []
                rows = 0
                batches = self.outbox.batches(work)
                while True:
                    message = await asyncio.to_thread(self._next_message, batches, work)
                    if message is None:
                        break
                    subject, data, headers, count = message
                    number += 1
                    reply = f"{inbox}.{number}"
                    future: asyncio.Future[Any] = loop.create_future()
                    waiting[reply] = future
                    await nc.publish(subject, data, reply=reply, headers=headers)
                    futures.append(future)
                    outstanding.append(future)
                    rows += count
                    while len(outstanding) >= self.max_in_flight:
                        await self._settle(nc, outstanding.popleft(), failure)
                sent.append((work, futures, rows))
            for future in outstanding:
                await self._settle(nc, future, failure)
            await self._finish(sent)
        await sub.unsubscribe()

    def _next_message(
        self, batches: Iterator[tuple[Shape, Rows]], work: Work
    ) -> tuple[str, bytes, dict[str, str], int] | None:
        """The next message of ``work`` (read and encoded off the event loop)."""
        found = next(batches, None)
        if found is None:
            return None
        shape, rows = found
        msg_id, data = wire.message(self.site, work, shape, rows)
        return wire.subject(self.site, work.table), data, wire.headers(msg_id), len(rows)

    async def _settle(self, nc: Any, future: asyncio.Future[Any], failure: list[str]) -> None:
        """Wait for one acknowledgement (bounded): raises when it does not come, or the
        connection closed, or it is not a stored message."""
        end = asyncio.get_running_loop().time() + self.ack_wait_s
        while not future.done():
            if nc.is_closed:
                raise ForwardError(failure[-1] if failure else "connection closed")
            left = end - asyncio.get_running_loop().time()
            if left <= 0:
                raise ForwardError(
                    f"no acknowledgement from stream {self.stream} within {self.ack_wait_s:g} s "
                    "(is the uplink to the central hub down?)"
                )
            await asyncio.wait([future], timeout=min(left, 0.25))
        check_ack(future.result(), self.stream)

    async def _finish(self, sent: list[tuple[Work, list[asyncio.Future[Any]], int]]) -> None:
        """Every message of the window was acknowledged: its entries go."""
        await asyncio.to_thread(self.outbox.done, [work for work, _, _ in sent])
        self.state.sent(sum(len(f) for _, f, _ in sent), sum(n for _, _, n in sent))
        self._connected()
        self._save_state()

    def _connected(self) -> None:
        """Connected means: the stream acknowledged this connection's messages, or there
        was nothing to send (a server that takes publishes it cannot deliver is not)."""
        if not self.state.connected:
            self.state.up(True)
            self._saved_at = 0.0  # saved at once

    # -- state kept for `status` -----------------------------------------------------
    def _save_state(self, *, force: bool = False) -> None:
        """The publisher's state into the store, so that ``status`` in another process
        shows it: on every change of health, else every few seconds."""
        import time

        now = time.monotonic()
        if not self._holding or (not force and now - self._saved_at < 5.0):
            return  # a publisher standing by leaves the state to the one that publishes
        self._saved_at = now
        try:
            save_publisher_state(self.store, {**self.state.snapshot(), "url": self.safe_url})
        except Exception as exc:  # the store is away: status shows the older state
            log.debug("publisher state not saved: %s", self.describe(exc))


def check_ack(msg: Any, stream: str) -> None:
    """Raise :class:`ForwardError` unless ``msg`` acknowledges a stored message."""
    headers = msg.headers or {}
    if headers.get("Status") == "503":
        raise ForwardError(
            f"no responders for the stream {stream}: JetStream is not reachable from this "
            "server (uplink to the central hub down, or no stream for factorysync.>)"
        )
    try:
        body = orjson.loads(msg.data) if msg.data else {}
    except orjson.JSONDecodeError:
        raise ForwardError("unreadable acknowledgement from JetStream") from None
    if not isinstance(body, dict) or "error" in body or "seq" not in body:
        error = body.get("error") if isinstance(body, dict) else None
        text = error.get("description") if isinstance(error, dict) else None
        raise ForwardError(f"JetStream refused a message: {str(text or body)[:200]}")


def save_publisher_state(store: Store, state: dict[str, Any]) -> None:
    from factorysync.engine.state import save_state
    from factorysync.store.db import write_transaction

    with store.connect() as conn, write_transaction(conn):
        saved = {**state, "saved_at": utcnow().isoformat()}
        save_state(conn, STATE_SOURCE, 0, STATE_KEY, saved, 0)


def load_publisher_state(store: Store) -> dict[str, Any] | None:
    from factorysync.engine.state import load_state

    with store.connect() as conn:
        found = load_state(conn, STATE_SOURCE, 0, STATE_KEY)
    return found if isinstance(found, dict) else None
