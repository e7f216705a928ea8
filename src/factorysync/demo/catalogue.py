"""The demo plant's fixed catalogue: lines, machines, products, downtime reasons, defects.

The tables are typed Python rather than JSON or YAML files: they are small,
mypy checks every field, and importing them costs no parsing and no package
data to ship.  Their codes (machine ids, product codes, reason and defect
codes) appear in many generated files, so each is defined once, here.
"""

from __future__ import annotations

from dataclasses import dataclass

# The plant's OEE target: daily line targets are the output a line makes at this OEE.
TARGET_OEE = 0.83


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


def unit_price_idr(product: Product) -> int:
    """Selling price per piece, roughly proportional to weight and machining content."""
    return int(product.weight_g * 42 + product.ideal_ct_s * 260 + 6_000) // 100 * 100
