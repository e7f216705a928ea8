"""Plant KPI data sets: OFM, OFE, NRFC, NRFW, NRDAE and the daily plant summary."""

from __future__ import annotations

from collections.abc import Iterator

from factorysync.demo.catalogue import FAILURE_REASONS, LINES, MACHINES, MACHINES_BY_LINE
from factorysync.demo.plant import DowntimeEvent, Plant, clamp
from factorysync.demo.sources.base import Record, SourceContext, pct, ratio
from factorysync.demo.timeline import SHIFT_PLANNED_MIN, calendar_day, iso_day

OPERATORS_PER_LINE_SHIFT = 6


def kpi_ofm(ctx: SourceContext) -> Iterator[Record]:
    """Overall Factory Manpower efficiency: earned standard man-hours over actual man-hours."""
    rng = ctx.rng
    for d in ctx.working_days():
        shifts = len(calendar_day(d).shifts)
        for line in LINES:
            ld = ctx.plant.working_line_day(line.id, d)
            plan = shifts * OPERATORS_PER_LINE_SHIFT
            present = plan - sum(rng.random() < 0.05 for _ in range(plan))
            actual_mh = present * SHIFT_PLANNED_MIN / 60 + rng.choice((0, 0, 2, 4, 6))
            ofm = clamp(ld.availability * ld.performance * rng.uniform(0.95, 1.03), 0.5, 0.99)
            yield {
                "date": iso_day(d),
                "line_id": line.id,
                "headcount_plan": plan,
                "headcount_actual": present,
                "actual_man_hours": round(actual_mh, 1),
                "std_man_hours": round(actual_mh * ofm, 1),
                "ofm": ratio(ofm),
                "ofm_target": 0.85,
            }


def kpi_ofe(ctx: SourceContext) -> Iterator[Record]:
    """Overall Factory Effectiveness: line OEE scaled by the share of the day that was scheduled."""
    for d in ctx.working_days():
        for line in LINES:
            ld = ctx.plant.working_line_day(line.id, d)
            utilization = ld.planned_min / 1440
            yield {
                "date": iso_day(d),
                "line_id": line.id,
                "calendar_time_min": 1440,
                "planned_time_min": ld.planned_min,
                "utilization": ratio(utilization),
                "oee": ratio(ld.oee),
                "ofe": ratio(ld.oee * utilization),
                "ofe_target": 0.65,
            }


def _failures(plant: Plant, line: str, day: int) -> list[DowntimeEvent]:
    return [e for e in plant.line_downtime_events(line, day) if e.reason in FAILURE_REASONS]


def kpi_nrfc(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        for line in LINES:
            failures = _failures(ctx.plant, line.id, d)
            yield {
                "date": iso_day(d),
                "line_id": line.id,
                "nrfc": len(failures),
                "breakdown": sum(e.reason == "DT01" for e in failures),
                "power_failure": sum(e.reason == "DT09" for e in failures),
                "tool_breakage": sum(e.reason == "DT11" for e in failures),
                "target_max": 3,
            }


def kpi_nrfw(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        for line in LINES:
            failures = _failures(ctx.plant, line.id, d)
            crew = [ctx.rng.choice((1, 1, 2, 2, 3)) for _ in failures]
            hours = sum(e.duration_min * c for e, c in zip(failures, crew, strict=True)) / 60
            yield {
                "date": iso_day(d),
                "line_id": line.id,
                "nrfw_hours": round(hours, 2),
                "work_orders": len(failures),
                "avg_technicians": round(sum(crew) / len(crew), 2) if crew else None,
                "target_max_hours": 6.0,
            }


def kpi_nrdae(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        for line in LINES:
            minutes = sum(e.duration_min for e in _failures(ctx.plant, line.id, d))
            available_h = len(MACHINES_BY_LINE[line.id]) * calendar_day(d).planned_min / 60
            yield {
                "date": iso_day(d),
                "line_id": line.id,
                "nonroutine_downtime_min": minutes,
                "available_equipment_h": round(available_h, 1),
                "nrdae_pct": round(100 * minutes / (available_h * 60), 3),
                "target_max_pct": 2.5,
            }


def daily_kpi_summary(ctx: SourceContext) -> Iterator[Record]:
    month_to_date: dict[str, int] = {}
    for d in ctx.working_days():
        lds = [ctx.plant.working_line_day(line.id, d) for line in LINES]
        good = sum(ld.good for ld in lds)
        total = sum(ld.total for ld in lds)
        target = sum(ld.target for ld in lds)
        month = iso_day(d)[:7]
        month_to_date[month] = month_to_date.get(month, 0) + good
        downtime = sum(md.downtime_min for m in MACHINES if (md := ctx.plant.machine_day(m.id, d)))
        yield {
            "date": iso_day(d),
            "output_good": good,
            "output_target": target,
            "achievement_pct": pct(good, target, 1),
            "mtd_output_good": month_to_date[month],
            "availability": ratio(sum(ld.availability for ld in lds) / 3),
            "performance": ratio(sum(ld.performance for ld in lds) / 3),
            "quality": ratio(sum(ld.quality for ld in lds) / 3),
            "oee": ratio(sum(ld.oee for ld in lds) / 3),
            "reject_rate_pct": pct(total - good, total, 2),
            "machine_downtime_min": downtime,
            "attendance_pct": round(ctx.rng.uniform(93.0, 99.0), 1),
        }
