"""When a source runs: one rule for ``schedule``, ``refresh_interval`` and ``sync_frequency``.

- MQTT and OPC UA sources run continuously (subscriptions) and push sources take what is
  posted to them: the scheduler never runs them, whatever else they declare.
- ``schedule`` (five-field cron, in the plant's time zone) is the cadence when it is set.
- Otherwise the cadence is an interval: ``refresh_interval`` when it is declared, else the
  mappings' ``sync_frequency`` (:data:`FREQUENCY_SECONDS`: ``realtime`` is the fastest
  poll, 5 s), else :data:`DEFAULT_INTERVAL_S`.

A source has one cadence, because all its mappings run in each of its runs. Declarations
that say two different things are refused where they enter (``apply``, the API, the
console; see :func:`cadence_problems`): a ``schedule`` with a ``refresh_interval`` or a
``sync_frequency``, a ``refresh_interval`` and a ``sync_frequency`` of different cadences,
and mappings of different frequencies.

The registry keeps the interval in effect in ``refresh_interval`` (a daily source stores
86,400), so every reader of that column sees the truth. A source stored before this rule
may still hold the old default 300 next to a frequency: the frequency then wins, as the
rule says for a ``refresh_interval`` that was not declared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from factorysync.connectors.registry import types_with

REALTIME_POLL_S = 5
FREQUENCY_SECONDS = {"realtime": REALTIME_POLL_S, "minute": 60, "hourly": 3600, "daily": 86400}
DEFAULT_INTERVAL_S = 300


def check_cron(expression: str) -> str:
    from croniter import croniter

    if not croniter.is_valid(expression):
        raise ValueError(
            f"schedule {expression!r} is not a valid cron expression "
            "(five fields: minute hour day-of-month month day-of-week, e.g. '*/15 6-22 * * *')"
        )
    return expression


def span(seconds: float) -> str:
    """``24 h``, ``5 min``, ``90 s``: an interval as people say it."""
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g} s"
    if whole >= 3600 and whole % 3600 == 0:
        return f"{whole // 3600} h"
    if whole >= 60 and whole % 60 == 0:
        return f"{whole // 60} min"
    return f"{whole} s"


# -- declarations ----------------------------------------------------------------------
def _get(item: Any, key: str, default: Any = None) -> Any:
    return item.get(key, default) if isinstance(item, Mapping) else getattr(item, key, default)


def frequencies(mappings: Iterable[Any] | None) -> list[tuple[int, str]]:
    """(index, sync_frequency) of the active mappings that declare one (dicts or models)."""
    return [
        (i, _get(m, "sync_frequency"))
        for i, m in enumerate(mappings or [])
        if _get(m, "is_active", True) and _get(m, "sync_frequency") in FREQUENCY_SECONDS
    ]


def frequency_of(mappings: Iterable[Any] | None) -> str | None:
    """The frequency the active mappings declare (the fastest, should they differ)."""
    found = [f for _, f in frequencies(mappings)]
    return min(found, key=FREQUENCY_SECONDS.__getitem__) if found else None


def cadence_problems(
    *,
    refresh_interval: int | None,
    schedule: str | None,
    mappings: Iterable[Any] | None,
    connection_type: str | None,
) -> list[str]:
    """Why a declaration's cadence is ambiguous (empty when it is not).

    ``refresh_interval`` is None when it was not declared. Each problem starts with the
    field it is about (``refresh_interval: …``), so forms can show it next to that field.
    """
    if connection_type in types_with("streams") + types_with("pushes"):
        return []  # never scheduled: neither value sets when it runs
    declared = frequencies(mappings)
    problems = []
    if schedule and refresh_interval is not None:
        problems.append(
            f"refresh_interval: {refresh_interval} s and schedule {schedule!r} both set when "
            "the source runs: keep one of them"
        )
    if schedule and declared:
        i, frequency = declared[0]
        problems.append(
            f"schedule: {schedule!r} and mappings[{i}].sync_frequency {frequency!r} both set "
            "when the source runs: keep one of them"
        )
    for (i, first), (j, other) in pairwise(declared):
        if FREQUENCY_SECONDS[first] != FREQUENCY_SECONDS[other]:
            problems.append(
                f"mappings[{j}].sync_frequency: {other!r} differs from mappings[{i}]."
                f"sync_frequency {first!r}: the mappings of a source run together, at one "
                "cadence; give them the same frequency, or make them two sources"
            )
            break
    if refresh_interval is not None and not schedule and declared:
        i, frequency = declared[0]
        seconds = FREQUENCY_SECONDS[frequency]
        if refresh_interval != seconds:
            problems.append(
                f"refresh_interval: {refresh_interval} s differs from mappings[{i}]."
                f"sync_frequency {frequency!r} (every {span(seconds)}): declare one of them, "
                "or make them agree"
            )
    return problems


def interval_for(refresh_interval: int | None, mappings: Iterable[Any] | None) -> int:
    """The interval in effect for a declaration (``refresh_interval`` None: not declared)."""
    if refresh_interval is not None:
        return refresh_interval
    frequency = frequency_of(mappings)
    return FREQUENCY_SECONDS[frequency] if frequency else DEFAULT_INTERVAL_S


def declared_refresh_interval(source: Mapping[str, Any]) -> int | None:
    """A stored source's ``refresh_interval`` as it was declared: None when the stored
    value is only what the frequency (or the default) gives."""
    stored = source.get("refresh_interval")
    if stored is None:
        return None
    frequency = frequency_of(source.get("mappings"))
    if frequency is not None and stored in (FREQUENCY_SECONDS[frequency], DEFAULT_INTERVAL_S):
        return None
    if frequency is None and stored == DEFAULT_INTERVAL_S:
        return None
    return int(stored)


# -- stored sources --------------------------------------------------------------------
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
        nxt = croniter(cron, after.astimezone(zone)).get_next(datetime)
        return nxt.astimezone(UTC)
    return after + timedelta(seconds=interval_seconds(source))
