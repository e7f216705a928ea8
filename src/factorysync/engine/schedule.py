"""When a source is due next: its ``schedule`` (cron), else the shortest of its
``refresh_interval`` and its active mappings' ``sync_frequency``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

FREQUENCY_SECONDS = {"realtime": 5, "minute": 60, "hourly": 3600, "daily": 86400}


def check_cron(expression: str) -> str:
    from croniter import croniter

    if not croniter.is_valid(expression):
        raise ValueError(
            f"schedule {expression!r} is not a valid cron expression "
            "(five fields: minute hour day-of-month month day-of-week, e.g. '*/15 6-22 * * *')"
        )
    return expression


def interval_seconds(source: dict[str, Any]) -> float:
    candidates = [float(source.get("refresh_interval") or 300)]
    for mapping in source.get("mappings") or []:
        frequency = mapping.get("sync_frequency")
        if mapping.get("is_active", True) and frequency in FREQUENCY_SECONDS:
            candidates.append(FREQUENCY_SECONDS[frequency])
    return min(candidates)


def next_due(source: dict[str, Any], after: datetime, timezone: str | None = None) -> datetime:
    """The next time ``source`` should run after ``after`` (UTC)."""
    cron = source.get("schedule")
    if cron:
        from croniter import croniter

        from factorysync.settings import get_settings

        zone = ZoneInfo(timezone or get_settings().timezone)
        nxt = croniter(cron, after.astimezone(zone)).get_next(datetime)
        return nxt.astimezone(UTC)
    return after + timedelta(seconds=interval_seconds(source))
