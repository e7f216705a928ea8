"""Maintenance data sets: the preventive maintenance plan, MTBF and MTTR, spare part stock."""

from __future__ import annotations

from collections.abc import Iterator

from factorysync.demo.catalogue import FAILURE_REASONS, MACHINES
from factorysync.demo.sources.base import Record, SourceContext
from factorysync.demo.staff import staff_with_role
from factorysync.demo.timeline import iso_day, yymmdd

PM_TASKS = (
    (
        "LUB",
        "Pelumasan & cek level oli",
        "PM",
        7,
        0.5,
        ["Cek level oli", "Isi grease titik pelumasan", "Cek kebocoran"],
    ),
    (
        "PDM",
        "Vibration analysis & thermography",
        "PdM",
        14,
        0.75,
        ["Ukur getaran bearing", "Foto thermal panel", "Bandingkan trend"],
    ),
    (
        "PMM",
        "Preventive maintenance bulanan",
        "PM",
        28,
        3.0,
        ["Cek baut & kopling", "Bersihkan filter", "Cek sensor & interlock", "Uji emergency stop"],
    ),
    (
        "OVH",
        "Overhaul & kalibrasi",
        "PM",
        91,
        8.0,
        ["Ganti seal & bearing", "Kalibrasi sensor", "Uji akurasi", "Update dokumen mesin"],
    ),
)


def maintenance_schedule(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    technicians = staff_with_role("Technician")
    for d in range(ctx.days):
        for i, m in enumerate(MACHINES):
            for code, task, kind, interval, hours, checklist in PM_TASKS:
                if d % interval != (i * 3) % interval:
                    continue
                done = d < ctx.days - 2
                yield {
                    "pm_id": f"PM-{yymmdd(d)}-{m.id}-{code}",
                    "machine_id": m.id,
                    "line_id": m.line,
                    "planned_date": iso_day(d),
                    "task_code": code,
                    "task": task,
                    "type": kind,
                    "interval_days": interval,
                    "est_duration_h": hours,
                    "technician": rng.choice(technicians).name,
                    "status": "Completed" if done else "Scheduled",
                    "actual_duration_h": round(hours * rng.uniform(0.8, 1.3), 2) if done else None,
                    "checklist": checklist,
                }


def _months(days: int) -> dict[str, list[int]]:
    months: dict[str, list[int]] = {}
    for d in range(days):
        months.setdefault(iso_day(d)[:7], []).append(d)
    return months


def mtbf_mttr(ctx: SourceContext) -> Iterator[Record]:
    for month, days in _months(ctx.days).items():
        for m in MACHINES:
            run = sum(md.run_min for d in days if (md := ctx.plant.machine_day(m.id, d)))
            repairs = [
                e.duration_min
                for d in days
                for e in ctx.plant.downtime_events(m.id, d)
                if e.reason in FAILURE_REASONS
            ]
            n = len(repairs)
            yield {
                "machine_id": m.id,
                "month": month,
                "line_id": m.line,
                "run_hours": round(run / 60, 1),
                "failures": n,
                "repair_min": sum(repairs),
                "mtbf_h": round(run / 60 / n, 1) if n else None,
                "mttr_min": round(sum(repairs) / n, 1) if n else None,
            }


SPARE_PARTS = (
    ("BRG", "Bearing 6205-2RS", "pcs", 85_000, ("Press", "Uncoiler", "Deburring", "Packing")),
    ("BRG", "Bearing 6308-ZZ", "pcs", 260_000, ("Press", "Transfer Press")),
    ("BRG", "Spindle bearing set", "set", 24_000_000, ("Machining Center", "CNC Lathe")),
    ("TRM", "V-belt B-52", "pcs", 120_000, ("Uncoiler", "Deburring", "Washer")),
    ("TRM", "Timing belt HTD 8M-1200", "pcs", 640_000, ("Packing", "Transfer Press")),
    ("HYD", 'Selang hidrolik 1/2" x 1 m', "pcs", 350_000, ("Press", "Transfer Press")),
    ("HYD", "Seal kit silinder hidrolik", "set", 1_450_000, ("Press", "Transfer Press")),
    (
        "LUB",
        "Oli hidrolik ISO VG 46",
        "liter",
        48_000,
        ("Press", "Transfer Press", "Machining Center"),
    ),
    (
        "LUB",
        "Way lube oil ISO VG 68",
        "liter",
        55_000,
        ("CNC Lathe", "Machining Center", "Grinder"),
    ),
    ("CON", "Coolant concentrate", "liter", 95_000, ("CNC Lathe", "Machining Center", "Drilling")),
    (
        "ELC",
        "Proximity sensor M12 PNP",
        "pcs",
        450_000,
        ("Press", "Assembly", "Leak Tester", "Packing"),
    ),
    ("ELC", "Photoelectric sensor", "pcs", 780_000, ("Uncoiler", "Packing", "Inspection")),
    ("ELC", "Contactor 3P 32A", "pcs", 650_000, ("Press", "Washer", "Coating", "Uncoiler")),
    ("ELC", "Servo motor 2 kW", "pcs", 18_500_000, ("Transfer Press", "Robot Welding")),
    ("ELC", "Inverter 7.5 kW", "pcs", 9_800_000, ("Uncoiler", "Washer", "Packing")),
    ("ELC", "Heater element 6 kW", "pcs", 2_400_000, ("Washer", "Coating")),
    ("PNE", "Solenoid valve 5/2 24VDC", "pcs", 1_250_000, ("Press", "Assembly", "Leak Tester")),
    ("PNE", "Air cylinder Ø40x100", "pcs", 1_600_000, ("Assembly", "Torque Station", "Packing")),
    ("TOL", "Carbide insert CNMG 120408", "pcs", 95_000, ("CNC Lathe",)),
    ("TOL", "End mill carbide Ø10", "pcs", 650_000, ("Machining Center",)),
    ("TOL", "Drill HSS-Co Ø6.8", "pcs", 120_000, ("Drilling",)),
    ("TOL", "Tap M8x1.25", "pcs", 180_000, ("Drilling",)),
    ("TOL", "Grinding wheel WA60", "pcs", 1_900_000, ("Grinder",)),
    ("TOL", "Punch Ø8.5 SKD11", "pcs", 750_000, ("Press", "Transfer Press")),
    ("TOL", "Die spring 40x100", "pcs", 210_000, ("Press", "Transfer Press")),
    ("TOL", "Nutrunner spindle module", "pcs", 32_000_000, ("Torque Station",)),
    ("CON", "Contact tip M6 1.2 mm", "pcs", 8_500, ("Robot Welding",)),
    ("CON", "Welding nozzle", "pcs", 65_000, ("Robot Welding",)),
    ("CON", "Powder gun nozzle", "pcs", 750_000, ("Coating",)),
    ("CON", "Strapping band PP 12 mm", "roll", 280_000, ("Packing",)),
    ("FLT", "Cartridge filter", "pcs", 1_100_000, ("Coating", "Washer")),
    ("SEL", "O-ring set leak test jig", "set", 450_000, ("Leak Tester",)),
    ("SEL", "Oil seal 35x52x7", "pcs", 35_000, ("CNC Lathe", "Grinder", "Deburring")),
    ("MSR", "Probe stylus M3 Ø2", "pcs", 1_350_000, ("CMM",)),
    ("MSR", "Lensa kamera 16 mm", "pcs", 3_200_000, ("Inspection", "Marking")),
    ("MSR", "Protective window laser", "pcs", 420_000, ("Marking",)),
)
SUPPLIERS = (
    "PT Teknik Jaya Abadi",
    "CV Sumber Makmur Sparepart",
    "PT Indo Bearing Mandiri",
    "PT Prima Tools Indonesia",
    "PT Elektrika Nusantara",
)


def spare_parts(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    for i, (cat, desc, uom, price, types) in enumerate(SPARE_PARTS, start=1):
        min_stock = rng.choice((2, 4, 5, 10, 20)) * (5 if uom == "liter" or price < 100_000 else 1)
        stock = rng.randint(0, min_stock * 3)
        yield {
            "part_code": f"SP-{cat}-{i:04d}",
            "description": desc,
            "category": cat,
            "uom": uom,
            "stock_qty": stock,
            "min_stock": min_stock,
            "max_stock": min_stock * 3,
            "reorder": stock < min_stock,
            "unit_price_idr": price,
            "lead_time_days": rng.choice((3, 7, 14, 30, 45)),
            "location": f"RAK-{'ABCDEF'[i % 6]}-{rng.randint(1, 12):02d}",
            "supplier": rng.choice(SUPPLIERS),
            "critical": price >= 1_000_000,
            "compatible_machines": [m.id for m in MACHINES if m.type in types],
        }
