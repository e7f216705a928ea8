"""When a source runs, as declared: one rule for ``schedule``, ``refresh_interval`` and
``sync_frequency``.

- Sources of a streaming connection type (MQTT, OPC UA: subscriptions) and of a pushed
  one take what arrives: the scheduler never runs them, whatever else they declare.
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

The cadence of a stored source, and when it is next due, is
:mod:`factorysync.engine.schedule`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import pairwise
from typing import Any

from pydantic_core import PydanticCustomError

REALTIME_POLL_S = 5
FREQUENCY_SECONDS = {"realtime": REALTIME_POLL_S, "minute": 60, "hourly": 3600, "daily": 86400}
DEFAULT_INTERVAL_S = 300


def check_cron(expression: str) -> str:
    from croniter import croniter

    if not croniter.is_valid(expression):
        raise PydanticCustomError(
            "fs.bad_cron",
            "schedule {schedule} is not a valid cron expression "
            "(five fields: minute hour day-of-month month day-of-week, e.g. '*/15 6-22 * * *')",
            {"schedule": repr(expression)},
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
    scheduled: bool,
) -> list[str]:
    """Why a declaration's cadence is ambiguous (empty when it is not).

    ``refresh_interval`` is None when it was not declared; ``scheduled``: whether the
    scheduler runs sources of the declared connection type (streamed and pushed types
    it never runs, so neither value sets when they run). Each problem starts with the
    field it is about (``refresh_interval: …``), so forms can show it next to that field.
    """
    if not scheduled:
        return []
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
