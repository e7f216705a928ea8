"""One message a realtime or push source received, on its way through the writer."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Incoming:
    """One received message: its records, or why it has none."""

    records: list[Any]
    # What quarantine keeps of the message when it is refused (e.g. topic and payload).
    raw: Any = None
    error: str | None = None
    # Called after the flush holding this message committed (e.g. the MQTT PUBACK).
    ack: Callable[[], None] | None = None
    # The stream's state as of this message (``Sink.put(state=...)``), stored by the
    # flush that commits it; None: unchanged.
    state: dict[str, Any] | None = None
    received: float = field(default_factory=time.monotonic)
    received_at: float = field(default_factory=time.time)  # the same, on the wall clock
    # Its sequence number in the spool, for a message read back from there.
    spool_seq: int | None = None
    # Acknowledged once in the local spool; the store has it once the backlog is written.
    spooled: bool = False
    # Filled by the flush that commits it: why records were refused (quarantined).
    rejections: list[str] = field(default_factory=list)
    # The history run (window) the message was counted in.
    run_id: int | None = None
