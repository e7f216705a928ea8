"""Manpower and safety data sets: attendance, the operator list, incidents."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

from factorysync.demo.catalogue import LINES
from factorysync.demo.sources.base import Record, SourceContext
from factorysync.demo.sources.layout import ZONES
from factorysync.demo.staff import FEMALE_NAMES, people, shift_group
from factorysync.demo.timeline import SHIFT_LEN_MIN, calendar_day, iso_day, stamp, stamp_s

ATTENDANCE = (("Hadir", 0.94), ("Sakit", 0.02), ("Izin", 0.015), ("Cuti", 0.02), ("Alpha", 0.005))


def operator_attendance(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    statuses = [s for s, _ in ATTENDANCE]
    weights = [w for _, w in ATTENDANCE]
    for d in ctx.working_days():
        for i, s in enumerate(calendar_day(d).shifts):
            group = shift_group(d, s)
            start = i * SHIFT_LEN_MIN * 60
            for p in people():
                if p.group != group:
                    continue
                status = rng.choices(statuses, weights)[0]
                present = status == "Hadir"
                late = rng.randint(3, 25) if present and rng.random() < 0.04 else 0
                overtime = rng.choice((1.0, 2.0, 3.0)) if present and rng.random() < 0.15 else 0.0
                check_in = start - rng.randint(300, 1500) if not late else start + late * 60
                check_out = start + SHIFT_LEN_MIN * 60 + int(overtime * 3600) + rng.randint(60, 900)
                yield {
                    "employee_id": p.nik,
                    "date": iso_day(d),
                    "name": p.name,
                    "role": p.role,
                    "line_id": p.line,
                    "shift": s,
                    "group": group,
                    "status": status,
                    "check_in": stamp_s(d, check_in) if present else None,
                    "check_out": stamp_s(d, check_out) if present else None,
                    "late_min": late,
                    "overtime_h": overtime,
                }


SKILLS = {
    "LINE-A": ["Operasi press", "Setting die", "Crane 5 ton"],
    "LINE-B": ["Operasi CNC", "Setting tool offset", "Pengukuran micrometer"],
    "LINE-C": ["Operasi robot welding", "Torque control", "Leak test"],
    None: ["5S", "K3 dasar", "Forklift"],
}


def operators(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    for p in people():
        first = p.name.split()[0]
        skills = SKILLS[p.line][: rng.randint(1, 3)] + (["Forklift"] if rng.random() < 0.2 else [])
        yield {
            "employee_id": p.nik,
            "name": p.name,
            "gender": "P" if first in FEMALE_NAMES else "L",
            "role": p.role,
            "line_id": p.line,
            "group": p.group,
            "join_date": (date(2012, 1, 2) + timedelta(days=rng.randrange(5000))).isoformat(),
            "skill_level": rng.choice(("L1", "L2", "L2", "L3", "L4")),
            "skills": list(dict.fromkeys(skills)),
        }


INCIDENT_TYPES = (
    ("Near Miss", "Low", 0.55, "Hampir tertabrak forklift di jalur pejalan kaki"),
    ("Unsafe Condition", "Low", 0.20, "Tumpahan oli di lantai dekat mesin"),
    ("First Aid", "Medium", 0.15, "Jari tergores burr saat handling part"),
    ("Property Damage", "Medium", 0.07, "Pallet jatuh dari rak, box rusak"),
    ("Lost Time Injury", "High", 0.03, "Kaki terjepit saat ganti die"),
)
CORRECTIVE = (
    "Pasang safety barrier",
    "Refresh training K3",
    "Perbaikan SOP handling",
    "Tambah rambu & marka lantai",
    "Ganti sarung tangan cut-resistant",
)


def incidents(ctx: SourceContext) -> Iterator[Record]:
    """Mostly near misses, one to three a week; every week in range reports at least one."""
    rng = ctx.rng
    weights = [t[2] for t in INCIDENT_TYPES]
    seq = 0
    for week_start in range(0, ctx.days, 7):
        days = range(week_start, min(week_start + 7, ctx.days))
        picks = sorted((rng.choice(days), rng.randrange(1440)) for _ in range(rng.randint(1, 3)))
        for d, minute in picks:
            seq += 1
            kind, severity, _, description = rng.choices(INCIDENT_TYPES, weights)[0]
            ts = stamp(d, minute)
            zone = rng.choice(ZONES[:5])[0]
            line = next((ln.id for ln in LINES if ln.zone == zone), None)
            closed = d < ctx.days - 3
            yield {
                "incident_id": f"INC-{iso_day(d)[:4]}-{seq:04d}",
                "date": ts[:10],
                "ts": ts,
                "type": kind,
                "severity": severity,
                "zone": zone,
                "line_id": line,
                "description": description,
                "reported_by": rng.choice(people()).nik,
                "days_lost": rng.randint(1, 5) if kind == "Lost Time Injury" else 0,
                "status": "Closed" if closed else "Open",
                "corrective_action": rng.choice(CORRECTIVE) if closed else None,
            }
