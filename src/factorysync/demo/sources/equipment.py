"""Equipment data sets: condition monitoring, machine and line lists, live status, utilisation."""

from __future__ import annotations

import math
from collections.abc import Iterator

from factorysync.demo.catalogue import (
    LINE_BY_ID,
    LINES,
    MACHINE_BY_ID,
    MACHINES,
    MACHINES_BY_LINE,
    PRODUCTS_BY_LINE,
    TARGET_OEE,
    THERMAL,
)
from factorysync.demo.plant import next_running
from factorysync.demo.sources.base import Record, SourceContext, operator_nik, pct, ratio
from factorysync.demo.timeline import ambient_c, calendar_day, hour_plan, iso_day, stamp


def temperature_vibration(ctx: SourceContext) -> Iterator[Record]:
    """Condition monitoring: vibration rises with temperature, and a worn bearing lifts both."""
    rng = ctx.rng
    iv = ctx.interval_min
    lag = 1 - math.exp(-iv / 40)
    temps = {m.id: ambient_c(0) for m in MACHINES}
    running = dict.fromkeys(MACHINE_BY_ID, False)
    for d in range(ctx.days):
        plan = hour_plan(d)
        state = []
        for m in MACHINES:
            md = ctx.plant.machine_day(m.id, d)
            wear = rng.uniform(1.5, 3.5) if rng.random() < 0.04 else 0.0
            state.append((m, THERMAL[m.type], md.availability if md else 0.0, wear))
        for minute in range(0, 1440, iv):
            hour = minute // 60
            ts = stamp(d, minute)
            amb = ambient_c(hour)
            working = plan[hour] > 0
            for m, (rise, vib), avail, wear in state:
                on = working and next_running(rng, running[m.id], avail, iv)
                running[m.id] = on
                target = amb + (rise * rng.uniform(0.8, 1.05) if on else 0.5) + wear * 2
                temp = temps[m.id] + (target - temps[m.id]) * lag
                temps[m.id] = temp
                level = vib * rng.uniform(0.85, 1.15) if on else rng.uniform(0.05, 0.25)
                level += 0.04 * max(temp - amb, 0.0) + (wear if on else 0.0)
                yield {
                    "machine_id": m.id,
                    "ts": ts,
                    "temperature_c": round(temp, 1),
                    "vibration_mm_s": round(level, 2),
                    "running": on,
                    "status": "ALARM" if level >= 7.1 else "WARNING" if level >= 4.5 else "NORMAL",
                }


CRITICALITY = {
    "Press": "A",
    "Transfer Press": "A",
    "Machining Center": "A",
    "CNC Lathe": "A",
    "Robot Welding": "A",
    "Coating": "B",
    "Grinder": "B",
    "Leak Tester": "B",
    "Torque Station": "B",
}


def machine_list(ctx: SourceContext) -> Iterator[Record]:
    for i, m in enumerate(MACHINES, start=1):
        yield {
            "machine_id": m.id,
            "asset_no": f"AST-{m.year}-{i:04d}",
            "name": m.name,
            "line_id": m.line,
            "type": m.type,
            "brand": m.brand,
            "model": m.model,
            "year_installed": m.year,
            "rated_power_kw": m.rated_kw,
            "criticality": CRITICALITY.get(m.type, "C"),
            "zone": LINE_BY_ID[m.line].zone,
            "status": "Active",
            "has_vibration_sensor": THERMAL[m.type][1] >= 1.0,
        }


def line_list(ctx: SourceContext) -> Iterator[Record]:
    for line in LINES:
        yield {
            "line_id": line.id,
            "name": line.name,
            "zone": line.zone,
            "supervisor": line.supervisor,
            "machine_count": len(MACHINES_BY_LINE[line.id]),
            "products": list(PRODUCTS_BY_LINE[line.id]),
            "target_oee": TARGET_OEE,
            "shift_pattern": "3 shift Senin-Jumat, 2 shift Sabtu",
            "changeover_target_min": line.changeover_min[0] + 15,
        }


def machine_status(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    day = ctx.plant.last_working_day(ctx.days)
    for m in MACHINES:
        md = ctx.plant.working_machine_day(m.id, day)
        status = rng.choices(("RUN", "IDLE", "DOWN", "SETUP"), (0.78, 0.1, 0.07, 0.05))[0]
        yield {
            "machineId": m.id,
            "lineId": m.line,
            "status": status,
            "currentProduct": md.product,
            "speedPct": round(md.performance * 100 * rng.uniform(0.97, 1.02), 1)
            if status == "RUN"
            else 0.0,
            "sinceTs": stamp(day, rng.randrange(calendar_day(day).span_min - 30)),
            "lastAlarmCode": f"AL-{rng.randint(100, 499)}" if status == "DOWN" else None,
            "oeeToday": ratio(md.availability * md.performance * md.quality),
            "operatorNik": operator_nik(ctx, day, calendar_day(day).shifts[-1], m.line),
        }


def machine_utilization(ctx: SourceContext) -> Iterator[Record]:
    for d in range(ctx.days):
        for m in MACHINES:
            md = ctx.plant.machine_day(m.id, d)
            events = ctx.plant.downtime_events(m.id, d)
            setup = sum(e.duration_min for e in events if e.reason in ("DT02", "DT06"))
            run = md.run_min if md else 0
            planned = md.planned_min if md else 0
            yield {
                "machine_id": m.id,
                "date": iso_day(d),
                "state_minutes": {
                    "run": run,
                    "setup": setup,
                    "down": planned - run - setup,
                    "idle": 1440 - planned,
                },
                "utilization_pct": pct(run, 1440, 1),
                "loading_pct": pct(planned, 1440, 1),
            }
