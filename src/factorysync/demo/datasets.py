"""The demo's dashboard data sets: one spec per legacy JSON file, in the front end's id order.

The ids, names and paths are the ones the dashboard's ``constant.js`` lists, so
keep them stable; the rows come from the per-domain generators in
:mod:`factorysync.demo.sources`, all drawn from the one plant model in
:mod:`factorysync.demo.plant`.  This module is also where callers import the
model's main names from, as they did when it held the whole data set.
"""

from __future__ import annotations

from factorysync.demo.catalogue import LINES, MACHINES, PRODUCTS
from factorysync.demo.plant import Plant
from factorysync.demo.sources.base import (
    DAILY,
    FIXED,
    INTERVAL,
    HeaderFn,
    Record,
    RowsFn,
    SourceContext,
    SourceSpec,
    header,
    interval_header,
    kpi_header,
)
from factorysync.demo.sources.downtime import (
    andon_calls,
    downtime_by_reason,
    downtime_events,
    downtime_machine,
)
from factorysync.demo.sources.energy import (
    compressed_air,
    electric_consumption,
    energy_per_unit,
    power_consumption,
    water_consumption,
)
from factorysync.demo.sources.equipment import (
    line_list,
    machine_list,
    machine_status,
    machine_utilization,
    temperature_vibration,
)
from factorysync.demo.sources.kpi import (
    daily_kpi_summary,
    kpi_nrdae,
    kpi_nrfc,
    kpi_nrfw,
    kpi_ofe,
    kpi_ofm,
)
from factorysync.demo.sources.layout import machine_layout, plant_zones
from factorysync.demo.sources.maintenance import maintenance_schedule, mtbf_mttr, spare_parts
from factorysync.demo.sources.manpower import incidents, operator_attendance, operators
from factorysync.demo.sources.oee import oee_line, oee_machine, oee_trend, six_big_losses
from factorysync.demo.sources.production import (
    actual_production,
    changeover_log,
    cycle_time,
    line_speed,
    produced_rejected_machine,
    production_by_shift,
    production_target,
    target_vs_actual,
    work_orders,
)
from factorysync.demo.sources.products import bill_of_material, product_info
from factorysync.demo.sources.quality import (
    defect_types,
    defects_by_type,
    first_pass_yield,
    inspection_results,
    scrap_rate,
)
from factorysync.demo.sources.schedule import production_calendar, shift_definitions, shift_schedule
from factorysync.demo.timeline import SHIFT_IDS, calendar_day, iso_day, stamp

__all__ = [
    "DAILY",
    "FIXED",
    "INTERVAL",
    "LINES",
    "MACHINES",
    "PRODUCTS",
    "SHIFT_IDS",
    "SOURCES",
    "Plant",
    "Record",
    "SourceContext",
    "SourceSpec",
    "calendar_day",
    "iso_day",
    "stamp",
]


def _spec(
    id: int,
    name: str,
    file_name: str,
    category: str,
    key: tuple[str, ...],
    rows: RowsFn,
    scaling: str = DAILY,
    records_path: str | None = None,
    head: HeaderFn | None = None,
) -> SourceSpec:
    return SourceSpec(id, name, file_name, category, key, rows, scaling, records_path, head)


SOURCES: tuple[SourceSpec, ...] = (
    _spec(
        1,
        "Aktual Produksi",
        "actual_production.json",
        "production",
        ("line_id", "ts"),
        actual_production,
    ),
    _spec(
        2,
        "Target Produksi",
        "production_target.json",
        "production",
        ("date", "line_id"),
        production_target,
    ),
    _spec(
        3,
        "Target vs Aktual",
        "target_vs_actual.json",
        "production",
        ("date", "line_id"),
        target_vs_actual,
        records_path="data",
        head=header("pcs"),
    ),
    _spec(
        4,
        "Produksi per Shift",
        "production_by_shift.json",
        "production",
        ("date", "shift"),
        production_by_shift,
    ),
    _spec(
        5,
        "Produced & Rejected per Machine",
        "produced_rejected_machine.json",
        "production",
        ("machineId", "date"),
        produced_rejected_machine,
    ),
    _spec(
        6, "Cycle Time per Mesin", "cycle_time.json", "production", ("machine_id", "ts"), cycle_time
    ),
    _spec(
        7,
        "Line Speed",
        "line_speed.json",
        "production",
        ("line_id", "ts"),
        line_speed,
        scaling=INTERVAL,
    ),
    _spec(
        8,
        "Work Order Produksi",
        "work_orders.json",
        "production",
        ("work_order_id",),
        work_orders,
        records_path="records",
        head=header("pcs"),
    ),
    _spec(
        9, "Changeover Log", "changeover_log.json", "production", ("changeover_id",), changeover_log
    ),
    _spec(10, "OEE per Machine", "oee_machine.json", "oee", ("machine_id", "date"), oee_machine),
    _spec(11, "OEE per Line", "oee_line.json", "oee", ("line_id", "date"), oee_line),
    _spec(
        12,
        "Tren OEE",
        "oee_trend.json",
        "oee",
        ("ts",),
        oee_trend,
        records_path="data",
        head=header("ratio", granularity="hour"),
    ),
    _spec(13, "Six Big Losses", "six_big_losses.json", "oee", ("line_id", "date"), six_big_losses),
    _spec(
        14, "Kejadian Downtime", "downtime_events.json", "downtime", ("event_id",), downtime_events
    ),
    _spec(
        15,
        "Downtime by Reason",
        "downtime_by_reason.json",
        "downtime",
        ("date", "reason_code"),
        downtime_by_reason,
        records_path="data",
        head=header("min"),
    ),
    _spec(
        16,
        "Downtime per Mesin",
        "downtime_machine.json",
        "downtime",
        ("machineId", "date"),
        downtime_machine,
    ),
    _spec(17, "Andon Calls", "andon_calls.json", "downtime", ("call_id",), andon_calls),
    _spec(
        18,
        "Defect per Jenis",
        "defects_by_type.json",
        "quality",
        ("date", "defect_code"),
        defects_by_type,
    ),
    _spec(19, "Scrap Rate", "scrap_rate.json", "quality", ("line_id", "date"), scrap_rate),
    _spec(
        20,
        "Hasil Inspeksi QC",
        "inspection_results.json",
        "quality",
        ("inspection_id",),
        inspection_results,
        records_path="records",
        head=header("mixed"),
    ),
    _spec(
        21,
        "First Pass Yield",
        "first_pass_yield.json",
        "quality",
        ("lineId", "date"),
        first_pass_yield,
    ),
    _spec(
        22,
        "Master Jenis Defect",
        "defect_types.json",
        "quality",
        ("defect_code",),
        defect_types,
        scaling=FIXED,
    ),
    _spec(
        23,
        "Power Consumption",
        "power_consumption.json",
        "energy",
        ("machine_id", "ts"),
        power_consumption,
    ),
    _spec(
        24,
        "Konsumsi Listrik Panel",
        "electric_consumption.json",
        "energy",
        ("meter_id", "ts"),
        electric_consumption,
        scaling=INTERVAL,
        records_path="data",
        head=interval_header("kWh"),
    ),
    _spec(
        25,
        "Energi per Unit",
        "energy_per_unit.json",
        "energy",
        ("line_id", "date"),
        energy_per_unit,
    ),
    _spec(
        26,
        "Konsumsi Air",
        "water_consumption.json",
        "energy",
        ("meter_id", "ts"),
        water_consumption,
    ),
    _spec(
        27,
        "Compressed Air",
        "compressed_air.json",
        "energy",
        ("compressorId", "ts"),
        compressed_air,
    ),
    _spec(
        28,
        "Suhu vs Getaran",
        "temperature_vibration.json",
        "equipment",
        ("machine_id", "ts"),
        temperature_vibration,
        scaling=INTERVAL,
    ),
    _spec(
        29,
        "Daftar Mesin",
        "machine_list.json",
        "equipment",
        ("machine_id",),
        machine_list,
        scaling=FIXED,
    ),
    _spec(30, "Daftar Line", "line_list.json", "equipment", ("line_id",), line_list, scaling=FIXED),
    _spec(
        31,
        "Status Mesin",
        "machine_status.json",
        "equipment",
        ("machineId",),
        machine_status,
        scaling=FIXED,
        records_path="data",
        head=header("status"),
    ),
    _spec(
        32,
        "Utilisasi Mesin",
        "machine_utilization.json",
        "equipment",
        ("machine_id", "date"),
        machine_utilization,
    ),
    _spec(
        33,
        "Jadwal Maintenance",
        "maintenance_schedule.json",
        "maintenance",
        ("pm_id",),
        maintenance_schedule,
    ),
    _spec(
        34,
        "MTBF & MTTR",
        "mtbf_mttr.json",
        "maintenance",
        ("machine_id", "month"),
        mtbf_mttr,
        records_path="data",
        head=header("hours"),
    ),
    _spec(
        35,
        "Stok Spare Part",
        "spare_parts.json",
        "maintenance",
        ("part_code",),
        spare_parts,
        scaling=FIXED,
        records_path="items",
        head=header("pcs", currency="IDR"),
    ),
    _spec(
        36,
        "Kalender Produksi",
        "production_calendar.json",
        "calendar",
        ("date",),
        production_calendar,
    ),
    _spec(37, "Jadwal Shift", "shift_schedule.json", "calendar", ("date", "shift"), shift_schedule),
    _spec(
        38,
        "Master Shift",
        "shift_definitions.json",
        "calendar",
        ("shift_id",),
        shift_definitions,
        scaling=FIXED,
    ),
    _spec(
        39,
        "Layout Mesin",
        "machine_layout.json",
        "layout",
        ("machineId",),
        machine_layout,
        scaling=FIXED,
        records_path="items",
        head=header("m", hall={"width": 150, "height": 75}),
    ),
    _spec(
        40, "Zona Pabrik", "plant_zones.json", "layout", ("zone_id",), plant_zones, scaling=FIXED
    ),
    _spec(
        41,
        "Informasi Produk",
        "product_info.json",
        "product",
        ("product_code",),
        product_info,
        scaling=FIXED,
    ),
    _spec(
        42,
        "Bill of Material",
        "bill_of_material.json",
        "product",
        ("product_code", "component_code"),
        bill_of_material,
        scaling=FIXED,
    ),
    _spec(43, "OFM", "kpi_ofm.json", "kpi", ("date", "line_id"), kpi_ofm),
    _spec(44, "OFE", "kpi_ofe.json", "kpi", ("date", "line_id"), kpi_ofe),
    _spec(
        45,
        "NRFC",
        "kpi_nrfc.json",
        "kpi",
        ("date", "line_id"),
        kpi_nrfc,
        records_path="data",
        head=kpi_header(
            "NRFC",
            "Non-Routine Failure Count: unplanned equipment failures "
            "(breakdown, power failure, tool breakage) per line per day",
            "count",
        ),
    ),
    _spec(
        46,
        "NRFW",
        "kpi_nrfw.json",
        "kpi",
        ("date", "line_id"),
        kpi_nrfw,
        records_path="data",
        head=kpi_header(
            "NRFW",
            "Non-Routine Failure Work: technician man-hours spent "
            "repairing non-routine failures per line per day",
            "man-hours",
        ),
    ),
    _spec(
        47,
        "NRDAE",
        "kpi_nrdae.json",
        "kpi",
        ("date", "line_id"),
        kpi_nrdae,
        records_path="data",
        head=kpi_header(
            "NRDAE",
            "Non-Routine Downtime per Available Equipment time: failure "
            "downtime as a share of scheduled machine hours",
            "%",
        ),
    ),
    _spec(48, "KPI Harian Plant", "daily_kpi_summary.json", "kpi", ("date",), daily_kpi_summary),
    _spec(
        49,
        "Absensi Operator",
        "operator_attendance.json",
        "manpower",
        ("employee_id", "date"),
        operator_attendance,
    ),
    _spec(
        50,
        "Daftar Operator",
        "operators.json",
        "manpower",
        ("employee_id",),
        operators,
        scaling=FIXED,
    ),
    _spec(51, "Laporan Insiden", "incidents.json", "safety", ("incident_id",), incidents),
)
