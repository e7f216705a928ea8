"""Calendar data sets: the production calendar, the shift roster and the shift definitions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from factorysync.demo.sources.base import Record, SourceContext
from factorysync.demo.staff import people, shift_group, staff_with_role
from factorysync.demo.timeline import (
    BASE_DATE,
    DAY_NAMES_ID,
    SHIFT_LEN_MIN,
    SHIFT_PLANNED_MIN,
    SHIFTS,
    calendar_day,
    iso_day,
    stamp,
)


def production_calendar(ctx: SourceContext) -> Iterator[Record]:
    for d in range(ctx.days):
        cal = calendar_day(d)
        iso_year, week, _ = (BASE_DATE + timedelta(days=d)).isocalendar()
        yield {
            "date": cal.iso,
            "day_name": DAY_NAMES_ID[cal.weekday],
            "week": f"{iso_year}-W{week:02d}",
            "is_working_day": cal.is_working,
            "holiday_name": cal.holiday,
            "shifts": list(cal.shifts),
            "planned_hours": round(cal.planned_min / 60, 1),
            "note": "Libur nasional"
            if cal.holiday
            else "Minggu"
            if cal.weekday == 6
            else "Sabtu 2 shift"
            if cal.weekday == 5
            else None,
        }


def shift_schedule(ctx: SourceContext) -> Iterator[Record]:
    leaders = staff_with_role("Group Leader")
    for d in ctx.working_days():
        for i, s in enumerate(calendar_day(d).shifts):
            group = shift_group(d, s)
            start = i * SHIFT_LEN_MIN
            crew = [p for p in people() if p.group == group]
            yield {
                "date": iso_day(d),
                "shift": s,
                "group": group,
                "leader": next(p.name for p in leaders if p.group == group),
                "start_ts": stamp(d, start),
                "end_ts": stamp(d, start + SHIFT_LEN_MIN),
                "break_start_ts": stamp(d, start + 270),
                "break_end_ts": stamp(d, start + 330),
                "planned_min": SHIFT_PLANNED_MIN,
                "headcount_plan": len(crew),
            }


def shift_definitions(ctx: SourceContext) -> Iterator[Record]:
    for s in SHIFTS:
        yield {
            "shift_id": s.id,
            "name": s.name,
            "start": s.start,
            "end": s.end,
            "break_start": s.break_start,
            "break_end": s.break_end,
            "planned_min": SHIFT_PLANNED_MIN,
            "crosses_midnight": s.end < s.start,
            "working_days": ["Senin", "Selasa", "Rabu", "Kamis", "Jumat"]
            + (["Sabtu"] if s.id != "S3" else []),
        }
