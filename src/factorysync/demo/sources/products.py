"""Product data sets: product master data and bills of material."""

from __future__ import annotations

from collections.abc import Iterator

from factorysync.demo.catalogue import PRODUCTS, Product, unit_price_idr
from factorysync.demo.sources.base import Record, SourceContext

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
