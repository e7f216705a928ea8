"""Deterministic day-by-day model of the demo plant, shared by every data set.

The plant model (product campaigns, per-machine availability, performance and
quality, downtime events) is shared by every source so that related files
agree: a machine's OEE matches its produced and rejected counts, downtime per
machine matches the downtime event log, and line targets and actuals match the
hourly production records.  Each source still draws its own noise from a
private ``random.Random`` so files stay independent of each other.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from factorysync.demo.catalogue import (
    LINES,
    MACHINE_BY_ID,
    MACHINES,
    MACHINES_BY_LINE,
    PRODUCT_BY_CODE,
    PRODUCTS_BY_LINE,
    REASONS,
    TARGET_OEE,
    Line,
    Machine,
)
from factorysync.demo.timeline import calendar_day, hour_plan, shift_of_hour

T = TypeVar("T")

# Output per planned minute relative to the morning shift: crews slow down at night.
SHIFT_PACE = {"S1": 1.0, "S2": 0.97, "S3": 0.91}

# Stops drawn at random to fill a machine's downtime; breakdowns and changeovers
# (weight 0) are placed on purpose instead.
_RANDOM_REASONS = tuple(r for r in REASONS if r.weight > 0)
_RANDOM_REASON_WEIGHTS = tuple(r.weight for r in _RANDOM_REASONS)


class DaySequence(Generic[T]):
    """Values built day by day from one generator.

    Reading day 40 before day 3 yields the same history as reading in order,
    so sources can consult the model in any order and stay deterministic.
    """

    def __init__(self, rng: random.Random, step: Callable[[random.Random, T | None, int], T]):
        self._rng = rng
        self._step = step
        self._values: list[T] = []

    def __getitem__(self, day: int) -> T:
        while len(self._values) <= day:
            prev = self._values[-1] if self._values else None
            self._values.append(self._step(self._rng, prev, len(self._values)))
        return self._values[day]


@dataclass(frozen=True)
class Profile:
    availability: float
    performance: float
    quality: float
    breakdown_rate: float
    ct_factor: float


@dataclass(frozen=True)
class Factors:
    availability: float
    performance: float
    quality: float
    breakdown_loss: float

    @property
    def breakdown(self) -> bool:
        return self.breakdown_loss > 0


@dataclass(frozen=True)
class CampaignDay:
    product: str
    changeover_from: str | None
    changeover_min: int
    campaign: int
    remaining: int


@dataclass(frozen=True)
class MachineDay:
    product: str
    planned_min: int
    run_min: int
    downtime_min: int
    ideal_ct_s: float
    total: int
    reject: int
    breakdown: bool

    @property
    def good(self) -> int:
        return self.total - self.reject

    @property
    def availability(self) -> float:
        return self.run_min / self.planned_min

    @property
    def performance(self) -> float:
        return self.total * self.ideal_ct_s / (self.run_min * 60)

    @property
    def quality(self) -> float:
        return self.good / self.total if self.total else 1.0


@dataclass(frozen=True)
class LineDay:
    product: str
    changeover_from: str | None
    planned_min: int
    availability: float
    performance: float
    quality: float
    total: int
    reject: int
    target: int

    @property
    def good(self) -> int:
        return self.total - self.reject

    @property
    def oee(self) -> float:
        return self.availability * self.performance * self.quality


@dataclass(frozen=True)
class HourSlot:
    hour: int
    shift: str
    planned_min: int
    total: int
    reject: int


@dataclass(frozen=True)
class DowntimeEvent:
    machine: str
    start_min: int
    duration_min: int
    reason: str


def clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def allocate(total: int, weights: list[float]) -> list[int]:
    """Split an integer total proportionally to weights (largest remainder), summing exactly."""
    weight_sum = sum(weights)
    if total <= 0 or weight_sum <= 0:
        return [0] * len(weights)
    shares = [total * w / weight_sum for w in weights]
    parts = [int(s) for s in shares]
    order = sorted(range(len(weights)), key=lambda i: (parts[i] - shares[i], i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


class Plant:
    """Deterministic day-by-day state of the plant for one seed."""

    def __init__(self, seed: int):
        self.seed = seed
        profile_rng = self.rng("profiles")
        self.profiles = {m.id: _profile(profile_rng, m) for m in MACHINES}
        self._factors = {
            m.id: DaySequence(self.rng("factors", m.id), self._factor_step(self.profiles[m.id]))
            for m in MACHINES
        }
        self._campaigns = {
            line.id: DaySequence(self.rng("campaigns", line.id), _campaign_step(line))
            for line in LINES
        }
        self._machine_days: dict[tuple[str, int], MachineDay | None] = {}
        self._line_days: dict[tuple[str, int], LineDay | None] = {}
        self._hours: dict[tuple[str, int], tuple[HourSlot, ...]] = {}
        self._events: dict[tuple[str, int], tuple[DowntimeEvent, ...]] = {}

    def rng(self, *parts: object) -> random.Random:
        """A generator keyed by seed and purpose; string seeds hash identically on every run."""
        return random.Random(":".join(["factorysync-demo", str(self.seed), *map(str, parts)]))

    @staticmethod
    def _factor_step(profile: Profile) -> Callable[[random.Random, Factors | None, int], Factors]:
        def step(rng: random.Random, prev: Factors | None, day: int) -> Factors:
            base = prev or Factors(profile.availability, profile.performance, profile.quality, 0.0)
            a = profile.availability + 0.6 * (base.availability - profile.availability)
            p = profile.performance + 0.6 * (base.performance - profile.performance)
            q = profile.quality + 0.6 * (base.quality - profile.quality)
            return Factors(
                clamp(a + rng.gauss(0, 0.018), 0.70, 0.985),
                clamp(p + rng.gauss(0, 0.015), 0.75, 0.99),
                clamp(q + rng.gauss(0, 0.004), 0.94, 0.998),
                rng.uniform(0.10, 0.28) if rng.random() < profile.breakdown_rate else 0.0,
            )

        return step

    def campaign(self, line: str, day: int) -> CampaignDay:
        return self._campaigns[line][day]

    def factors(self, machine: str, day: int) -> Factors:
        return self._factors[machine][day]

    def machine_day(self, machine: str, day: int) -> MachineDay | None:
        key = (machine, day)
        if key not in self._machine_days:
            self._machine_days[key] = self._build_machine_day(machine, day)
        return self._machine_days[key]

    def working_machine_day(self, machine: str, day: int) -> MachineDay:
        """The machine's day where the calendar says it runs; any other day is a caller's bug."""
        md = self.machine_day(machine, day)
        if md is None:
            raise ValueError(f"{machine} does not run on production day {day}")
        return md

    def _build_machine_day(self, machine: str, day: int) -> MachineDay | None:
        cal = calendar_day(day)
        if not cal.is_working:
            return None
        line = MACHINE_BY_ID[machine].line
        camp = self.campaign(line, day)
        f = self.factors(machine, day)
        downtime = round(cal.planned_min * (1 - f.availability + f.breakdown_loss))
        if camp.changeover_from:
            downtime = max(downtime, camp.changeover_min + 12)
        run = cal.planned_min - downtime
        ct = round(PRODUCT_BY_CODE[camp.product].ideal_ct_s * self.profiles[machine].ct_factor, 2)
        total = int(run * 60 / ct * f.performance)
        reject = round(total * (1 - f.quality))
        return MachineDay(
            camp.product, cal.planned_min, run, downtime, ct, total, reject, f.breakdown
        )

    def line_day(self, line: str, day: int) -> LineDay | None:
        key = (line, day)
        if key not in self._line_days:
            self._line_days[key] = self._build_line_day(line, day)
        return self._line_days[key]

    def working_line_day(self, line: str, day: int) -> LineDay:
        """The line's day where the calendar says it runs; any other day is a caller's bug."""
        ld = self.line_day(line, day)
        if ld is None:
            raise ValueError(f"{line} does not run on production day {day}")
        return ld

    def _build_line_day(self, line: str, day: int) -> LineDay | None:
        mds = [md for m in MACHINES_BY_LINE[line] if (md := self.machine_day(m.id, day))]
        if not mds:
            return None
        n = len(mds)
        a = sum(md.availability for md in mds) / n
        p = sum(md.performance for md in mds) / n
        q = sum(md.quality for md in mds) / n
        camp = self.campaign(line, day)
        capacity = mds[0].planned_min * 60 / PRODUCT_BY_CODE[camp.product].ideal_ct_s
        total = int(capacity * a * p)
        reject = round(total * (1 - q))
        target = int(capacity * TARGET_OEE / 10) * 10
        return LineDay(
            camp.product, camp.changeover_from, mds[0].planned_min, a, p, q, total, reject, target
        )

    def line_hours(self, line: str, day: int) -> tuple[HourSlot, ...]:
        """Hourly split of a line's daily output.

        The night shift runs slower, and output dips in the changeover hour and in
        one hour of any day a machine on the line breaks down.
        """
        key = (line, day)
        if key not in self._hours:
            self._hours[key] = self._build_hours(line, day)
        return self._hours[key]

    def _build_hours(self, line: str, day: int) -> tuple[HourSlot, ...]:
        ld = self.line_day(line, day)
        if ld is None:
            return ()
        rng = self.rng("hours", line, day)
        plan = hour_plan(day)
        hours = [h for h in range(24) if plan[h]]
        weights = [plan[h] * SHIFT_PACE[shift_of_hour(h)] * rng.uniform(0.86, 1.1) for h in hours]
        if ld.changeover_from:
            weights[0] *= 0.35
        if any(self.factors(m.id, day).breakdown for m in MACHINES_BY_LINE[line]):
            weights[rng.randrange(len(weights))] *= 0.3
        totals = allocate(ld.total, weights)
        rejects = allocate(ld.reject, [t * rng.uniform(0.5, 1.5) for t in totals])
        return tuple(
            HourSlot(h, shift_of_hour(h), plan[h], t, r)
            for h, t, r in zip(hours, totals, rejects, strict=True)
        )

    def downtime_events(self, machine: str, day: int) -> tuple[DowntimeEvent, ...]:
        key = (machine, day)
        if key not in self._events:
            self._events[key] = self._build_events(machine, day)
        return self._events[key]

    def _build_events(self, machine: str, day: int) -> tuple[DowntimeEvent, ...]:
        """Split a machine's daily downtime into non-overlapping stops across its shifts."""
        md = self.machine_day(machine, day)
        if md is None or md.downtime_min <= 0:
            return ()
        rng = self.rng("events", machine, day)
        camp = self.campaign(MACHINE_BY_ID[machine].line, day)
        remaining = md.downtime_min
        parts: list[tuple[str, int]] = []
        if camp.changeover_from:
            parts.append(("DT02", camp.changeover_min))
            remaining -= camp.changeover_min
        if md.breakdown and remaining > 20:
            big = round(remaining * rng.uniform(0.5, 0.75))
            parts.append(("DT01", big))
            remaining -= big
        while remaining > 0:
            reason = rng.choices(_RANDOM_REASONS, _RANDOM_REASON_WEIGHTS)[0]
            minutes = min(remaining, rng.randint(*reason.minutes))
            parts.append((reason.code, minutes))
            remaining -= minutes
        head = parts[:1] if camp.changeover_from else []
        tail = parts[len(head) :]
        rng.shuffle(tail)
        ordered = head + tail
        span = calendar_day(day).span_min
        free = span - md.downtime_min
        cuts = sorted(rng.randint(0, free) for _ in ordered)
        if head:
            cuts[0] = 0
        events: list[DowntimeEvent] = []
        elapsed = 0
        for (code, minutes), cut in zip(ordered, cuts, strict=True):
            events.append(DowntimeEvent(machine, cut + elapsed, minutes, code))
            elapsed += minutes
        return tuple(events)

    def line_downtime_events(self, line: str, day: int) -> list[DowntimeEvent]:
        """Every stop of every machine on the line that day, machine by machine."""
        return [e for m in MACHINES_BY_LINE[line] for e in self.downtime_events(m.id, day)]

    def last_working_day(self, days: int) -> int:
        return max(d for d in range(days) if calendar_day(d).is_working)


def _profile(rng: random.Random, machine: Machine) -> Profile:
    return Profile(
        availability=rng.uniform(0.87, 0.95),
        performance=rng.uniform(0.88, 0.96),
        quality=rng.uniform(0.978, 0.995)
        if machine.line != "LINE-C"
        else rng.uniform(0.985, 0.997),
        breakdown_rate=rng.uniform(0.02, 0.07),
        ct_factor=round(rng.uniform(0.82, 1.0), 2),
    )


def _campaign_step(line: Line) -> Callable[[random.Random, CampaignDay | None, int], CampaignDay]:
    """Run each product for 2-5 working days; day 0 always starts with a changeover."""
    products = PRODUCTS_BY_LINE[line.id]

    def step(rng: random.Random, prev: CampaignDay | None, day: int) -> CampaignDay:
        if prev is None:
            prev = CampaignDay(rng.choice(products), None, 0, 0, 0)
        if not calendar_day(day).is_working:
            return CampaignDay(prev.product, None, 0, prev.campaign, prev.remaining)
        if prev.remaining > 0:
            return CampaignDay(prev.product, None, 0, prev.campaign, prev.remaining - 1)
        product = rng.choice([p for p in products if p != prev.product])
        return CampaignDay(
            product,
            prev.product,
            rng.randint(*line.changeover_min),
            prev.campaign + 1,
            rng.randint(2, 5) - 1,
        )

    return step


MEAN_STOP_MIN = 18.0


def next_running(rng: random.Random, running: bool, availability: float, interval_min: int) -> bool:
    """Step a run/stop chain whose long-run running share equals ``availability``.

    Stops last about MEAN_STOP_MIN minutes, so sampled status changes look like
    real stoppages rather than an independent coin flip per sample.
    """
    start = min(1.0, interval_min / MEAN_STOP_MIN)
    stop = min(1.0, start * (1 - availability) / availability) if availability > 0 else 1.0
    return rng.random() >= stop if running else rng.random() < start
