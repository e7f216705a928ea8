"""OEE data sets: per machine, per line, the hourly trend and the six big losses."""

from __future__ import annotations

from collections.abc import Iterator

from factorysync.demo.catalogue import (
    LINES,
    MACHINES,
    MACHINES_BY_LINE,
    PRODUCT_BY_CODE,
    TARGET_OEE,
)
from factorysync.demo.sources.base import Record, SourceContext, ratio
from factorysync.demo.timeline import iso_day, stamp


def oee_machine(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        for m in MACHINES:
            md = ctx.plant.working_machine_day(m.id, d)
            a, p, q = md.availability, md.performance, md.quality
            yield {
                "machine_id": m.id,
                "line_id": m.line,
                "date": iso_day(d),
                "product_code": md.product,
                "planned_time_min": md.planned_min,
                "run_time_min": md.run_min,
                "downtime_min": md.downtime_min,
                "availability": ratio(a),
                "performance": ratio(p),
                "quality": ratio(q),
                "oee": ratio(a * p * q),
            }


def oee_line(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        for line in LINES:
            ld = ctx.plant.working_line_day(line.id, d)
            yield {
                "line_id": line.id,
                "date": iso_day(d),
                "product_code": ld.product,
                "availability": ratio(ld.availability),
                "performance": ratio(ld.performance),
                "quality": ratio(ld.quality),
                "oee": ratio(ld.oee),
                "oee_target": TARGET_OEE,
            }


def oee_trend(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        per_line = []
        for line in LINES:
            ct = PRODUCT_BY_CODE[ctx.plant.working_line_day(line.id, d).product].ideal_ct_s
            per_line.append((line.letter.lower(), ct, ctx.plant.line_hours(line.id, d)))
        for i, slot in enumerate(per_line[0][2]):
            rec: Record = {"ts": stamp(d, slot.hour * 60), "date": iso_day(d), "shift": slot.shift}
            values = []
            for letter, ct, hours in per_line:
                s = hours[i]
                value = min((s.total - s.reject) * ct / (s.planned_min * 60), 0.999)
                rec[f"oee_line_{letter}"] = ratio(value)
                values.append(value)
            rec["oee_plant"] = ratio(sum(values) / len(values))
            yield rec


LOSS_GROUPS = {
    "breakdown_min": ("DT01", "DT09", "DT11"),
    "setup_adjustment_min": ("DT02", "DT06"),
    "small_stops_min": ("DT05", "DT07"),
    "other_stops_min": ("DT03", "DT04", "DT08", "DT10"),
}


def six_big_losses(ctx: SourceContext) -> Iterator[Record]:
    """Equipment minutes lost per line, summed over its machines (Nakajima's six big losses)."""
    for d in ctx.working_days():
        for line in LINES:
            events = ctx.plant.line_downtime_events(line.id, d)
            rec: Record = {"line_id": line.id, "date": iso_day(d)}
            for name, codes in LOSS_GROUPS.items():
                rec[name] = sum(e.duration_min for e in events if e.reason in codes)
            mds = [ctx.plant.working_machine_day(m.id, d) for m in MACHINES_BY_LINE[line.id]]
            rec["reduced_speed_min"] = round(sum(md.run_min * (1 - md.performance) for md in mds))
            ld = ctx.plant.working_line_day(line.id, d)
            startup = round(ld.reject * ctx.rng.uniform(0.2, 0.4)) if ld.changeover_from else 0
            rec["startup_reject_qty"] = startup
            rec["production_reject_qty"] = ld.reject - startup
            yield rec
