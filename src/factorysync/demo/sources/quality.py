"""Quality data sets: defects, scrap, hourly inspection results, first pass yield."""

from __future__ import annotations

from collections.abc import Iterator

from factorysync.demo.catalogue import (
    CHARACTERISTICS,
    DEFECTS,
    LINES,
    PRODUCT_BY_CODE,
    unit_price_idr,
)
from factorysync.demo.plant import allocate
from factorysync.demo.sources.base import Record, SourceContext, pct, ratio
from factorysync.demo.staff import shift_group, staff_with_role
from factorysync.demo.timeline import hour_plan, iso_day, shift_of_hour, stamp, yymmdd


def defects_by_type(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    for d in ctx.working_days():
        counts: dict[str, dict[str, int]] = {df.code: {} for df in DEFECTS}
        output = 0
        for line in LINES:
            ld = ctx.plant.working_line_day(line.id, d)
            output += ld.total
            kinds = [df for df in DEFECTS if line.id in df.lines]
            split = allocate(ld.reject, [df.weight * rng.uniform(0.4, 1.6) for df in kinds])
            for df, n in zip(kinds, split, strict=True):
                counts[df.code][line.id] = n
        for df in DEFECTS:
            count = sum(counts[df.code].values())
            yield {
                "date": iso_day(d),
                "defect_code": df.code,
                "defect": df.name,
                "defect_local": df.name_id,
                "severity": df.severity,
                "count": count,
                "ppm": round(count * 1_000_000 / output),
                "by_line": counts[df.code],
            }


def scrap_rate(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        for line in LINES:
            ld = ctx.plant.working_line_day(line.id, d)
            product = PRODUCT_BY_CODE[ld.product]
            scrap = round(ld.reject * ctx.rng.uniform(0.55, 0.8))
            yield {
                "line_id": line.id,
                "date": iso_day(d),
                "product_code": product.code,
                "total_qty": ld.total,
                "reject_qty": ld.reject,
                "scrap_qty": scrap,
                "rework_qty": ld.reject - scrap,
                "scrap_kg": round(scrap * product.weight_g / 1000, 2),
                "scrap_rate_pct": pct(scrap, ld.total, 3),
                "scrap_cost_idr": scrap * unit_price_idr(product) * 6 // 10,
            }


def inspection_results(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    inspectors = staff_with_role("QC Inspector")
    for d in ctx.working_days():
        plan = hour_plan(d)
        for line in LINES:
            product = ctx.plant.working_line_day(line.id, d).product
            seq = 0
            for h in range(24):
                if not plan[h]:
                    continue
                group = shift_group(d, shift_of_hour(h))
                inspector = next(p for p in inspectors if p.group == group)
                minute = h * 60 + rng.randint(5, 50)
                for name, unit, nominal, tol in CHARACTERISTICS[line.id]:
                    seq += 1
                    digits = 4 if tol < 0.02 else 3 if tol < 1 else 2
                    measured = round(rng.gauss(nominal, tol / 3.1), digits)
                    low, high = round(nominal - tol, digits), round(nominal + tol, digits)
                    yield {
                        "inspection_id": f"QC-{yymmdd(d)}-{line.letter}{seq:03d}",
                        "ts": stamp(d, minute),
                        "line_id": line.id,
                        "product_code": product,
                        "characteristic": name,
                        "unit": unit,
                        "nominal": nominal,
                        "lsl": max(low, 0.0),
                        "usl": high,
                        "measured": max(measured, 0.0),
                        "result": "OK" if low <= measured <= high else "NG",
                        "inspector": inspector.nik,
                    }


def first_pass_yield(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        for line in LINES:
            ld = ctx.plant.working_line_day(line.id, d)
            yield {
                "lineId": line.id,
                "date": iso_day(d),
                "productCode": ld.product,
                "inputQty": ld.total,
                "passQty": ld.good,
                "failQty": ld.reject,
                "fpy": ratio(ld.good / ld.total),
                "targetFpy": 0.985,
            }


DEFECT_CATEGORY = {
    "DF01": "Appearance",
    "DF02": "Function",
    "DF03": "Appearance",
    "DF04": "Dimension",
    "DF05": "Appearance",
    "DF06": "Dimension",
    "DF07": "Dimension",
    "DF08": "Function",
    "DF09": "Function",
    "DF10": "Function",
    "DF11": "Function",
    "DF12": "Appearance",
}


def defect_types(ctx: SourceContext) -> Iterator[Record]:
    for df in DEFECTS:
        yield {
            "defect_code": df.code,
            "name": df.name,
            "name_local": df.name_id,
            "category": DEFECT_CATEGORY[df.code],
            "severity": df.severity,
            "lines": list(df.lines),
            "active": True,
        }
