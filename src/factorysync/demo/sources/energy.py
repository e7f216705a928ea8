"""Energy and utility data sets: machine power, panel meters, kWh per unit, water, air."""

from __future__ import annotations

import math
from collections.abc import Iterator

from factorysync.demo.catalogue import LINES, MACHINES, MACHINES_BY_LINE
from factorysync.demo.plant import Plant, clamp
from factorysync.demo.sources.base import Record, SourceContext
from factorysync.demo.timeline import calendar_day, clock_hour, hour_plan, iso_day, stamp


def _running_fraction(plant: Plant, machine: str, day: int) -> tuple[float, ...]:
    """Share of each hour a machine is producing, from the plan and its availability."""
    md = plant.machine_day(machine, day)
    plan = hour_plan(day)
    return tuple(p / 60 * md.availability if md else 0.0 for p in plan)


def power_consumption(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    for d in range(ctx.days):
        running = [(m, _running_fraction(ctx.plant, m.id, d)) for m in MACHINES]
        for h in range(24):
            ts = stamp(d, h * 60)
            for m, frac in running:
                load = 0.07 + frac[h] * rng.uniform(0.55, 0.85)
                yield {
                    "machine_id": m.id,
                    "ts": ts,
                    "kwh": round(m.rated_kw * load, 2),
                    "kw_peak": round(m.rated_kw * min(1.0, load * rng.uniform(1.2, 1.6)), 2),
                    "power_factor": round(
                        clamp(0.78 + 0.17 * load + rng.gauss(0, 0.01), 0.7, 0.99), 3
                    ),
                    "mode": "PRODUCTION" if frac[h] else "STANDBY",
                }


METERS = (
    ("SDP-LA", "Panel Line A"),
    ("SDP-LB", "Panel Line B"),
    ("SDP-LC", "Panel Line C"),
    ("SDP-UTL", "Panel Utilitas (kompresor & chiller)"),
    ("SDP-OFC", "Panel Kantor"),
    ("LP-01", "Panel Penerangan"),
    ("MDP-01", "Main Distribution Panel"),
)
LINE_RATED_KW = {line.id: sum(m.rated_kw for m in MACHINES_BY_LINE[line.id]) for line in LINES}


def _panel_kw(ctx: SourceContext, d: int, minute: int, line_avail: dict[str, float]) -> list[float]:
    rng = ctx.rng
    hour = minute // 60
    working = hour_plan(d)[hour] > 0
    clock = clock_hour(hour)
    office_hours = 8 <= clock < 17 and calendar_day(d).weekday < 5
    loads = [
        LINE_RATED_KW[line.id]
        * (0.08 + (line_avail[line.id] * rng.uniform(0.55, 0.78) if working else 0))
        for line in LINES
    ]
    loads.append(rng.gauss(150 if working else 70, 6))
    loads.append(rng.gauss(42, 4) if office_hours else rng.gauss(13, 2))
    loads.append(rng.gauss(27, 1.5) if clock >= 18 or clock < 6 else rng.gauss(12, 1.5))
    loads.append(sum(loads) * 1.03)
    return loads


def electric_consumption(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    iv = ctx.interval_min
    for d in range(ctx.days):
        avail = {}
        for line in LINES:
            ld = ctx.plant.line_day(line.id, d)
            avail[line.id] = ld.availability if ld else 0.0
        for minute in range(0, 1440, iv):
            ts = stamp(d, minute)
            for (meter, _), kw in zip(METERS, _panel_kw(ctx, d, minute, avail), strict=True):
                volts = rng.gauss(392, 3)
                pf = clamp(rng.gauss(0.91, 0.02), 0.8, 0.99)
                yield {
                    "meter_id": meter,
                    "ts": ts,
                    "kwh": round(kw * iv / 60, 2),
                    "kw_avg": round(kw, 1),
                    "voltage_v": round(volts, 1),
                    "current_a": round(kw * 1000 / (math.sqrt(3) * volts * pf), 1),
                    "power_factor": round(pf, 3),
                }


def energy_per_unit(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        for line in LINES:
            ld = ctx.plant.working_line_day(line.id, d)
            run_h = ld.planned_min / 60 * ld.availability
            kwh = LINE_RATED_KW[line.id] * (run_h * ctx.rng.uniform(0.62, 0.74) + 24 * 0.07)
            yield {
                "line_id": line.id,
                "date": iso_day(d),
                "product_code": ld.product,
                "kwh": round(kwh, 1),
                "output_qty": ld.good,
                "kwh_per_unit": round(kwh / ld.good, 4),
                "co2_kg": round(kwh * 0.87, 1),
            }


WATER_METERS = (
    ("WTR-PROC", "Air proses (washer & coating)"),
    ("WTR-CT", "Cooling tower make-up"),
    ("WTR-DOM", "Domestik & kantin"),
)


def water_consumption(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    cumulative = {"WTR-PROC": 18_250.0, "WTR-CT": 42_600.0, "WTR-DOM": 9_870.0}
    for d in range(ctx.days):
        plan = hour_plan(d)
        for h in range(24):
            ts = stamp(d, h * 60)
            working = plan[h] > 0
            clock = clock_hour(h)
            usage = {
                "WTR-PROC": rng.uniform(1.4, 2.3) if working else rng.uniform(0.02, 0.12),
                "WTR-CT": rng.uniform(2.2, 3.4) if working else rng.uniform(0.6, 1.0),
                "WTR-DOM": rng.uniform(0.5, 0.9) if 6 <= clock < 22 else rng.uniform(0.1, 0.25),
            }
            for meter, area in WATER_METERS:
                cumulative[meter] += round(usage[meter], 3)
                yield {
                    "meter_id": meter,
                    "ts": ts,
                    "area": area,
                    "volume_m3": round(usage[meter], 3),
                    "totalizer_m3": round(cumulative[meter], 3),
                    "pressure_bar": round(rng.uniform(2.6, 3.4), 2),
                }


COMPRESSORS = (("CMP-01", 75.0, 720.0), ("CMP-02", 75.0, 720.0), ("CMP-03", 37.0, 340.0))


def compressed_air(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    for d in range(ctx.days):
        plan = hour_plan(d)
        for h in range(24):
            ts = stamp(d, h * 60)
            demand = rng.uniform(930, 1180) if plan[h] else rng.uniform(240, 380)
            for cid, kw, capacity in COMPRESSORS:
                share = clamp(demand / capacity, 0.0, 1.0)
                demand -= share * capacity
                running = share > 0.05
                yield {
                    "compressorId": cid,
                    "ts": ts,
                    "running": running,
                    "loadPct": round(share * 100, 1) if running else 0.0,
                    "flowNm3h": round(share * capacity, 1) if running else 0.0,
                    "pressureBar": round(rng.uniform(6.6, 7.2), 2),
                    "kwh": round(kw * (0.3 + 0.7 * share), 2) if running else 0.0,
                    "dewPointC": round(rng.uniform(3.0, 6.0), 1) if running else None,
                }
