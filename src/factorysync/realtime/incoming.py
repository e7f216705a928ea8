"""One message a realtime or push source received, on its way through the writer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("factorysync.realtime")


@dataclass
class Incoming:
    """One received message: its records, or why it has none."""

    records: list[Any]
    # What quarantine keeps of the message when it is refused (e.g. topic and payload).
    raw: Any = None
    error: str | None = None
    # Called after the flush holding this message committed (e.g. the MQTT PUBACK). An
    # ack with a ``together`` attribute is sent with the others of the same ``together``
    # in one call, ``together(acks)`` (see :func:`acknowledge`).
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


def acknowledge(items: Iterable[Incoming], source_id: str) -> None:
    """Acknowledge ``items``: an ack that can be sent together with others (it has
    ``together``) once per group, any other one by itself. A failed acknowledgement is
    logged: the message is then delivered again, which is harmless."""
    groups: dict[Any, list[Any]] = {}
    for item in items:
        ack = item.ack
        if ack is None:
            continue
        together = getattr(ack, "together", None)
        if together is not None:
            groups.setdefault(together, []).append(ack)
            continue
        try:
            ack()
        except Exception as exc:
            log.debug("%s: acknowledgement failed: %s", source_id, exc)
    for together, acks in groups.items():
        try:
            together(acks)
        except Exception as exc:
            log.debug("%s: acknowledgement failed: %s", source_id, exc)
