"""Layout data sets: machine positions on the floor plan and the plant's zones."""

from __future__ import annotations

from collections.abc import Iterator

from factorysync.demo.catalogue import LINE_BY_ID, MACHINES
from factorysync.demo.sources.base import Record, SourceContext

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
