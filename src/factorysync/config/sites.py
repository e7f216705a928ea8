"""Site declarations: the plants of a group (DESIGN §8), the optional top-level ``sites:``
list of a sources file.

A site's ``name`` is part of NATS subject names (``factorysync.<site>.<table>``), so it
follows :data:`factorysync.settings.SITE_NAME`. Its ``time_zone`` (IANA) is the default
zone of the naive timestamps its sources read (a connection's own ``timezone`` wins) and
the zone the console shows its times in. Its ``shifts`` are data: named spans of the
day, optionally on some weekdays only; a shift may run past midnight (``22:00``–
``06:00``). Two shifts that share a minute of the week are refused, naming both.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from factorysync.config.names import check_zone
from factorysync.settings import SITE_NAME, SITE_NAME_RULE

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
MINUTES_A_DAY = 24 * 60
MINUTES_A_WEEK = 7 * MINUTES_A_DAY


def check_site_name(value: Any, what: str = "site") -> str:
    """``value`` when it is a valid site name; else a keyed pydantic error."""
    if not isinstance(value, str) or not SITE_NAME.match(value):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise PydanticCustomError(
            "fs.bad_site_name",
            "{what} {name} is not a valid site name: " + SITE_NAME_RULE,
            {"what": what, "name": shown},
        )
    return value


def minute_of_day(hhmm: str) -> int:
    """Minutes after midnight of a validated ``HH:MM``."""
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


class ShiftDecl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64)
    start: str = Field(description="Start, HH:MM (24 h) in the site's time zone.")
    end: str = Field(description="End, HH:MM; before start: the shift ends the next day.")
    days: list[Day] | None = Field(
        default=None, description="Weekdays the shift starts on (mon … sun); all when left out."
    )

    @field_validator("name")
    @classmethod
    def _named(cls, v: str) -> str:
        if not v.strip():
            raise PydanticCustomError("fs.shift_unnamed", "a shift needs a name")
        return v

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hhmm(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MINUTES_A_DAY:
            # YAML 1.1 reads an unquoted 22:30 as the sexagesimal number 1350.
            v = f"{v // 60:02d}:{v % 60:02d}"
        if not isinstance(v, str) or not HHMM.match(v):
            raise PydanticCustomError(
                "fs.bad_time_of_day",
                "{value} is not a time of day: use HH:MM (24 h), e.g. 06:00",
                {"value": repr(v)[:40]},
            )
        return v

    @field_validator("days")
    @classmethod
    def _distinct_days(cls, v: list[Day] | None) -> list[Day] | None:
        if v is not None and not v:
            raise PydanticCustomError(
                "fs.shift_no_days", "days is empty: leave it out for every day"
            )
        if v is not None and len(set(v)) != len(v):
            raise PydanticCustomError("fs.shift_days_repeated", "a weekday is repeated")
        return v

    @model_validator(mode="after")
    def _has_length(self) -> ShiftDecl:
        if self.start == self.end:
            raise PydanticCustomError(
                "fs.shift_empty", "start and end are the same: a shift needs a length"
            )
        return self

    def spans(self) -> list[tuple[int, int]]:
        """Minute-of-week spans [begin, end) the shift covers (Monday 00:00 is 0); a span
        past Sunday midnight is split in two."""
        start, end = minute_of_day(self.start), minute_of_day(self.end)
        length = (end - start) % MINUTES_A_DAY
        found = []
        for day in self.days or DAYS:
            begin = DAYS.index(day) * MINUTES_A_DAY + start
            stop = begin + length
            if stop <= MINUTES_A_WEEK:
                found.append((begin, stop))
            else:
                found += [(begin, MINUTES_A_WEEK), (0, stop - MINUTES_A_WEEK)]
        return found

    def covers(self, local: datetime) -> bool:
        """Whether the shift runs at ``local`` (a wall-clock time of the site's zone)."""
        minute = local.weekday() * MINUTES_A_DAY + local.hour * 60 + local.minute
        return any(begin <= minute < stop for begin, stop in self.spans())


class SiteDecl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    time_zone: str | None = Field(
        default=None,
        description="IANA zone: the default zone of the naive timestamps the site's sources "
        "read (a connection's own timezone wins), and of the console's times for the site.",
    )
    description: str | None = None
    shifts: list[ShiftDecl] = Field(default_factory=list)

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v: Any) -> Any:
        return check_site_name(v, "name")

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return check_zone(v)

    @model_validator(mode="after")
    def _shifts_apart(self) -> SiteDecl:
        names = [s.name for s in self.shifts]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise PydanticCustomError(
                "fs.shift_repeated",
                "shift name {names} repeated",
                {"names": ", ".join(repr(n) for n in repeated)},
            )
        for i, shift in enumerate(self.shifts):
            for j in range(i):
                other = self.shifts[j]
                if _overlap(shift.spans(), other.spans()):
                    raise PydanticCustomError(
                        "fs.shift_overlap",
                        "shifts[{i}] ({name}) overlaps shifts[{j}] ({other})",
                        {"i": str(i), "name": repr(shift.name), "j": str(j)}
                        | {"other": repr(other.name)},
                    )
        return self

    def shift_at(self, instant: datetime) -> tuple[ShiftDecl | None, datetime]:
        """The shift running at an aware ``instant`` (None between shifts), and the
        instant as the site's wall-clock time (UTC for a site without a zone)."""
        local = instant.astimezone(ZoneInfo(self.time_zone or "UTC"))
        found = next((s for s in self.shifts if s.covers(local)), None)
        return found, local

    def shift_start(self, shift: ShiftDecl, local: datetime) -> datetime:
        """The wall-clock start of the run of ``shift`` covering ``local``."""
        start = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
            minutes=minute_of_day(shift.start)
        )
        return start if start <= local else start - timedelta(days=1)

    def stored(self) -> dict[str, Any]:
        """The registry row's values."""
        return {
            "time_zone": self.time_zone,
            "description": self.description,
            "shifts": [s.model_dump(exclude_none=True) for s in self.shifts] or None,
        }


def _overlap(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)


def site_from_row(row: dict[str, Any]) -> SiteDecl:
    """A stored site as a declaration (its values were validated when it was saved)."""
    return SiteDecl.model_validate(
        {
            "name": row["name"],
            "time_zone": row.get("time_zone"),
            "description": row.get("description"),
            "shifts": row.get("shifts") or [],
        }
    )
