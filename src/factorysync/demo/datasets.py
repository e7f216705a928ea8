"""Deterministic model of the demo plant and the data sets its dashboard reads.

The plant model (calendar, product campaigns, per-machine availability,
performance and quality, downtime events) is shared by every source so that
related files agree: a machine's OEE matches its produced and rejected counts,
downtime per machine matches the downtime event log, and line targets and
actuals match the hourly production records.  Each source still draws its own
noise from a private ``random.Random`` so files stay independent of each other.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, Generic, TypeVar

Record = dict[str, Any]
T = TypeVar("T")

BASE_DATE = date(2026, 1, 5)
TZ_OFFSET = "+07:00"
DAY_START_MIN = 7 * 60
SHIFT_IDS = ("S1", "S2", "S3")
SHIFT_LEN_MIN = 480
# Planned minutes for each hour of a shift: the one-hour break is split over
# hours five and six (e.g. 11:30-12:30 in the morning shift).
SHIFT_HOUR_PLAN = (60, 60, 60, 60, 30, 30, 60, 60)
SHIFT_PLANNED_MIN = sum(SHIFT_HOUR_PLAN)
SHIFT_PACE = {"S1": 1.0, "S2": 0.97, "S3": 0.91}
TARGET_OEE = 0.83
DAY_NAMES_ID = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")

FIXED = "fixed"
DAILY = "daily"
INTERVAL = "interval"

# ---------------------------------------------------------------------------
# Static plant catalogue
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Shift:
    id: str
    name: str
    start: str
    end: str
    break_start: str
    break_end: str


SHIFTS = (
    Shift("S1", "Shift 1 (Pagi)", "07:00", "15:00", "11:30", "12:30"),
    Shift("S2", "Shift 2 (Siang)", "15:00", "23:00", "19:30", "20:30"),
    Shift("S3", "Shift 3 (Malam)", "23:00", "07:00", "03:30", "04:30"),
)


@dataclass(frozen=True)
class Line:
    id: str
    letter: str
    name: str
    zone: str
    supervisor: str
    changeover_min: tuple[int, int]


LINES = (
    Line("LINE-A", "A", "Line A - Press & Stamping", "Z-PRESS", "Hendra Gunawan", (40, 85)),
    Line("LINE-B", "B", "Line B - CNC Machining", "Z-MACH", "Sri Wulandari", (30, 60)),
    Line("LINE-C", "C", "Line C - Assembly & Packing", "Z-ASSY", "Yusuf Siregar", (15, 40)),
)
LINE_BY_ID = {line.id: line for line in LINES}


@dataclass(frozen=True)
class Machine:
    id: str
    line: str
    name: str
    type: str
    brand: str
    model: str
    rated_kw: float
    year: int


def _machines(
    line: str, letter: str, rows: list[tuple[str, str, str, str, float, int]]
) -> list[Machine]:
    return [
        Machine(f"M-{letter}{i:02d}", line, name, kind, brand, model, kw, year)
        for i, (name, kind, brand, model, kw, year) in enumerate(rows, start=1)
    ]


MACHINES = tuple(
    _machines(
        "LINE-A",
        "A",
        [
            ("Uncoiler & Leveler", "Uncoiler", "Dallas", "DL-600", 15.0, 2014),
            ("Blanking Press 200T", "Press", "Komatsu", "OBS-200", 22.0, 2015),
            ("Press 300T #1", "Press", "Aida", "NC1-300", 30.0, 2016),
            ("Press 300T #2", "Press", "Aida", "NC1-300", 30.0, 2018),
            ("Transfer Press 500T", "Transfer Press", "Komatsu", "E2W-500", 55.0, 2019),
            ("Deburring Machine", "Deburring", "Timesavers", "42 RB", 11.0, 2017),
            ("Parts Washer", "Washer", "Dürr Ecoclean", "EcoCWash", 18.0, 2017),
            ("Visual Check Station", "Inspection", "Keyence", "CV-X480", 1.5, 2021),
        ],
    )
    + _machines(
        "LINE-B",
        "B",
        [
            ("CNC Lathe #1", "CNC Lathe", "Mazak", "QTN-200", 18.5, 2016),
            ("CNC Lathe #2", "CNC Lathe", "Mazak", "QTN-200", 18.5, 2018),
            ("Machining Center #1", "Machining Center", "Okuma", "MB-46VAE", 22.0, 2017),
            ("Machining Center #2", "Machining Center", "DMG Mori", "NVX 5080", 26.0, 2020),
            ("Cylindrical Grinder", "Grinder", "Okamoto", "OGM-350", 15.0, 2015),
            ("Drilling & Tapping", "Drilling", "Brother", "Speedio S700", 11.0, 2019),
            ("Industrial Washer", "Washer", "Sugino", "JCC-300", 12.0, 2018),
            ("CMM Inspection", "CMM", "Mitutoyo", "Crysta-Apex V", 3.0, 2022),
        ],
    )
    + _machines(
        "LINE-C",
        "C",
        [
            ("Robot Welding Cell #1", "Robot Welding", "Fanuc", "ARC Mate 100iD", 16.0, 2019),
            ("Robot Welding Cell #2", "Robot Welding", "Yaskawa", "AR1440", 16.0, 2021),
            ("Assembly Station", "Assembly", "In-house", "ASSY-01", 4.0, 2020),
            ("Nutrunner Torque Station", "Torque Station", "Atlas Copco", "QST-42", 5.0, 2020),
            ("Leak Tester", "Leak Tester", "Cosmo", "LS-R900", 2.5, 2021),
            ("Powder Coating Booth", "Coating", "Wagner", "SuperCenter EPG", 45.0, 2016),
            ("Laser Marking", "Marking", "Keyence", "MD-F5200", 1.8, 2022),
            ("Auto Packing Machine", "Packing", "Signode", "BPX-400", 7.5, 2019),
        ],
    )
)
MACHINE_BY_ID = {m.id: m for m in MACHINES}
MACHINES_BY_LINE = {line.id: tuple(m for m in MACHINES if m.line == line.id) for line in LINES}

# Heat rise above ambient (deg C) when running and typical running vibration (mm/s RMS).
THERMAL = {
    "Uncoiler": (12.0, 2.2),
    "Press": (18.0, 3.1),
    "Transfer Press": (22.0, 3.4),
    "Deburring": (14.0, 2.6),
    "Washer": (28.0, 1.4),
    "Inspection": (6.0, 0.4),
    "CNC Lathe": (20.0, 1.9),
    "Machining Center": (22.0, 1.7),
    "Grinder": (16.0, 1.2),
    "Drilling": (18.0, 2.0),
    "CMM": (2.0, 0.2),
    "Robot Welding": (30.0, 1.6),
    "Assembly": (6.0, 0.8),
    "Torque Station": (8.0, 1.0),
    "Leak Tester": (5.0, 0.6),
    "Coating": (38.0, 1.3),
    "Marking": (9.0, 0.5),
    "Packing": (10.0, 1.8),
}


@dataclass(frozen=True)
class Product:
    code: str
    name: str
    name_en: str
    line: str
    ideal_ct_s: float
    material: str
    weight_g: int
    dims_mm: tuple[float, float, float]
    customer: str
    pack_qty: int


CUSTOMERS = ("PT Mitra Otomotif Nusantara", "PT Sejahtera Motor Indonesia", "PT Karya Roda Dua")

PRODUCTS = (
    Product(
        "BRK-2101",
        "Bracket Rem Depan",
        "Front Brake Bracket",
        "LINE-A",
        8.0,
        "SPCC 2.3 mm",
        420,
        (142.0, 86.0, 24.0),
        CUSTOMERS[0],
        200,
    ),
    Product(
        "BRK-2102",
        "Bracket Rem Belakang",
        "Rear Brake Bracket",
        "LINE-A",
        8.5,
        "SPCC 2.3 mm",
        380,
        (128.0, 80.0, 22.0),
        CUSTOMERS[0],
        200,
    ),
    Product(
        "PLT-3301",
        "Pelat Dudukan Mesin",
        "Engine Mount Plate",
        "LINE-A",
        11.0,
        "SAPH440 3.2 mm",
        910,
        (210.0, 150.0, 18.0),
        CUSTOMERS[1],
        100,
    ),
    Product(
        "CVR-4105",
        "Cover Rantai",
        "Chain Cover",
        "LINE-A",
        9.5,
        "SPCC 1.2 mm",
        260,
        (320.0, 95.0, 40.0),
        CUSTOMERS[2],
        150,
    ),
    Product(
        "SFT-1450",
        "Poros Transmisi",
        "Transmission Shaft",
        "LINE-B",
        62.0,
        "S45C",
        1240,
        (245.0, 28.0, 28.0),
        CUSTOMERS[1],
        40,
    ),
    Product(
        "HUB-1620",
        "Hub Roda Depan",
        "Front Wheel Hub",
        "LINE-B",
        85.0,
        "FCD450",
        1630,
        (118.0, 118.0, 64.0),
        CUSTOMERS[2],
        24,
    ),
    Product(
        "GER-1733",
        "Roda Gigi Primer",
        "Primary Drive Gear",
        "LINE-B",
        74.0,
        "SCM420H",
        540,
        (96.0, 96.0, 18.0),
        CUSTOMERS[1],
        60,
    ),
    Product(
        "PIN-1102",
        "Pin Piston",
        "Piston Pin",
        "LINE-B",
        38.0,
        "SCM415",
        85,
        (52.0, 15.0, 15.0),
        CUSTOMERS[0],
        500,
    ),
    Product(
        "ASY-5010",
        "Assy Pedal Rem",
        "Brake Pedal Assy",
        "LINE-C",
        42.0,
        "SPHC + SWRCH",
        760,
        (265.0, 70.0, 55.0),
        CUSTOMERS[0],
        30,
    ),
    Product(
        "ASY-5022",
        "Assy Standar Samping",
        "Side Stand Assy",
        "LINE-C",
        36.0,
        "STKM11A",
        1120,
        (310.0, 60.0, 48.0),
        CUSTOMERS[2],
        25,
    ),
    Product(
        "ASY-5031",
        "Assy Footstep Kiri",
        "Left Footstep Assy",
        "LINE-C",
        48.0,
        "SPHC + Rubber",
        690,
        (220.0, 110.0, 75.0),
        CUSTOMERS[1],
        30,
    ),
    Product(
        "ASY-5040",
        "Assy Bracket Knalpot",
        "Muffler Bracket Assy",
        "LINE-C",
        52.0,
        "SAPH370",
        830,
        (180.0, 140.0, 60.0),
        CUSTOMERS[0],
        40,
    ),
)
PRODUCT_BY_CODE = {p.code: p for p in PRODUCTS}
PRODUCTS_BY_LINE = {line.id: tuple(p.code for p in PRODUCTS if p.line == line.id) for line in LINES}


@dataclass(frozen=True)
class DowntimeReason:
    code: str
    name: str
    name_id: str
    category: str
    minutes: tuple[int, int]
    weight: float


REASONS = (
    DowntimeReason("DT01", "Breakdown", "Mesin rusak", "Unplanned", (20, 90), 0.0),
    DowntimeReason("DT02", "Changeover", "Ganti model", "Planned", (15, 90), 0.0),
    DowntimeReason("DT03", "Material shortage", "Material kosong", "Unplanned", (10, 45), 0.14),
    DowntimeReason("DT04", "Quality problem", "Masalah kualitas", "Unplanned", (8, 35), 0.10),
    DowntimeReason("DT05", "Minor stop", "Berhenti sesaat", "Unplanned", (2, 9), 0.39),
    DowntimeReason("DT06", "Tool change", "Ganti tool", "Planned", (8, 25), 0.12),
    DowntimeReason("DT07", "Waiting operator", "Menunggu operator", "Unplanned", (5, 20), 0.08),
    DowntimeReason("DT08", "Planned maintenance", "Perawatan terjadwal", "Planned", (20, 60), 0.05),
    DowntimeReason("DT09", "Power failure", "Listrik padam", "Unplanned", (5, 40), 0.005),
    DowntimeReason("DT10", "Cleaning / 5S", "Pembersihan / 5S", "Planned", (10, 20), 0.10),
    DowntimeReason("DT11", "Tool breakage", "Tool patah", "Unplanned", (10, 40), 0.02),
)
REASON_BY_CODE = {r.code: r for r in REASONS}
FAILURE_REASONS = ("DT01", "DT09", "DT11")
_RANDOM_REASONS = tuple(r for r in REASONS if r.weight > 0)
_RANDOM_REASON_WEIGHTS = tuple(r.weight for r in _RANDOM_REASONS)


@dataclass(frozen=True)
class DefectType:
    code: str
    name: str
    name_id: str
    lines: tuple[str, ...]
    weight: float
    severity: str


DEFECTS = (
    DefectType("DF01", "Burr", "Gram", ("LINE-A", "LINE-B"), 0.22, "Minor"),
    DefectType("DF02", "Crack", "Retak", ("LINE-A",), 0.08, "Critical"),
    DefectType("DF03", "Dent", "Penyok", ("LINE-A", "LINE-C"), 0.14, "Major"),
    DefectType("DF04", "Dimension NG", "Dimensi NG", ("LINE-A", "LINE-B"), 0.18, "Major"),
    DefectType("DF05", "Scratch", "Baret", ("LINE-A", "LINE-B", "LINE-C"), 0.16, "Minor"),
    DefectType("DF06", "Surface roughness", "Permukaan kasar", ("LINE-B",), 0.10, "Minor"),
    DefectType("DF07", "Thread NG", "Ulir NG", ("LINE-B",), 0.07, "Major"),
    DefectType("DF08", "Leak", "Bocor", ("LINE-C",), 0.09, "Critical"),
    DefectType("DF09", "Torque NG", "Torsi NG", ("LINE-C",), 0.11, "Major"),
    DefectType("DF10", "Missing part", "Part kurang", ("LINE-C",), 0.05, "Critical"),
    DefectType("DF11", "Weld porosity", "Porositas las", ("LINE-C",), 0.12, "Major"),
    DefectType("DF12", "Coating peel-off", "Cat mengelupas", ("LINE-C",), 0.08, "Minor"),
)

# Quality characteristics checked by the line inspector each hour.
CHARACTERISTICS = {
    "LINE-A": (("Hole diameter", "mm", 8.50, 0.05), ("Flatness", "mm", 0.05, 0.05)),
    "LINE-B": (("Outer diameter", "mm", 25.000, 0.010), ("Overall length", "mm", 120.00, 0.05)),
    "LINE-C": (("Tightening torque", "N·m", 45.0, 4.5), ("Leak rate", "cc/min", 1.0, 1.0)),
}

FIRST_NAMES = (
    "Agus",
    "Budi",
    "Dewi",
    "Siti",
    "Rina",
    "Andi",
    "Joko",
    "Wahyu",
    "Eko",
    "Sri",
    "Fajar",
    "Dian",
    "Indah",
    "Rizky",
    "Nur",
    "Putri",
    "Bayu",
    "Teguh",
    "Ahmad",
    "Dedi",
    "Asep",
    "Ujang",
    "Lina",
    "Fitri",
    "Rudi",
    "Slamet",
    "Bambang",
    "Yanti",
    "Ratna",
    "Imam",
    "Galih",
)
LAST_NAMES = (
    "Santoso",
    "Saputra",
    "Wijaya",
    "Hidayat",
    "Pratama",
    "Setiawan",
    "Kurniawan",
    "Nugroho",
    "Siregar",
    "Lubis",
    "Simanjuntak",
    "Susanto",
    "Rahman",
    "Permana",
    "Firmansyah",
    "Hakim",
    "Utami",
    "Lestari",
    "Wulandari",
    "Maulana",
    "Purnomo",
    "Hasibuan",
    "Ramadhan",
)
FEMALE_NAMES = frozenset(
    {
        "Dewi",
        "Siti",
        "Rina",
        "Sri",
        "Dian",
        "Indah",
        "Putri",
        "Lina",
        "Fitri",
        "Yanti",
        "Ratna",
        "Nur",
    }
)
GROUPS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Person:
    nik: str
    name: str
    role: str
    line: str | None
    group: str


@lru_cache(maxsize=1)
def people() -> tuple[Person, ...]:
    """Plant staff: six operators per line and group plus leaders, technicians and QC."""
    staff: list[Person] = []
    roles = [("Operator", line.id) for line in LINES for _ in range(6)]
    roles += [
        ("Group Leader", None),
        ("Technician", None),
        ("Technician", None),
        ("QC Inspector", None),
    ]
    index = 0
    for group in GROUPS:
        for role, line in roles:
            first = FIRST_NAMES[(index * 7) % len(FIRST_NAMES)]
            last = LAST_NAMES[(index * 5 + index // 23) % len(LAST_NAMES)]
            staff.append(Person(f"{21030 + index * 13}", f"{first} {last}", role, line, group))
            index += 1
    return tuple(staff)


def staff_with_role(role: str) -> tuple[Person, ...]:
    return tuple(p for p in people() if p.role == role)


# ---------------------------------------------------------------------------
# Time helpers
# ---------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def iso_day(day: int) -> str:
    """ISO date of production day ``day`` (0 is the fixed base date)."""
    return (BASE_DATE + timedelta(days=day)).isoformat()


def stamp(day: int, minute: int) -> str:
    """Timestamp ``minute`` minutes after 07:00 on production day ``day``.

    A production day runs from 07:00 to 07:00 the next morning, so the night
    shift's records carry the next calendar date.
    """
    extra, rem = divmod(DAY_START_MIN + minute, 1440)
    return f"{iso_day(day + extra)}T{rem // 60:02d}:{rem % 60:02d}:00{TZ_OFFSET}"


def stamp_s(day: int, second: int) -> str:
    """Like :func:`stamp` with second resolution, for short events such as andon calls."""
    extra, rem = divmod(DAY_START_MIN * 60 + second, 86400)
    hh, rest = divmod(rem, 3600)
    return f"{iso_day(day + extra)}T{hh:02d}:{rest // 60:02d}:{rest % 60:02d}{TZ_OFFSET}"


def yymmdd(day: int) -> str:
    return iso_day(day)[2:].replace("-", "")


def clock_hour(hour_index: int) -> int:
    """Wall-clock hour of the ``hour_index``-th hour of a production day."""
    return (7 + hour_index) % 24


def ambient_c(hour_index: int) -> float:
    """Shop-floor ambient temperature in Cikarang: ~26 C before dawn, ~32 C mid-afternoon."""
    return 29.0 + 3.0 * math.sin(2 * math.pi * (clock_hour(hour_index) - 9) / 24)


# ---------------------------------------------------------------------------
# Production calendar
# ---------------------------------------------------------------------------

HOLIDAYS_2026 = {
    "2026-01-01": "Tahun Baru Masehi",
    "2026-01-16": "Isra Mikraj Nabi Muhammad SAW",
    "2026-02-17": "Tahun Baru Imlek",
    "2026-03-19": "Hari Suci Nyepi",
    "2026-03-20": "Idul Fitri 1447 H",
    "2026-03-21": "Idul Fitri 1447 H",
    "2026-04-03": "Wafat Yesus Kristus",
    "2026-05-01": "Hari Buruh Internasional",
    "2026-05-14": "Kenaikan Yesus Kristus",
    "2026-05-27": "Idul Adha 1447 H",
    "2026-05-31": "Hari Raya Waisak",
    "2026-06-01": "Hari Lahir Pancasila",
    "2026-06-16": "Tahun Baru Islam 1448 H",
    "2026-08-17": "Hari Kemerdekaan RI",
    "2026-08-25": "Maulid Nabi Muhammad SAW",
    "2026-12-25": "Hari Raya Natal",
}
FIXED_HOLIDAYS = {
    "01-01": "Tahun Baru Masehi",
    "05-01": "Hari Buruh Internasional",
    "06-01": "Hari Lahir Pancasila",
    "08-17": "Hari Kemerdekaan RI",
    "12-25": "Hari Raya Natal",
}


@dataclass(frozen=True)
class CalendarDay:
    index: int
    iso: str
    weekday: int
    holiday: str | None
    shifts: tuple[str, ...]

    @property
    def is_working(self) -> bool:
        return bool(self.shifts)

    @property
    def planned_min(self) -> int:
        return len(self.shifts) * SHIFT_PLANNED_MIN

    @property
    def span_min(self) -> int:
        """Minutes from 07:00 until the last shift of the day ends."""
        return len(self.shifts) * SHIFT_LEN_MIN


@lru_cache(maxsize=4096)
def calendar_day(day: int) -> CalendarDay:
    """Working pattern: three shifts Monday-Friday, two on Saturday, off Sundays and holidays."""
    iso = iso_day(day)
    weekday = (BASE_DATE + timedelta(days=day)).weekday()
    holiday = HOLIDAYS_2026.get(iso) if iso.startswith("2026") else FIXED_HOLIDAYS.get(iso[5:])
    if holiday or weekday == 6:
        shifts: tuple[str, ...] = ()
    elif weekday == 5:
        shifts = SHIFT_IDS[:2]
    else:
        shifts = SHIFT_IDS
    return CalendarDay(day, iso, weekday, holiday, shifts)


@lru_cache(maxsize=4096)
def hour_plan(day: int) -> tuple[int, ...]:
    """Planned production minutes for each of the 24 hours of a production day."""
    shifts = calendar_day(day).shifts
    return tuple(SHIFT_HOUR_PLAN[h % 8] if SHIFT_IDS[h // 8] in shifts else 0 for h in range(24))


def shift_of_hour(hour_index: int) -> str:
    return SHIFT_IDS[hour_index // 8]


# ---------------------------------------------------------------------------
# Shared plant model
# ---------------------------------------------------------------------------


class DaySequence(Generic[T]):
    """Values built day by day from one generator.

    Reading day 40 before day 3 yields the same history as reading in order,
    so sources can consult the model in any order and stay deterministic.
    """

    def __init__(self, rng: random.Random, step: Callable[[random.Random, T | None, int], T]):
        self._rng = rng
        self._step = step
        self._values: list[T] = []

    def __getitem__(self, day: int) -> T:
        while len(self._values) <= day:
            prev = self._values[-1] if self._values else None
            self._values.append(self._step(self._rng, prev, len(self._values)))
        return self._values[day]


@dataclass(frozen=True)
class Profile:
    availability: float
    performance: float
    quality: float
    breakdown_rate: float
    ct_factor: float


@dataclass(frozen=True)
class Factors:
    availability: float
    performance: float
    quality: float
    breakdown_loss: float

    @property
    def breakdown(self) -> bool:
        return self.breakdown_loss > 0


@dataclass(frozen=True)
class CampaignDay:
    product: str
    changeover_from: str | None
    changeover_min: int
    campaign: int
    remaining: int


@dataclass(frozen=True)
class MachineDay:
    product: str
    planned_min: int
    run_min: int
    downtime_min: int
    ideal_ct_s: float
    total: int
    reject: int
    breakdown: bool

    @property
    def good(self) -> int:
        return self.total - self.reject

    @property
    def availability(self) -> float:
        return self.run_min / self.planned_min

    @property
    def performance(self) -> float:
        return self.total * self.ideal_ct_s / (self.run_min * 60)

    @property
    def quality(self) -> float:
        return self.good / self.total if self.total else 1.0


@dataclass(frozen=True)
class LineDay:
    product: str
    changeover_from: str | None
    planned_min: int
    availability: float
    performance: float
    quality: float
    total: int
    reject: int
    target: int

    @property
    def good(self) -> int:
        return self.total - self.reject

    @property
    def oee(self) -> float:
        return self.availability * self.performance * self.quality


@dataclass(frozen=True)
class HourSlot:
    hour: int
    shift: str
    planned_min: int
    total: int
    reject: int


@dataclass(frozen=True)
class DowntimeEvent:
    machine: str
    start_min: int
    duration_min: int
    reason: str


def clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def allocate(total: int, weights: list[float]) -> list[int]:
    """Split an integer total proportionally to weights (largest remainder), summing exactly."""
    weight_sum = sum(weights)
    if total <= 0 or weight_sum <= 0:
        return [0] * len(weights)
    shares = [total * w / weight_sum for w in weights]
    parts = [int(s) for s in shares]
    order = sorted(range(len(weights)), key=lambda i: (parts[i] - shares[i], i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


class Plant:
    """Deterministic day-by-day state of the plant for one seed."""

    def __init__(self, seed: int):
        self.seed = seed
        profile_rng = self.rng("profiles")
        self.profiles = {m.id: _profile(profile_rng, m) for m in MACHINES}
        self._factors = {
            m.id: DaySequence(self.rng("factors", m.id), self._factor_step(self.profiles[m.id]))
            for m in MACHINES
        }
        self._campaigns = {
            line.id: DaySequence(self.rng("campaigns", line.id), _campaign_step(line))
            for line in LINES
        }
        self._machine_days: dict[tuple[str, int], MachineDay | None] = {}
        self._line_days: dict[tuple[str, int], LineDay | None] = {}
        self._hours: dict[tuple[str, int], tuple[HourSlot, ...]] = {}
        self._events: dict[tuple[str, int], tuple[DowntimeEvent, ...]] = {}

    def rng(self, *parts: object) -> random.Random:
        """A generator keyed by seed and purpose; string seeds hash identically on every run."""
        return random.Random(":".join(["factorysync-demo", str(self.seed), *map(str, parts)]))

    @staticmethod
    def _factor_step(profile: Profile) -> Callable[[random.Random, Factors | None, int], Factors]:
        def step(rng: random.Random, prev: Factors | None, day: int) -> Factors:
            base = prev or Factors(profile.availability, profile.performance, profile.quality, 0.0)
            a = profile.availability + 0.6 * (base.availability - profile.availability)
            p = profile.performance + 0.6 * (base.performance - profile.performance)
            q = profile.quality + 0.6 * (base.quality - profile.quality)
            return Factors(
                clamp(a + rng.gauss(0, 0.018), 0.70, 0.985),
                clamp(p + rng.gauss(0, 0.015), 0.75, 0.99),
                clamp(q + rng.gauss(0, 0.004), 0.94, 0.998),
                rng.uniform(0.10, 0.28) if rng.random() < profile.breakdown_rate else 0.0,
            )

        return step

    def campaign(self, line: str, day: int) -> CampaignDay:
        return self._campaigns[line][day]

    def factors(self, machine: str, day: int) -> Factors:
        return self._factors[machine][day]

    def machine_day(self, machine: str, day: int) -> MachineDay | None:
        key = (machine, day)
        if key not in self._machine_days:
            self._machine_days[key] = self._build_machine_day(machine, day)
        return self._machine_days[key]

    def _build_machine_day(self, machine: str, day: int) -> MachineDay | None:
        cal = calendar_day(day)
        if not cal.is_working:
            return None
        line = MACHINE_BY_ID[machine].line
        camp = self.campaign(line, day)
        f = self.factors(machine, day)
        downtime = round(cal.planned_min * (1 - f.availability + f.breakdown_loss))
        if camp.changeover_from:
            downtime = max(downtime, camp.changeover_min + 12)
        run = cal.planned_min - downtime
        ct = round(PRODUCT_BY_CODE[camp.product].ideal_ct_s * self.profiles[machine].ct_factor, 2)
        total = int(run * 60 / ct * f.performance)
        reject = round(total * (1 - f.quality))
        return MachineDay(
            camp.product, cal.planned_min, run, downtime, ct, total, reject, f.breakdown
        )

    def line_day(self, line: str, day: int) -> LineDay | None:
        key = (line, day)
        if key not in self._line_days:
            self._line_days[key] = self._build_line_day(line, day)
        return self._line_days[key]

    def _build_line_day(self, line: str, day: int) -> LineDay | None:
        mds = [md for m in MACHINES_BY_LINE[line] if (md := self.machine_day(m.id, day))]
        if not mds:
            return None
        n = len(mds)
        a = sum(md.availability for md in mds) / n
        p = sum(md.performance for md in mds) / n
        q = sum(md.quality for md in mds) / n
        camp = self.campaign(line, day)
        capacity = mds[0].planned_min * 60 / PRODUCT_BY_CODE[camp.product].ideal_ct_s
        total = int(capacity * a * p)
        reject = round(total * (1 - q))
        target = int(capacity * TARGET_OEE / 10) * 10
        return LineDay(
            camp.product, camp.changeover_from, mds[0].planned_min, a, p, q, total, reject, target
        )

    def line_hours(self, line: str, day: int) -> tuple[HourSlot, ...]:
        """Hourly split of a line's daily output.

        The night shift runs slower, and output dips in the changeover hour and in
        one hour of any day a machine on the line breaks down.
        """
        key = (line, day)
        if key not in self._hours:
            self._hours[key] = self._build_hours(line, day)
        return self._hours[key]

    def _build_hours(self, line: str, day: int) -> tuple[HourSlot, ...]:
        ld = self.line_day(line, day)
        if ld is None:
            return ()
        rng = self.rng("hours", line, day)
        plan = hour_plan(day)
        hours = [h for h in range(24) if plan[h]]
        weights = [plan[h] * SHIFT_PACE[shift_of_hour(h)] * rng.uniform(0.86, 1.1) for h in hours]
        if ld.changeover_from:
            weights[0] *= 0.35
        if any(self.factors(m.id, day).breakdown for m in MACHINES_BY_LINE[line]):
            weights[rng.randrange(len(weights))] *= 0.3
        totals = allocate(ld.total, weights)
        rejects = allocate(ld.reject, [t * rng.uniform(0.5, 1.5) for t in totals])
        return tuple(
            HourSlot(h, shift_of_hour(h), plan[h], t, r)
            for h, t, r in zip(hours, totals, rejects, strict=True)
        )

    def downtime_events(self, machine: str, day: int) -> tuple[DowntimeEvent, ...]:
        key = (machine, day)
        if key not in self._events:
            self._events[key] = self._build_events(machine, day)
        return self._events[key]

    def _build_events(self, machine: str, day: int) -> tuple[DowntimeEvent, ...]:
        """Split a machine's daily downtime into non-overlapping stops across its shifts."""
        md = self.machine_day(machine, day)
        if md is None or md.downtime_min <= 0:
            return ()
        rng = self.rng("events", machine, day)
        camp = self.campaign(MACHINE_BY_ID[machine].line, day)
        remaining = md.downtime_min
        parts: list[tuple[str, int]] = []
        if camp.changeover_from:
            parts.append(("DT02", camp.changeover_min))
            remaining -= camp.changeover_min
        if md.breakdown and remaining > 20:
            big = round(remaining * rng.uniform(0.5, 0.75))
            parts.append(("DT01", big))
            remaining -= big
        while remaining > 0:
            reason = rng.choices(_RANDOM_REASONS, _RANDOM_REASON_WEIGHTS)[0]
            minutes = min(remaining, rng.randint(*reason.minutes))
            parts.append((reason.code, minutes))
            remaining -= minutes
        head = parts[:1] if camp.changeover_from else []
        tail = parts[len(head) :]
        rng.shuffle(tail)
        ordered = head + tail
        span = calendar_day(day).span_min
        free = span - md.downtime_min
        cuts = sorted(rng.randint(0, free) for _ in ordered)
        if head:
            cuts[0] = 0
        events = []
        elapsed = 0
        for (reason, minutes), cut in zip(ordered, cuts, strict=True):
            events.append(DowntimeEvent(machine, cut + elapsed, minutes, reason))
            elapsed += minutes
        return tuple(events)

    def last_working_day(self, days: int) -> int:
        return max(d for d in range(days) if calendar_day(d).is_working)


def _profile(rng: random.Random, machine: Machine) -> Profile:
    return Profile(
        availability=rng.uniform(0.87, 0.95),
        performance=rng.uniform(0.88, 0.96),
        quality=rng.uniform(0.978, 0.995)
        if machine.line != "LINE-C"
        else rng.uniform(0.985, 0.997),
        breakdown_rate=rng.uniform(0.02, 0.07),
        ct_factor=round(rng.uniform(0.82, 1.0), 2),
    )


def _campaign_step(line: Line) -> Callable[[random.Random, CampaignDay | None, int], CampaignDay]:
    """Run each product for 2-5 working days; day 0 always starts with a changeover."""
    products = PRODUCTS_BY_LINE[line.id]

    def step(rng: random.Random, prev: CampaignDay | None, day: int) -> CampaignDay:
        if prev is None:
            prev = CampaignDay(rng.choice(products), None, 0, 0, 0)
        if not calendar_day(day).is_working:
            return CampaignDay(prev.product, None, 0, prev.campaign, prev.remaining)
        if prev.remaining > 0:
            return CampaignDay(prev.product, None, 0, prev.campaign, prev.remaining - 1)
        product = rng.choice([p for p in products if p != prev.product])
        return CampaignDay(
            product,
            prev.product,
            rng.randint(*line.changeover_min),
            prev.campaign + 1,
            rng.randint(2, 5) - 1,
        )

    return step


def shift_group(day: int, shift: str) -> str:
    """Four crews rotate weekly over three shifts; the fourth crew is off."""
    k = (day // 7) % len(GROUPS)
    order = GROUPS[k:] + GROUPS[:k]
    return order[SHIFT_IDS.index(shift)]


def unit_price_idr(product: Product) -> int:
    """Selling price per piece, roughly proportional to weight and machining content."""
    return int(product.weight_g * 42 + product.ideal_ct_s * 260 + 6_000) // 100 * 100


# ---------------------------------------------------------------------------
# Source framework
# ---------------------------------------------------------------------------


@dataclass
class SourceContext:
    """What a source's row generator may use: the shared plant and its own random stream."""

    plant: Plant
    days: int
    interval_min: int
    rng: random.Random

    @property
    def updated_at(self) -> str:
        return stamp(self.days, 0)

    def working_days(self) -> Iterator[int]:
        return (d for d in range(self.days) if calendar_day(d).is_working)


RowsFn = Callable[[SourceContext], Iterable[Record]]
HeaderFn = Callable[[SourceContext], Record]


@dataclass(frozen=True)
class SourceSpec:
    id: int
    name: str
    file_name: str
    category: str
    primary_key: tuple[str, ...]
    rows: RowsFn
    scaling: str = DAILY
    records_path: str | None = None
    header: HeaderFn | None = None

    @property
    def file_path(self) -> str:
        return f"data/{self.category}/{self.file_name}"


def header(unit: str, **extra: Any) -> HeaderFn:
    """Metadata written before the record list of wrapped files."""

    def build(ctx: SourceContext) -> Record:
        return {"updated_at": ctx.updated_at, "plant": "Cikarang", "unit": unit, **extra}

    return build


def interval_header(unit: str) -> HeaderFn:
    def build(ctx: SourceContext) -> Record:
        return {
            "updated_at": ctx.updated_at,
            "plant": "Cikarang",
            "unit": unit,
            "interval_min": ctx.interval_min,
        }

    return build


def kpi_header(code: str, description: str, unit: str) -> HeaderFn:
    def build(ctx: SourceContext) -> Record:
        return {
            "kpi": code,
            "description": description,
            "unit": unit,
            "updated_at": ctx.updated_at,
            "period_start": iso_day(0),
            "period_end": iso_day(ctx.days - 1),
        }

    return build


def _ratio(value: float) -> float:
    return round(value, 4)


def _pct(part: float, whole: float, digits: int = 2) -> float:
    return round(100 * part / whole, digits) if whole else 0.0


def _operator(ctx: SourceContext, day: int, shift: str, line: str | None) -> str:
    group = shift_group(day, shift)
    crew = [p for p in people() if p.group == group and (line is None or p.line == line)]
    return ctx.rng.choice(crew).nik


# ---------------------------------------------------------------------------
# Production
# ---------------------------------------------------------------------------


def actual_production(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        per_line = [
            (line.id, ctx.plant.line_day(line.id, d), ctx.plant.line_hours(line.id, d))
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
            ld = ctx.plant.line_day(line.id, d)
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
            ld = ctx.plant.line_day(line.id, d)
            achievement = _pct(ld.good, ld.target, 1)
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
            ld = ctx.plant.line_day(line.id, d)
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
                "achievement_pct": _pct(actual - reject, target, 1),
                "lines_running": len(LINES),
            }


def produced_rejected_machine(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        for m in MACHINES:
            md = ctx.plant.machine_day(m.id, d)
            yield {
                "machineId": m.id,
                "lineId": m.line,
                "date": iso_day(d),
                "productCode": md.product,
                "qtyTotal": md.total,
                "qtyGood": md.good,
                "qtyReject": md.reject,
                "rejectRate": _pct(md.reject, md.total, 2),
            }


def cycle_time(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    for d in ctx.working_days():
        mds = [(m.id, ctx.plant.machine_day(m.id, d)) for m in MACHINES]
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


MEAN_STOP_MIN = 18.0


def next_running(rng: random.Random, running: bool, availability: float, interval_min: int) -> bool:
    """Step a run/stop chain whose long-run running share equals ``availability``.

    Stops last about MEAN_STOP_MIN minutes, so sampled status changes look like
    real stoppages rather than an independent coin flip per sample.
    """
    start = min(1.0, interval_min / MEAN_STOP_MIN)
    stop = min(1.0, start * (1 - availability) / availability) if availability > 0 else 1.0
    return rng.random() >= stop if running else rng.random() < start


def line_speed(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    iv = ctx.interval_min
    running = dict.fromkeys(LINE_BY_ID, False)
    for d in range(ctx.days):
        plan = hour_plan(d)
        lines = []
        for line in LINES:
            ld = ctx.plant.line_day(line.id, d)
            product = ctx.plant.campaign(line.id, d).product
            ideal = 60 / PRODUCT_BY_CODE[product].ideal_ct_s
            lines.append((line.id, product, ideal, ld))
        for minute in range(0, 1440, iv):
            ts = stamp(d, minute)
            working = plan[minute // 60] > 0
            for line_id, product, ideal, ld in lines:
                on = working and next_running(rng, running[line_id], ld.availability, iv)
                running[line_id] = on
                speed = ideal * ld.performance * rng.uniform(0.93, 1.05) if on else 0.0
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
    days, d = [], start
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
                "qty_plan": sum(ctx.plant.line_day(line.id, x).target for x in run_days),
                "qty_done": sum(ctx.plant.line_day(line.id, x).good for x in done_days),
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


# ---------------------------------------------------------------------------
# OEE
# ---------------------------------------------------------------------------


def oee_machine(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        for m in MACHINES:
            md = ctx.plant.machine_day(m.id, d)
            a, p, q = md.availability, md.performance, md.quality
            yield {
                "machine_id": m.id,
                "line_id": m.line,
                "date": iso_day(d),
                "product_code": md.product,
                "planned_time_min": md.planned_min,
                "run_time_min": md.run_min,
                "downtime_min": md.downtime_min,
                "availability": _ratio(a),
                "performance": _ratio(p),
                "quality": _ratio(q),
                "oee": _ratio(a * p * q),
            }


def oee_line(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        for line in LINES:
            ld = ctx.plant.line_day(line.id, d)
            yield {
                "line_id": line.id,
                "date": iso_day(d),
                "product_code": ld.product,
                "availability": _ratio(ld.availability),
                "performance": _ratio(ld.performance),
                "quality": _ratio(ld.quality),
                "oee": _ratio(ld.oee),
                "oee_target": TARGET_OEE,
            }


def oee_trend(ctx: SourceContext) -> Iterator[Record]:
    for d in ctx.working_days():
        per_line = []
        for line in LINES:
            ct = PRODUCT_BY_CODE[ctx.plant.line_day(line.id, d).product].ideal_ct_s
            per_line.append((line.letter.lower(), ct, ctx.plant.line_hours(line.id, d)))
        for i, slot in enumerate(per_line[0][2]):
            rec: Record = {"ts": stamp(d, slot.hour * 60), "date": iso_day(d), "shift": slot.shift}
            values = []
            for letter, ct, hours in per_line:
                s = hours[i]
                value = min((s.total - s.reject) * ct / (s.planned_min * 60), 0.999)
                rec[f"oee_line_{letter}"] = _ratio(value)
                values.append(value)
            rec["oee_plant"] = _ratio(sum(values) / len(values))
            yield rec


def _line_events(plant: Plant, line: str, day: int) -> list[DowntimeEvent]:
    return [e for m in MACHINES_BY_LINE[line] for e in plant.downtime_events(m.id, day)]


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
            events = _line_events(ctx.plant, line.id, d)
            rec: Record = {"line_id": line.id, "date": iso_day(d)}
            for name, codes in LOSS_GROUPS.items():
                rec[name] = sum(e.duration_min for e in events if e.reason in codes)
            mds = [ctx.plant.machine_day(m.id, d) for m in MACHINES_BY_LINE[line.id]]
            rec["reduced_speed_min"] = round(sum(md.run_min * (1 - md.performance) for md in mds))
            ld = ctx.plant.line_day(line.id, d)
            startup = round(ld.reject * ctx.rng.uniform(0.2, 0.4)) if ld.changeover_from else 0
            rec["startup_reject_qty"] = startup
            rec["production_reject_qty"] = ld.reject - startup
            yield rec


# ---------------------------------------------------------------------------
# Downtime
# ---------------------------------------------------------------------------

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
                "reported_by": _operator(ctx, d, shift, machine.line),
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
                "share_pct": _pct(sum(mine), total, 1),
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


# ---------------------------------------------------------------------------
# Quality
# ---------------------------------------------------------------------------


def defects_by_type(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    for d in ctx.working_days():
        counts: dict[str, dict[str, int]] = {df.code: {} for df in DEFECTS}
        output = 0
        for line in LINES:
            ld = ctx.plant.line_day(line.id, d)
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
            ld = ctx.plant.line_day(line.id, d)
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
                "scrap_rate_pct": _pct(scrap, ld.total, 3),
                "scrap_cost_idr": scrap * unit_price_idr(product) * 6 // 10,
            }


def inspection_results(ctx: SourceContext) -> Iterator[Record]:
    rng = ctx.rng
    inspectors = staff_with_role("QC Inspector")
    for d in ctx.working_days():
        plan = hour_plan(d)
        for line in LINES:
            product = ctx.plant.line_day(line.id, d).product
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
            ld = ctx.plant.line_day(line.id, d)
            yield {
                "lineId": line.id,
                "date": iso_day(d),
                "productCode": ld.product,
                "inputQty": ld.total,
                "passQty": ld.good,
                "failQty": ld.reject,
                "fpy": _ratio(ld.good / ld.total),
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


# ---------------------------------------------------------------------------
# Energy and utilities
# ---------------------------------------------------------------------------


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
            ld = ctx.plant.line_day(line.id, d)
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


# ---------------------------------------------------------------------------
# Equipment
# ---------------------------------------------------------------------------


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
        md = ctx.plant.machine_day(m.id, day)
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
            "oeeToday": _ratio(md.availability * md.performance * md.quality),
            "operatorNik": _operator(ctx, day, calendar_day(day).shifts[-1], m.line),
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
                "utilization_pct": _pct(run, 1440, 1),
                "loading_pct": _pct(planned, 1440, 1),
            }


# ---------------------------------------------------------------------------
# Maintenance
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Calendar
# ---------------------------------------------------------------------------


def production_calendar(ctx: SourceContext) -> Iterator[Record]:
    for d in range(ctx.days):
        cal = calendar_day(d)
        iso_year, week, _ = (BASE_DATE + timedelta(days=d)).isocalendar()
        yield {
            "date": cal.iso,
            "day_name": DAY_NAMES_ID[cal.weekday],
            "week": f"{iso_year}-W{week:02d}",
            "is_working_day": cal.is_working,
            "holiday_name": cal.holiday,
            "shifts": list(cal.shifts),
            "planned_hours": round(cal.planned_min / 60, 1),
            "note": "Libur nasional"
            if cal.holiday
            else "Minggu"
            if cal.weekday == 6
            else "Sabtu 2 shift"
            if cal.weekday == 5
            else None,
        }


def shift_schedule(ctx: SourceContext) -> Iterator[Record]:
    leaders = staff_with_role("Group Leader")
    for d in ctx.working_days():
        for i, s in enumerate(calendar_day(d).shifts):
            group = shift_group(d, s)
            start = i * SHIFT_LEN_MIN
            crew = [p for p in people() if p.group == group]
            yield {
                "date": iso_day(d),
                "shift": s,
                "group": group,
                "leader": next(p.name for p in leaders if p.group == group),
                "start_ts": stamp(d, start),
                "end_ts": stamp(d, start + SHIFT_LEN_MIN),
                "break_start_ts": stamp(d, start + 270),
                "break_end_ts": stamp(d, start + 330),
                "planned_min": SHIFT_PLANNED_MIN,
                "headcount_plan": len(crew),
            }


def shift_definitions(ctx: SourceContext) -> Iterator[Record]:
    for s in SHIFTS:
        yield {
            "shift_id": s.id,
            "name": s.name,
            "start": s.start,
            "end": s.end,
            "break_start": s.break_start,
            "break_end": s.break_end,
            "planned_min": SHIFT_PLANNED_MIN,
            "crosses_midnight": s.end < s.start,
            "working_days": ["Senin", "Selasa", "Rabu", "Kamis", "Jumat"]
            + (["Sabtu"] if s.id != "S3" else []),
        }


# ---------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------

FOOTPRINT = {
    "Press": (5.0, 4.0),
    "Transfer Press": (9.0, 5.5),
    "Uncoiler": (4.0, 3.0),
    "Washer": (6.0, 2.5),
    "Machining Center": (4.5, 3.5),
    "CNC Lathe": (4.0, 2.5),
    "Robot Welding": (5.0, 5.0),
    "Coating": (8.0, 4.0),
    "CMM": (3.0, 3.0),
}
LINE_Y = {"LINE-A": 10.0, "LINE-B": 30.0, "LINE-C": 50.0}
ZONES = (
    ("Z-PRESS", "Area Press & Stamping", "production", (0, 2, 120, 18), "#E57373", "High"),
    ("Z-MACH", "Area Machining", "production", (0, 22, 120, 38), "#64B5F6", "Medium"),
    ("Z-ASSY", "Area Assembly & Packing", "production", (0, 42, 120, 58), "#81C784", "Medium"),
    ("Z-WH", "Gudang Material & FG", "warehouse", (124, 2, 150, 40), "#FFD54F", "Medium"),
    (
        "Z-UTIL",
        "Ruang Utilitas (kompresor, panel)",
        "utility",
        (124, 42, 150, 58),
        "#A1887F",
        "High",
    ),
    ("Z-QC", "Laboratorium QC", "support", (60, 62, 84, 72), "#BA68C8", "Low"),
    ("Z-OFC", "Kantor Produksi", "office", (0, 62, 40, 72), "#90A4AE", "Low"),
)
ZONE_PPE = {
    "High": ["Helm", "Sepatu safety", "Kacamata", "Earplug", "Sarung tangan"],
    "Medium": ["Sepatu safety", "Kacamata", "Sarung tangan"],
    "Low": ["Sepatu safety"],
}


def machine_layout(ctx: SourceContext) -> Iterator[Record]:
    for m in MACHINES:
        index = int(m.id[-2:]) - 1
        w, h = FOOTPRINT.get(m.type, (3.5, 2.5))
        yield {
            "machineId": m.id,
            "lineId": m.line,
            "label": m.name,
            "zone": LINE_BY_ID[m.line].zone,
            "position": {"x": round(8.0 + index * 14.0, 1), "y": LINE_Y[m.line]},
            "size": {"w": w, "h": h},
            "rotation": 90 if m.type == "Washer" else 0,
            "flowOrder": index + 1,
            "iconType": m.type.lower().replace(" ", "-"),
        }


def plant_zones(ctx: SourceContext) -> Iterator[Record]:
    for zone_id, name, kind, (x0, y0, x1, y1), color, hazard in ZONES:
        yield {
            "zone_id": zone_id,
            "name": name,
            "type": kind,
            "area_m2": (x1 - x0) * (y1 - y0),
            "color": color,
            "hazard_level": hazard,
            "polygon": [
                {"x": x0, "y": y0},
                {"x": x1, "y": y0},
                {"x": x1, "y": y1},
                {"x": x0, "y": y1},
            ],
            "ppe": ZONE_PPE[hazard],
        }


# ---------------------------------------------------------------------------
# Products
# ---------------------------------------------------------------------------

SURFACE = {
    "LINE-A": "Anti-rust oil",
    "LINE-B": "Induction hardening",
    "LINE-C": "Powder coating hitam",
}


def product_info(ctx: SourceContext) -> Iterator[Record]:
    for i, p in enumerate(PRODUCTS):
        length, width, height = p.dims_mm
        yield {
            "product_code": p.code,
            "name": p.name,
            "name_en": p.name_en,
            "line_id": p.line,
            "customer": p.customer,
            "ideal_ct_s": p.ideal_ct_s,
            "std_pack_qty": p.pack_qty,
            "unit_price_idr": unit_price_idr(p),
            "active": True,
            "specs": {
                "material": p.material,
                "weight_g": p.weight_g,
                "dimensions_mm": {"length": length, "width": width, "height": height},
                "surface_treatment": SURFACE[p.line],
                "drawing_no": f"DWG-{p.code}",
                "revision": "ABCD"[i % 4],
            },
            "launched": f"{2019 + i % 6}-{1 + (i * 5) % 12:02d}-01",
        }


def _bom_lines(p: Product) -> list[tuple[str, str, float, str, str]]:
    kg = p.weight_g / 1000
    packaging = ("PK-BOX-01", "Box karton", round(1 / p.pack_qty, 4), "pcs", "Packaging")
    if p.line == "LINE-A":
        return [
            (
                "RM-COIL-" + p.material.split()[0],
                f"Coil {p.material}",
                round(kg * 1.32, 3),
                "kg",
                "Raw material",
            ),
            ("CS-OIL-01", "Anti-rust oil", 0.002, "liter", "Consumable"),
            packaging,
        ]
    if p.line == "LINE-B":
        return [
            (
                "RM-BAR-" + p.material,
                f"Round bar {p.material}",
                round(kg * 1.45, 3),
                "kg",
                "Raw material",
            ),
            ("CS-CLN-01", "Coolant concentrate", 0.004, "liter", "Consumable"),
            ("PK-VCI-01", "Plastik VCI", 1.0, "pcs", "Packaging"),
            packaging,
        ]
    return [
        ("CP-BLT-M8", "Bolt flange M8x20", 2.0, "pcs", "Component"),
        ("CP-NUT-M8", "Nut flange M8", 2.0, "pcs", "Component"),
        ("RM-PIPE-01", f"Pipa / pelat {p.material}", round(kg * 1.12, 3), "kg", "Raw material"),
        ("CS-WIRE-12", "Kawat las ER70S-6 1.2 mm", 0.018, "kg", "Consumable"),
        ("CS-PWD-BK", "Powder paint hitam", 0.035, "kg", "Consumable"),
        ("PK-LBL-01", "Label barcode", 1.0, "pcs", "Packaging"),
        packaging,
    ]


def bill_of_material(ctx: SourceContext) -> Iterator[Record]:
    for p in PRODUCTS:
        for code, name, qty, uom, kind in _bom_lines(p):
            yield {
                "product_code": p.code,
                "component_code": code,
                "component_name": name,
                "qty_per_unit": qty,
                "uom": uom,
                "type": kind,
                "scrap_allowance_pct": 2.0 if kind == "Raw material" else 0.0,
            }


# ---------------------------------------------------------------------------
# Plant KPIs
# ---------------------------------------------------------------------------

OPERATORS_PER_LINE_SHIFT = 6


def kpi_ofm(ctx: SourceContext) -> Iterator[Record]:
    """Overall Factory Manpower efficiency: earned standard man-hours over actual man-hours."""
    rng = ctx.rng
    for d in ctx.working_days():
        shifts = len(calendar_day(d).shifts)
        for line in LINES:
            ld = ctx.plant.line_day(line.id, d)
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
                "ofm": _ratio(ofm),
                "ofm_target": 0.85,
            }


def kpi_ofe(ctx: SourceContext) -> Iterator[Record]:
    """Overall Factory Effectiveness: line OEE scaled by the share of the day that was scheduled."""
    for d in ctx.working_days():
        for line in LINES:
            ld = ctx.plant.line_day(line.id, d)
            utilization = ld.planned_min / 1440
            yield {
                "date": iso_day(d),
                "line_id": line.id,
                "calendar_time_min": 1440,
                "planned_time_min": ld.planned_min,
                "utilization": _ratio(utilization),
                "oee": _ratio(ld.oee),
                "ofe": _ratio(ld.oee * utilization),
                "ofe_target": 0.65,
            }


def _failures(plant: Plant, line: str, day: int) -> list[DowntimeEvent]:
    return [e for e in _line_events(plant, line, day) if e.reason in FAILURE_REASONS]


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
        lds = [ctx.plant.line_day(line.id, d) for line in LINES]
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
            "achievement_pct": _pct(good, target, 1),
            "mtd_output_good": month_to_date[month],
            "availability": _ratio(sum(ld.availability for ld in lds) / 3),
            "performance": _ratio(sum(ld.performance for ld in lds) / 3),
            "quality": _ratio(sum(ld.quality for ld in lds) / 3),
            "oee": _ratio(sum(ld.oee for ld in lds) / 3),
            "reject_rate_pct": _pct(total - good, total, 2),
            "machine_downtime_min": downtime,
            "attendance_pct": round(ctx.rng.uniform(93.0, 99.0), 1),
        }


# ---------------------------------------------------------------------------
# Manpower and safety
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Source registry (legacy ids are the dashboard's; keep them stable)
# ---------------------------------------------------------------------------


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
