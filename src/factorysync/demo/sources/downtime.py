"""Downtime data sets: the stop event log, its summaries per reason and machine, andon calls."""

from __future__ import annotations

from collections.abc import Iterator

from factorysync.demo.catalogue import (
    LINES,
    MACHINE_BY_ID,
    MACHINES,
    MACHINES_BY_LINE,
    REASON_BY_CODE,
    REASONS,
)
from factorysync.demo.sources.base import Record, SourceContext, operator_nik, pct
from factorysync.demo.staff import staff_with_role
from factorysync.demo.timeline import (
    SHIFT_IDS,
    SHIFT_LEN_MIN,
    calendar_day,
    iso_day,
    stamp,
    stamp_s,
    yymmdd,
)

BREAKDOWN_REMARKS = (
    "Hydraulic leak pada silinder utama",
    "Motor overload, trip MCB",
    "Sensor proximity rusak",
    "Bearing aus, bunyi abnormal",
    "Servo alarm 401",
    "Selang pneumatik bocor",
    "Limit switch tidak respon",
    "Pompa coolant mati",
)


def downtime_events(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    for d in ctx.working_days():
        events = sorted(
            (e for m in MACHINES for e in ctx.plant.downtime_events(m.id, d)),
            key=lambda e: (e.start_min, e.machine),
        )
        for seq, e in enumerate(events, start=1):
            reason = REASON_BY_CODE[e.reason]
            machine = MACHINE_BY_ID[e.machine]
            shift = SHIFT_IDS[min(e.start_min // SHIFT_LEN_MIN, 2)]
            yield {
                "event_id": f"DT-{yymmdd(d)}-{seq:04d}",
                "machine_id": e.machine,
                "line_id": machine.line,
                "date": iso_day(d),
                "shift": shift,
                "start_ts": stamp(d, e.start_min),
                "end_ts": stamp(d, e.start_min + e.duration_min),
                "duration_min": e.duration_min,
                "reason_code": reason.code,
                "reason": reason.name,
                "reason_local": reason.name_id,
                "category": reason.category,
                "reported_by": operator_nik(ctx, d, shift, machine.line),
                "remark": rng.choice(BREAKDOWN_REMARKS) if e.reason == "DT01" else None,
            }


def downtime_by_reason(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        events = [e for m in MACHINES for e in ctx.plant.downtime_events(m.id, d)]
        total = sum(e.duration_min for e in events)
        for reason in REASONS:
            mine = [e.duration_min for e in events if e.reason == reason.code]
            if not mine:
                continue
            yield {
                "date": iso_day(d),
                "reason_code": reason.code,
                "reason": reason.name,
                "reason_local": reason.name_id,
                "category": reason.category,
                "occurrences": len(mine),
                "duration_min": sum(mine),
                "share_pct": pct(sum(mine), total, 1),
            }


def downtime_machine(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        for m in MACHINES:
            events = ctx.plant.downtime_events(m.id, d)
            by_reason: dict[str, int] = {}
            for e in events:
                by_reason[e.reason] = by_reason.get(e.reason, 0) + e.duration_min
            main = max(by_reason, key=lambda code: (by_reason[code], code)) if by_reason else None
            planned = sum(
                e.duration_min for e in events if REASON_BY_CODE[e.reason].category == "Planned"
            )
            total = sum(e.duration_min for e in events)
            yield {
                "machineId": m.id,
                "lineId": m.line,
                "date": iso_day(d),
                "downtimeMin": total,
                "plannedDowntimeMin": planned,
                "unplannedDowntimeMin": total - planned,
                "stopCount": len(events),
                "longestStopMin": max((e.duration_min for e in events), default=0),
                "mainReason": REASON_BY_CODE[main].name if main else None,
            }


ANDON_TYPES = (
    ("Maintenance", "red", 0.34),
    ("Quality", "yellow", 0.26),
    ("Material", "blue", 0.24),
    ("Supervisor", "white", 0.12),
    ("Safety", "orange", 0.04),
)


def andon_calls(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    responders = {
        "Maintenance": staff_with_role("Technician"),
        "Quality": staff_with_role("QC Inspector"),
    }
    leaders = staff_with_role("Group Leader")
    for d in ctx.working_days():
        span = calendar_day(d).span_min * 60
        for line in LINES:
            calls = sorted(rng.randrange(span - 3600) for _ in range(rng.randint(2, 7)))
            for i, second in enumerate(calls, start=1):
                kind, color, _ = rng.choices(ANDON_TYPES, [t[2] for t in ANDON_TYPES])[0]
                response = int(rng.lognormvariate(4.5, 0.55))
                resolve = round(rng.lognormvariate(2.4, 0.7), 1)
                still_open = d == ctx.days - 1 and i == len(calls) and rng.random() < 0.5
                yield {
                    "call_id": f"AND-{yymmdd(d)}-{line.letter}{i:02d}",
                    "line_id": line.id,
                    "machine_id": rng.choice(MACHINES_BY_LINE[line.id]).id,
                    "call_type": kind,
                    "color": color,
                    "ts_call": stamp_s(d, second),
                    "ts_response": stamp_s(d, second + response),
                    "response_s": response,
                    "ts_resolved": None
                    if still_open
                    else stamp_s(d, second + response + int(resolve * 60)),
                    "resolve_min": None if still_open else resolve,
                    "responder": rng.choice(responders.get(kind, leaders)).name,
                    "status": "Open" if still_open else "Closed",
                }
