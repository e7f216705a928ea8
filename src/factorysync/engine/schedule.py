"""When a stored source runs: its cadence, and the next time it is due.

The rule itself (``schedule``, ``refresh_interval``, ``sync_frequency``) is the
declarations' (:mod:`factorysync.config.cadence`); here the connector registry tells
which connection types the scheduler never runs: streamed types (MQTT, OPC UA
subscriptions) and pushed ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from factorysync.config.cadence import (
    DEFAULT_INTERVAL_S,
    FREQUENCY_SECONDS,
    declared_refresh_interval,
    frequency_of,
    span,
)
from factorysync.connectors.registry import types_with


@dataclass(frozen=True)
class Cadence:
    """When a source runs, and what in its declaration says so.

    ``kind``: ``interval`` (polled every ``seconds``), ``cron`` (polled on ``schedule``),
    ``subscription`` (MQTT, OPC UA: continuous) or ``push`` (written when posted to).
    ``set_by``: the declaration that decides it, e.g. ``sync_frequency daily``.
    """

    kind: str
    seconds: float | None
    set_by: str
    text: str
    schedule: str | None = None

    @property
    def polled(self) -> bool:
        """Whether the scheduler runs the source (and ``next_sync`` means something)."""
        return self.kind in ("interval", "cron")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _interval(source: Mapping[str, Any]) -> tuple[float, str]:
    """(seconds, what sets them) of a polled source without a ``schedule``."""
    declared = declared_refresh_interval(source)
    if declared is not None:
        return float(declared), "refresh_interval"
    frequency = frequency_of(source.get("mappings"))
    if frequency is not None:
        return float(FREQUENCY_SECONDS[frequency]), f"sync_frequency {frequency}"
    return float(DEFAULT_INTERVAL_S), "default"


def cadence(source: Mapping[str, Any], timezone: str | None = None) -> Cadence:
    """The cadence of a stored source (a registry row; with its ``mappings`` for the
    frequency; without them, ``refresh_interval`` holds the interval in effect)."""
    kind = source.get("connection_type")
    if kind in types_with("streams"):
        return Cadence(
            "subscription", None, f"{kind} subscription", f"continuous ({kind} subscription)"
        )
    if kind in types_with("pushes"):
        return Cadence("push", None, "push", "when records are pushed (POST /api/ingest)")
    cron = source.get("schedule")
    if cron:
        zone = timezone or _plant_zone()
        return Cadence("cron", None, "schedule", f"cron '{cron}' ({zone})", cron)
    seconds, set_by = _interval(source)
    return Cadence("interval", seconds, set_by, f"every {span(seconds)} ({set_by})")


def _plant_zone() -> str:
    from factorysync.settings import get_settings

    return get_settings().timezone


def interval_seconds(source: Mapping[str, Any]) -> float:
    """Seconds between runs of a stored source without a ``schedule``."""
    return _interval(source)[0]


def next_due(source: Mapping[str, Any], after: datetime, timezone: str | None = None) -> datetime:
    """The next time ``source`` should run after ``after`` (UTC)."""
    cron = source.get("schedule")
    if cron:
        from croniter import croniter

        zone = ZoneInfo(timezone or _plant_zone())
        nxt: datetime = croniter(cron, after.astimezone(zone)).get_next(datetime)
        return nxt.astimezone(UTC)
    return after + timedelta(seconds=interval_seconds(source))
