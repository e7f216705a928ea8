"""The demo plant's clock: production days, shifts, holidays and timestamps.

Day numbers, not dates, are what the plant model and the data sets count in:
day 0 is a fixed Monday, so a file never depends on the date it was generated
on.  A production day starts at 07:00 plant time (UTC+7) and the night shift
ends the next morning, which is why :func:`stamp` may carry the next date.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

BASE_DATE = date(2026, 1, 5)
TZ_OFFSET = "+07:00"
DAY_START_MIN = 7 * 60
SHIFT_IDS = ("S1", "S2", "S3")
SHIFT_LEN_MIN = 480
# Planned minutes for each hour of a shift: the one-hour break is split over
# hours five and six (e.g. 11:30-12:30 in the morning shift).
SHIFT_HOUR_PLAN = (60, 60, 60, 60, 30, 30, 60, 60)
SHIFT_PLANNED_MIN = sum(SHIFT_HOUR_PLAN)
DAY_NAMES_ID = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")


@dataclass(frozen=True)
class Shift:
    id: str
    name: str
    start: str
    end: str
    break_start: str
    break_end: str


SHIFTS = (
    Shift("S1", "Shift 1 (Pagi)", "07:00", "15:00", "11:30", "12:30"),
    Shift("S2", "Shift 2 (Siang)", "15:00", "23:00", "19:30", "20:30"),
    Shift("S3", "Shift 3 (Malam)", "23:00", "07:00", "03:30", "04:30"),
)


@lru_cache(maxsize=4096)
def iso_day(day: int) -> str:
    """ISO date of production day ``day`` (0 is the fixed base date)."""
    return (BASE_DATE + timedelta(days=day)).isoformat()


def stamp(day: int, minute: int) -> str:
    """Timestamp ``minute`` minutes after 07:00 on production day ``day``.

    A production day runs from 07:00 to 07:00 the next morning, so the night
    shift's records carry the next calendar date.
    """
    extra, rem = divmod(DAY_START_MIN + minute, 1440)
    return f"{iso_day(day + extra)}T{rem // 60:02d}:{rem % 60:02d}:00{TZ_OFFSET}"


def stamp_s(day: int, second: int) -> str:
    """Like :func:`stamp` with second resolution, for short events such as andon calls."""
    extra, rem = divmod(DAY_START_MIN * 60 + second, 86400)
    hh, rest = divmod(rem, 3600)
    return f"{iso_day(day + extra)}T{hh:02d}:{rest // 60:02d}:{rest % 60:02d}{TZ_OFFSET}"


def yymmdd(day: int) -> str:
    return iso_day(day)[2:].replace("-", "")


def clock_hour(hour_index: int) -> int:
    """Wall-clock hour of the ``hour_index``-th hour of a production day."""
    return (7 + hour_index) % 24


def ambient_c(hour_index: int) -> float:
    """Shop-floor ambient temperature in Cikarang: ~26 C before dawn, ~32 C mid-afternoon."""
    return 29.0 + 3.0 * math.sin(2 * math.pi * (clock_hour(hour_index) - 9) / 24)


HOLIDAYS_2026 = {
    "2026-01-01": "Tahun Baru Masehi",
    "2026-01-16": "Isra Mikraj Nabi Muhammad SAW",
    "2026-02-17": "Tahun Baru Imlek",
    "2026-03-19": "Hari Suci Nyepi",
    "2026-03-20": "Idul Fitri 1447 H",
    "2026-03-21": "Idul Fitri 1447 H",
    "2026-04-03": "Wafat Yesus Kristus",
    "2026-05-01": "Hari Buruh Internasional",
    "2026-05-14": "Kenaikan Yesus Kristus",
    "2026-05-27": "Idul Adha 1447 H",
    "2026-05-31": "Hari Raya Waisak",
    "2026-06-01": "Hari Lahir Pancasila",
    "2026-06-16": "Tahun Baru Islam 1448 H",
    "2026-08-17": "Hari Kemerdekaan RI",
    "2026-08-25": "Maulid Nabi Muhammad SAW",
    "2026-12-25": "Hari Raya Natal",
}
FIXED_HOLIDAYS = {
    "01-01": "Tahun Baru Masehi",
    "05-01": "Hari Buruh Internasional",
    "06-01": "Hari Lahir Pancasila",
    "08-17": "Hari Kemerdekaan RI",
    "12-25": "Hari Raya Natal",
}


@dataclass(frozen=True)
class CalendarDay:
    index: int
    iso: str
    weekday: int
    holiday: str | None
    shifts: tuple[str, ...]

    @property
    def is_working(self) -> bool:
        return bool(self.shifts)

    @property
    def planned_min(self) -> int:
        return len(self.shifts) * SHIFT_PLANNED_MIN

    @property
    def span_min(self) -> int:
        """Minutes from 07:00 until the last shift of the day ends."""
        return len(self.shifts) * SHIFT_LEN_MIN


@lru_cache(maxsize=4096)
def calendar_day(day: int) -> CalendarDay:
    """Working pattern: three shifts Monday-Friday, two on Saturday, off Sundays and holidays."""
    iso = iso_day(day)
    weekday = (BASE_DATE + timedelta(days=day)).weekday()
    holiday = HOLIDAYS_2026.get(iso) if iso.startswith("2026") else FIXED_HOLIDAYS.get(iso[5:])
    if holiday or weekday == 6:
        shifts: tuple[str, ...] = ()
    elif weekday == 5:
        shifts = SHIFT_IDS[:2]
    else:
        shifts = SHIFT_IDS
    return CalendarDay(day, iso, weekday, holiday, shifts)


@lru_cache(maxsize=4096)
def hour_plan(day: int) -> tuple[int, ...]:
    """Planned production minutes for each of the 24 hours of a production day."""
    shifts = calendar_day(day).shifts
    return tuple(SHIFT_HOUR_PLAN[h % 8] if SHIFT_IDS[h // 8] in shifts else 0 for h in range(24))


def shift_of_hour(hour_index: int) -> str:
    return SHIFT_IDS[hour_index // 8]
