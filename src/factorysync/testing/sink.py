"""An in-memory :class:`~factorysync.connectors.base.Sink`, for tests of streaming
connection types: it keeps what a stream hands over instead of writing it to the store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass
class Message:
    """One message a stream put into a :class:`MemorySink`."""

    records: list[Any]
    raw: Any
    error: str | None


class MemorySink:
    """A :class:`~factorysync.connectors.base.Sink` that keeps what a stream hands over:
    its messages, statuses, events and gaps.

    Acknowledgements wait for ``drain()``, as the realtime writer's wait for a commit,
    and so does the stream state put with the messages (``state()`` is the one of the
    last drain, or ``state`` given here); messages put after ``close()`` are only counted
    (``late``)."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._acks: list[Callable[[], None]] = []
        self._state: dict[str, Any] = dict(state or {})
        self._pending_state: dict[str, Any] | None = None
        self._closed = False
        self.messages: list[Message] = []
        self.statuses: list[tuple[str | None, str | None]] = []
        self.events: list[tuple[str, str]] = []
        self.gaps: list[tuple[datetime, datetime, str]] = []
        self.subscribed = threading.Event()
        self.acknowledged = 0
        self.late = 0

    def put(
        self,
        records: list[Any],
        *,
        raw: Any = None,
        error: str | None = None,
        ack: Callable[[], None] | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        with self._lock:
            if self._closed:
                self.late += 1
                return
            self.messages.append(Message(list(records), raw, error))
            if ack is not None:
                self._acks.append(ack)
            if state is not None:
                self._pending_state = state

    def state(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state)

    def status(self, error: str | None, *, subscribed: str | None = None) -> None:
        with self._lock:
            self.statuses.append((error, subscribed))
        if error is None and subscribed is not None:
            self.subscribed.set()

    def event(
        self,
        event: str,
        message: str,
        *,
        level: str = "info",
        details: dict[str, Any] | None = None,
    ) -> None:
        with self._lock:
            self.events.append((event, message))

    def gap(self, start: datetime, end: datetime, reason: str) -> None:
        with self._lock:
            self.gaps.append((start, end, reason))

    def drain(self) -> None:
        with self._lock:
            acks, self._acks = self._acks, []
            if self._pending_state is not None:
                self._state, self._pending_state = self._pending_state, None
        for ack in acks:
            ack()
        with self._lock:
            self.acknowledged += len(acks)

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def records(self) -> list[Any]:
        with self._lock:
            return [record for message in self.messages for record in message.records]
