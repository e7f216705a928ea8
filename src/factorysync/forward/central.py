"""The central ingest: every site's forwarded changes applied to the central store.

Plants publish the committed changes of their forwarded tables on the JetStream stream
(``FACTORYSYNC_FORWARD_STREAM``, subjects ``factorysync.<site>.<table>``); the central
ingest reads the stream with the durable pull consumer ``factorysync-central`` and
applies what it fetches, in stream order, one transaction per fetched batch
(:mod:`~factorysync.forward.central_apply`), acknowledging after the commit.

Where to read from is the store's to say, not the consumer's: the transaction that
applies a batch records the last applied stream sequence, and whenever the ingest
(re)starts — at start, after the hub or the store was unreachable — the consumer is made
again to deliver from the message after it. Messages delivered but never applied (a
crash before the commit) are so delivered again, in order; ones applied but never
acknowledged (a crash after the commit) are recognised by their sequence and skipped.

Only one central ingest applies a store's stream at a time: it holds a PostgreSQL
advisory lock for as long as it runs; a second one waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from factorysync.errors import ConfigError, StoreError
from factorysync.forward.central_apply import (
    BatchResult,
    Delivered,
    PositionMoved,
    applied_position,
    apply_batch,
    forget_positions_after,
)
from factorysync.forward.central_lag import count_pending, save_pending
from factorysync.forward.central_message import SUBJECT_PREFIX
from factorysync.security.redaction import Redactor, learn_secrets
from factorysync.store.store import Store
from factorysync.store.types import utcnow

log = logging.getLogger("factorysync.forward.central")

CONSUMER = "factorysync-central"
DEFAULT_STREAM = "FACTORYSYNC"
DUPLICATE_WINDOW_S = 24 * 3600.0
ACK_WAIT_S = 300.0  # a batch is committed long before; a redelivery is skipped anyway
FETCH_BATCH = 50  # messages per transaction (a message holds up to 1,000 rows)
FETCH_WAIT_S = 1.0
LAG_EVERY_S = 5.0
CONNECT_WAIT_S = 15.0  # per server, before a connection attempt counts as failed
BACKOFF_S = (0.5, 10.0)  # first and longest wait after a failure
LOCK_NAME = "factorysync.central"
INSTALL_HINT = "pip install 'factorysync[nats]'"


@dataclass
class IngestState:
    """What the ingest did so far (for the command's output and tests)."""

    position: int = 0
    applied: int = 0
    skipped: int = 0
    rejected: int = 0
    changed: int = 0
    connected: bool = False
    last_error: str | None = None


def _nats() -> Any:
    try:
        import nats
    except ImportError:  # pragma: no cover - the extra is installed in tests
        raise ConfigError(f"factorysync central needs the NATS client: {INSTALL_HINT}") from None
    return nats


def stream_name(store: Store) -> str:
    return str(getattr(store.settings, "forward_stream", "") or DEFAULT_STREAM)


class CentralIngest:
    """Applies the stream to ``store`` (PostgreSQL) until :meth:`stop`."""

    def __init__(
        self,
        store: Store,
        *,
        url: str | None = None,
        stream: str | None = None,
        batch: int = FETCH_BATCH,
        lag_every_s: float = LAG_EVERY_S,
    ) -> None:
        if store.dialect != "postgresql":
            raise ConfigError(
                "factorysync central needs a PostgreSQL store (FACTORYSYNC_DATABASE_URL="
                "postgresql://…): the central tables take every site's rows"
            )
        self.store = store
        self.urls = [u.strip() for u in (url or store.settings.central_url).split(",") if u.strip()]
        if not self.urls:
            raise ConfigError(
                "set FACTORYSYNC_CENTRAL_URL to the NATS server with the forwarding stream "
                "(nats://[user:password@]host:4222)"
            )
        self.redact = Redactor()
        for found in self.urls:
            self._learn_password(found)
        self.stream = stream or stream_name(store)
        self.batch = batch
        self.lag_every_s = lag_every_s
        self.state = IngestState()
        self._stop = threading.Event()
        self._lock_conn: Connection | None = None

    def _learn_password(self, url: str) -> None:
        from urllib.parse import urlsplit

        password = urlsplit(url).password
        if password:
            self.redact.add_secret(password)
            learn_secrets([password])

    @property
    def safe_urls(self) -> str:
        return ", ".join(self.redact(u) for u in self.urls)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> IngestState:
        """Apply the stream until :meth:`stop` (blocks; call it in its own thread)."""
        _nats()
        try:
            if not self._take_lock():
                return self.state
            asyncio.run(self._main())
        finally:
            self._release_lock()
        return self.state

    # -- one ingest per store -------------------------------------------------------
    def _take_lock(self) -> bool:
        waited = False
        delay = BACKOFF_S[0]
        while not self.stopping:
            try:
                conn = self.store.engine.connect()
                got = conn.execute(
                    text("SELECT pg_try_advisory_lock(hashtext(:name))"), {"name": LOCK_NAME}
                ).scalar()
                conn.commit()
            except Exception as exc:
                self._failed("the store", exc)
            else:
                if got:
                    self._lock_conn = conn
                    return True
                conn.close()
                if not waited:
                    log.warning("another central ingest applies this store: waiting for it")
                    waited = True
            self._stop.wait(delay)
            delay = min(delay * 2, 5.0)
        return False

    def _relock(self) -> bool:
        """After another ingest applied the stream: hold the lock again (waiting for the
        other one), unless it is still held here; False when stopped meanwhile."""
        conn = self._lock_conn
        try:
            assert conn is not None
            held = conn.execute(
                text("SELECT pg_try_advisory_lock(hashtext(:name))"), {"name": LOCK_NAME}
            ).scalar()
            if held:  # taken once more by this session: give that one back
                conn.execute(
                    text("SELECT pg_advisory_unlock(hashtext(:name))"), {"name": LOCK_NAME}
                )
            conn.commit()
        except Exception:
            held = False
        if held:
            return True
        log.warning("central ingest lost its lock (its connection to the store): taking it again")
        self._release_lock()
        return self._take_lock()

    def _release_lock(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            with suppress(Exception):
                conn.execute(
                    text("SELECT pg_advisory_unlock(hashtext(:name))"), {"name": LOCK_NAME}
                )
                conn.commit()
            with suppress(Exception):
                conn.close()

    # -- the loop -------------------------------------------------------------------
    async def _main(self) -> None:
        nats = _nats()
        delay = BACKOFF_S[0]
        nc: Any = None
        try:
            while not self.stopping:
                try:
                    if nc is None or nc.is_closed:
                        # No reconnecting inside the client: a lost connection ends it,
                        # and this loop connects again (with back-off, stoppable) and
                        # positions the consumer afresh.
                        nc = await asyncio.wait_for(
                            nats.connect(
                                servers=self.urls,
                                name="factorysync-central",
                                allow_reconnect=False,
                                max_reconnect_attempts=1,  # each server tried twice
                                reconnect_time_wait=0.5,
                                connect_timeout=5,
                                error_cb=self._on_error,
                                disconnected_cb=self._on_disconnected,
                            ),
                            timeout=CONNECT_WAIT_S * len(self.urls),
                        )
                        log.info("central ingest connected to %s", self.safe_urls)
                    self.state.connected = True
                    await self._consume(nc.jetstream())
                    delay = BACKOFF_S[0]
                except Exception as exc:
                    self.state.connected = bool(nc is not None and nc.is_connected)
                    self._failed("the store" if _is_store_error(exc) else "the hub", exc)
                    if isinstance(exc, PositionMoved) and not await asyncio.to_thread(self._relock):
                        return  # stopped while waiting for the lock
                    await self._sleep(delay)
                    delay = min(delay * 2, BACKOFF_S[1])
        finally:
            self.state.connected = False
            if nc is not None and not nc.is_closed:
                with suppress(Exception):
                    await nc.close()

    async def _consume(self, js: Any) -> None:
        """Position the consumer after the last applied message, then fetch, apply and
        acknowledge batches until stopped (an error ends it: the caller starts over)."""
        await self._ensure_stream(js)
        sub = await self._position(js)
        loop = asyncio.get_running_loop()
        next_lag = loop.time()
        delivered = 0  # the consumer numbers its deliveries 1, 2, … (redeliveries too)
        try:
            while not self.stopping:
                try:
                    msgs = await sub.fetch(self.batch, timeout=FETCH_WAIT_S)
                except TimeoutError:
                    msgs = []
                # A delivery this ingest never received (lost with a connection to the
                # hub) would come again only after ack_wait, behind newer messages: the
                # rest of the batch waits, and the consumer starts again from the store.
                gap = next(
                    (
                        i
                        for i, m in enumerate(msgs)
                        if m.metadata.sequence.consumer != delivered + i + 1
                    ),
                    None,
                )
                if msgs[:gap]:
                    await self._apply(msgs[:gap])
                    delivered += len(msgs[:gap])
                if gap is not None:
                    raise _Gap(f"a delivery was lost: reading again after {self.state.position}")
                if loop.time() >= next_lag:
                    await self._measure_lag(js)
                    next_lag = loop.time() + self.lag_every_s
        finally:
            with suppress(Exception):
                await sub.unsubscribe()

    async def _apply(self, msgs: list[Any]) -> None:
        delivered = [Delivered(m.metadata.sequence.stream, m.subject, m.data) for m in msgs]
        result: BatchResult = await asyncio.to_thread(
            apply_batch, self.store, delivered, self.state.position
        )
        for m in msgs:  # after the commit: a lost ack only means a skipped redelivery
            await m.ack()
        state = self.state
        state.position = result.position
        state.applied += result.applied
        state.skipped += result.skipped
        state.rejected += result.rejected
        state.changed += result.changed
        for error in result.errors:
            log.warning("central ingest: %s", error)

    async def _ensure_stream(self, js: Any) -> None:
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import BadRequestError, NotFoundError

        try:
            await js.stream_info(self.stream)
            return
        except NotFoundError:
            pass
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{SUBJECT_PREFIX}.>"],
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_S,
        )
        try:
            await js.add_stream(config)
            log.info("central ingest created stream %s", self.stream)
        except BadRequestError:  # made meanwhile by a plant's publisher
            await js.stream_info(self.stream)

    async def _position(self, js: Any) -> Any:
        """The consumer, made again to deliver the message after the last applied one."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        info = await js.stream_info(self.stream)
        position = await asyncio.to_thread(self._stored_position, int(info.state.last_seq))
        self.state.position = position
        with suppress(NotFoundError):
            await js.delete_consumer(self.stream, CONSUMER)
        start = (
            {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": position + 1}
            if position
            else {"deliver_policy": DeliverPolicy.ALL}
        )
        config = ConsumerConfig(
            durable_name=CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_S,
            max_ack_pending=self.batch * 4,
            filter_subject=f"{SUBJECT_PREFIX}.>",
            **start,
        )
        await js.add_consumer(self.stream, config)
        log.info("central ingest reads stream %s after message %d", self.stream, position)
        return await js.pull_subscribe_bind(CONSUMER, stream=self.stream)

    def _stored_position(self, stream_last: int) -> int:
        with self.store.begin() as conn:
            position = applied_position(conn)
            if position > stream_last:
                # The stream numbers from 1 again (it was deleted and made anew).
                forgotten = forget_positions_after(conn, stream_last)
                log.warning(
                    "stream %s ends at message %d, before the last applied one (%d): it was "
                    "made again; reading it from the start (%d site tables)",
                    self.stream,
                    stream_last,
                    position,
                    forgotten,
                )
                position = applied_position(conn)
        return position

    async def _measure_lag(self, js: Any) -> None:
        try:
            pending = await count_pending(js, self.stream, self.state.position)
        except Exception as exc:  # the figures wait for the next round
            log.debug("central ingest: counting pending messages failed: %s", self._text(exc))
            return

        def save() -> None:
            with self.store.begin() as conn:
                save_pending(conn, pending, utcnow())

        await asyncio.to_thread(save)

    # -- reporting --------------------------------------------------------------------
    def _text(self, exc: BaseException) -> str:
        from factorysync.store.db import describe_db_error

        return self.redact(describe_db_error(exc) if _is_store_error(exc) else f"{exc!r}")

    def _failed(self, what: str, exc: BaseException) -> None:
        message = f"{what} failed: {self._text(exc)}"
        if message != self.state.last_error:
            log.warning("central ingest: %s; trying again", message)
        self.state.last_error = message

    async def _on_error(self, exc: Exception) -> None:
        log.debug("central ingest: NATS: %s", self._text(exc))

    async def _on_disconnected(self) -> None:
        self.state.connected = False
        if not self.stopping:
            log.warning("central ingest: disconnected from the hub")

    async def _sleep(self, seconds: float) -> None:
        end = asyncio.get_running_loop().time() + seconds
        while not self.stopping and asyncio.get_running_loop().time() < end:
            await asyncio.sleep(min(0.2, seconds))


class _Gap(Exception):
    """Deliveries were missed: the consumer is positioned again."""


def _is_store_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(exc, SQLAlchemyError | StoreError)
