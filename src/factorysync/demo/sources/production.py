"""Production data sets: hourly output, targets, cycle and line speed, work orders, changeovers."""

from __future__ import annotations

from collections.abc import Iterator

from factorysync.demo.catalogue import (
    LINE_BY_ID,
    LINES,
    MACHINES,
    PRODUCT_BY_CODE,
    PRODUCTS_BY_LINE,
    TARGET_OEE,
)
from factorysync.demo.plant import Plant, allocate, clamp, next_running
from factorysync.demo.sources.base import Record, SourceContext, pct
from factorysync.demo.staff import shift_group, staff_with_role
from factorysync.demo.timeline import calendar_day, hour_plan, iso_day, stamp, yymmdd


def actual_production(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        per_line = [
            (line.id, ctx.plant.working_line_day(line.id, d), ctx.plant.line_hours(line.id, d))
            for line in LINES
        ]
        cumulative = dict.fromkeys(PRODUCTS_BY_LINE, 0)
        for i, slot in enumerate(per_line[0][2]):
            for line, ld, hours in per_line:
                s = hours[i]
                cumulative[line] += s.total
                yield {
                    "line_id": line,
                    "ts": stamp(d, slot.hour * 60),
                    "date": iso_day(d),
                    "shift": s.shift,
                    "product_code": ld.product,
                    "planned_min": s.planned_min,
                    "qty_actual": s.total,
                    "qty_good": s.total - s.reject,
                    "qty_reject": s.reject,
                    "cumulative_qty": cumulative[line],
                }


def production_target(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        shifts = calendar_day(d).shifts
        for line in LINES:
            ld = ctx.plant.working_line_day(line.id, d)
            split = dict(zip(shifts, allocate(ld.target, [1.0] * len(shifts)), strict=True))
            yield {
                "date": iso_day(d),
                "line_id": line.id,
                "product_code": ld.product,
                "target_qty": ld.target,
                "target_s1": split.get("S1"),
                "target_s2": split.get("S2"),
                "target_s3": split.get("S3"),
                "target_per_hour": round(ld.target * 60 / ld.planned_min),
                "planned_min": ld.planned_min,
                "target_oee": TARGET_OEE,
            }


def target_vs_actual(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        for line in LINES:
            ld = ctx.plant.working_line_day(line.id, d)
            achievement = pct(ld.good, ld.target, 1)
            yield {
                "date": iso_day(d),
                "line_id": line.id,
                "product_code": ld.product,
                "target": ld.target,
                "actual": ld.good,
                "gap": ld.good - ld.target,
                "achievement_pct": achievement,
                "status": "ACHIEVED"
                if achievement >= 100
                else "ON_TRACK"
                if achievement >= 95
                else "BELOW_TARGET",
            }


def production_by_shift(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        shifts = calendar_day(d).shifts
        totals = {s: [0, 0, 0] for s in shifts}
        for line in LINES:
            ld = ctx.plant.working_line_day(line.id, d)
            for s, target in zip(shifts, allocate(ld.target, [1.0] * len(shifts)), strict=True):
                totals[s][2] += target
            for slot in ctx.plant.line_hours(line.id, d):
                totals[slot.shift][0] += slot.total
                totals[slot.shift][1] += slot.reject
        for s in shifts:
            actual, reject, target = totals[s]
            yield {
                "date": iso_day(d),
                "shift": s,
                "group": shift_group(d, s),
                "qty_actual": actual,
                "qty_good": actual - reject,
                "qty_reject": reject,
                "qty_target": target,
                "achievement_pct": pct(actual - reject, target, 1),
                "lines_running": len(LINES),
            }


def produced_rejected_machine(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        for m in MACHINES:
            md = ctx.plant.working_machine_day(m.id, d)
            yield {
                "machineId": m.id,
                "lineId": m.line,
                "date": iso_day(d),
                "productCode": md.product,
                "qtyTotal": md.total,
                "qtyGood": md.good,
                "qtyReject": md.reject,
                "rejectRate": pct(md.reject, md.total, 2),
            }


def cycle_time(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    for d in ctx.working_days():
        mds = [(m.id, ctx.plant.working_machine_day(m.id, d)) for m in MACHINES]
        plan = hour_plan(d)
        for h in range(24):
            if not plan[h]:
                continue
            ts = stamp(d, h * 60)
            for mid, md in mds:
                perf = clamp(md.performance * rng.uniform(0.96, 1.04), 0.6, 0.995)
                avg = md.ideal_ct_s / perf
                yield {
                    "machine_id": mid,
                    "ts": ts,
                    "product_code": md.product,
                    "ideal_ct_s": md.ideal_ct_s,
                    "avg_ct_s": round(avg, 2),
                    "min_ct_s": round(md.ideal_ct_s * rng.uniform(0.985, 1.02), 2),
                    "max_ct_s": round(avg * rng.uniform(1.15, 1.8), 2),
                    "samples": int(plan[h] * md.availability * 60 / avg),
                }


def line_speed(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    iv = ctx.interval_min
    running = dict.fromkeys(LINE_BY_ID, False)
    for d in range(ctx.days):
        plan = hour_plan(d)
        lines = []
        for line in LINES:
            ld = ctx.plant.line_day(line.id, d)
            # A day off has no line day; every sample of it is stopped, so its factors are moot.
            availability, performance = (ld.availability, ld.performance) if ld else (0.0, 0.0)
            product = ctx.plant.campaign(line.id, d).product
            ideal = 60 / PRODUCT_BY_CODE[product].ideal_ct_s
            lines.append((line.id, product, ideal, availability, performance))
        for minute in range(0, 1440, iv):
            ts = stamp(d, minute)
            working = plan[minute // 60] > 0
            for line_id, product, ideal, availability, performance in lines:
                on = working and next_running(rng, running[line_id], availability, iv)
                running[line_id] = on
                speed = ideal * performance * rng.uniform(0.93, 1.05) if on else 0.0
                yield {
                    "line_id": line_id,
                    "ts": ts,
                    "product_code": product,
                    "speed_upm": round(min(speed, ideal), 2),
                    "target_upm": round(ideal * 0.92, 2),
                    "running": on,
                }


def _campaign_days(plant: Plant, line: str, start: int) -> list[int]:
    """Working days of the product campaign that starts on ``start``."""
    camp = plant.campaign(line, start)
    days: list[int] = []
    d = start
    while len(days) < camp.remaining + 1:
        if calendar_day(d).is_working:
            days.append(d)
        d += 1
    return days


def work_orders(ctx: SourceContext) -> Iterator[Record]:
    leaders = staff_with_role("Group Leader")
    for d in range(ctx.days):
        for line in LINES:
            camp = ctx.plant.campaign(line.id, d)
            if not camp.changeover_from:
                continue
            run_days = _campaign_days(ctx.plant, line.id, d)
            done_days = [x for x in run_days if x < ctx.days]
            product = PRODUCT_BY_CODE[camp.product]
            yield {
                "work_order_id": f"WO-{yymmdd(d)[:4]}-{line.letter}{camp.campaign:03d}",
                "line_id": line.id,
                "product_code": product.code,
                "customer": product.customer,
                "qty_plan": sum(ctx.plant.working_line_day(line.id, x).target for x in run_days),
                "qty_done": sum(ctx.plant.working_line_day(line.id, x).good for x in done_days),
                "start_date": iso_day(d),
                "due_date": iso_day(run_days[-1]),
                "status": "Completed" if len(done_days) == len(run_days) else "In Progress",
                "priority": "Urgent" if ctx.rng.random() < 0.12 else "Normal",
                "released_by": ctx.rng.choice(leaders).name,
            }


def changeover_log(ctx: SourceContext) -> Iterator[Record]:
    technicians = staff_with_role("Technician")
    for d in range(ctx.days):
        for line in LINES:
            camp = ctx.plant.campaign(line.id, d)
            if not camp.changeover_from:
                continue
            target = line.changeover_min[0] + 15
            yield {
                "changeover_id": f"CO-{yymmdd(d)}-{line.letter}",
                "line_id": line.id,
                "date": iso_day(d),
                "start_ts": stamp(d, 0),
                "end_ts": stamp(d, camp.changeover_min),
                "from_product": camp.changeover_from,
                "to_product": camp.product,
                "duration_min": camp.changeover_min,
                "target_min": target,
                "within_target": camp.changeover_min <= target,
                "technician": ctx.rng.choice(technicians).name,
                "notes": ctx.rng.choice(
                    [
                        None,
                        None,
                        "Die clamp lambat",
                        "Trial shot 2x",
                        "Menunggu material",
                        "Setting ulang jig",
                    ]
                ),
            }
