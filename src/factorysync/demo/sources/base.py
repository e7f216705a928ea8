"""What a demo data set is made of: its spec, the context its rows are drawn in, shared helpers.

A data set is a row generator plus the facts the dashboard's front end knows
about its file (legacy id, name, path, key).  Generators take a
:class:`SourceContext` and yield plain records, so the writer can stream them
and the size planner can price them without writing anything.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from factorysync.demo.plant import Plant
from factorysync.demo.staff import people, shift_group
from factorysync.demo.timeline import calendar_day, iso_day, stamp

Record = dict[str, Any]

# How a file grows with the requested data set size: not at all (reference data),
# with the days of history, or with the days and the sampling interval.
FIXED = "fixed"
DAILY = "daily"
INTERVAL = "interval"


@dataclass
class SourceContext:
    """What a source's row generator may use: the shared plant and its own random stream."""

    plant: Plant
    days: int
    interval_min: int
    rng: random.Random

    @property
    def updated_at(self) -> str:
        return stamp(self.days, 0)

    def working_days(self) -> Iterator[int]:
        return (d for d in range(self.days) if calendar_day(d).is_working)


RowsFn = Callable[[SourceContext], Iterable[Record]]
HeaderFn = Callable[[SourceContext], Record]


@dataclass(frozen=True)
class SourceSpec:
    """One dashboard file: its legacy id and name, where it goes, its key and its rows."""

    id: int
    name: str
    file_name: str
    category: str
    primary_key: tuple[str, ...]
    rows: RowsFn
    scaling: str = DAILY
    records_path: str | None = None
    header: HeaderFn | None = None

    @property
    def file_path(self) -> str:
        return f"data/{self.category}/{self.file_name}"


def header(unit: str, **extra: Any) -> HeaderFn:
    """Metadata written before the record list of wrapped files."""

    def build(ctx: SourceContext) -> Record:
        return {"updated_at": ctx.updated_at, "plant": "Cikarang", "unit": unit, **extra}

    return build


def interval_header(unit: str) -> HeaderFn:
    def build(ctx: SourceContext) -> Record:
        return {
            "updated_at": ctx.updated_at,
            "plant": "Cikarang",
            "unit": unit,
            "interval_min": ctx.interval_min,
        }

    return build


def kpi_header(code: str, description: str, unit: str) -> HeaderFn:
    def build(ctx: SourceContext) -> Record:
        return {
            "kpi": code,
            "description": description,
            "unit": unit,
            "updated_at": ctx.updated_at,
            "period_start": iso_day(0),
            "period_end": iso_day(ctx.days - 1),
        }

    return build


def ratio(value: float) -> float:
    """A 0-1 factor as the dashboards show it: four decimals."""
    return round(value, 4)


def pct(part: float, whole: float, digits: int = 2) -> float:
    """``part`` as a percentage of ``whole``; 0 when there is no whole, as on a day off."""
    return round(100 * part / whole, digits) if whole else 0.0


def operator_nik(ctx: SourceContext, day: int, shift: str, line: str | None) -> str:
    """NIK of someone from the crew on that shift (and line), drawn from the source's stream."""
    group = shift_group(day, shift)
    crew = [p for p in people() if p.group == group and (line is None or p.line == line)]
    return ctx.rng.choice(crew).nik
