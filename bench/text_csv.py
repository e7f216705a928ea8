"""Case h's file: a wide, text-heavy CSV such as a plant's MES or quality export.

24 columns, 19 of them free text: multi-word phrases with commas, doubled quotes
(``12" flange``), line breaks inside quoted fields, non-ASCII letters and empty values,
beside an id, a count, a measurement, a timestamp and a status. Deterministic for a seed:
every contender loads the same bytes. Values are drawn from per-column pools (a few
thousand phrases each) so that a million rows are written in seconds, while nearly every
row still differs from the others.
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 20261206
TEXT_COLUMNS = [
    "work_order",
    "machine",
    "operator_note",
    "defect_description",
    "corrective_action",
    "shift_comment",
    "customer",
    "part_name",
    "material_spec",
    "supplier_note",
    "inspection_remarks",
    "maintenance_log",
    "tool_description",
    "location",
    "batch_label",
    "quality_comment",
    "approval_note",
    "tags",
    "free_text",
]
COLUMNS = ["id", *TEXT_COLUMNS[:17], "qty", "measured", "recorded_at", "status", *TEXT_COLUMNS[17:]]
# The native loader's typed table (psql \copy); factorysync and the peers make their own.
PG_TEXT_TABLE = (
    "CREATE TABLE production (id BIGINT PRIMARY KEY, "
    + ", ".join(f"{c} TEXT" for c in TEXT_COLUMNS[:17])
    + ", qty INTEGER, measured DOUBLE PRECISION, recorded_at TIMESTAMPTZ, status TEXT, "
    + ", ".join(f"{c} TEXT" for c in TEXT_COLUMNS[17:])
    + ")"
)

WORDS = [
    "spindle",
    "bearing",
    "coolant",
    "flange",
    "weld",
    "seam",
    "burr",
    "scratch",
    "dent",
    "porosity",
    "torque",
    "sensor",
    "clamp",
    "fixture",
    "hydraulic",
    "pressure",
    "leak",
    "drift",
    "calibration",
    "operator",
    "line",
    "press",
    "robot",
    "conveyor",
    "pallet",
    "gauge",
    "tolerance",
    "housing",
    "bracket",
    "bolt",
    "nut",
    "shaft",
    "gear",
    "motor",
    "belt",
    "vibration",
    "temperature",
    "overheating",
    "alarm",
    "reset",
    "restart",
    "changeover",
    "setup",
    "scrap",
    "rework",
    "approved",
    "rejected",
    "pending",
    "inspection",
    "sample",
    "batch",
    "lot",
    "supplier",
    "customer",
    "order",
    "shift",
    "night",
    "morning",
    "afternoon",
    "maintenance",
    "lubrication",
    "filter",
    "nozzle",
    "paint",
    "coating",
    "primer",
    "cutting",
    "drilling",
    "milling",
    "grinding",
    "polishing",
    "assembly",
    "packaging",
    "label",
    "barcode",
    "pemeriksaan",
    "mesin",
    "cacat",
    "perbaikan",
    "Schweißnaht",
    "Prüfung",
    "contrôle",
    "qualité",
]
MARKS = [", ", "; ", " - ", " / ", ": "]
STATUSES = ["ok", "rework", "scrap", "hold", "released"]


def _phrase(rng: random.Random, words: int) -> str:
    """A text value: words with separators, now and then a quote or a line break."""
    parts: list[str] = []
    for i in range(words):
        if i:
            parts.append(rng.choice(MARKS) if rng.random() < 0.25 else " ")
        parts.append(rng.choice(WORDS))
    text = "".join(parts)
    roll = rng.random()
    if roll < 0.04:
        text += f' {rng.randint(4, 48)}" flange'  # a doubled quote in the file
    elif roll < 0.05:
        text += "\n" + _phrase(rng, max(2, words // 2))  # a line break inside the field
    elif roll < 0.07:
        text = f'"{text}"'  # quoted speech
    return text.capitalize()


def _pool(rng: random.Random, size: int, shortest: int, longest: int) -> list[str]:
    pool = [_phrase(rng, rng.randint(shortest, longest)) for _ in range(size)]
    pool[: size // 12] = [""] * (size // 12)  # about one value in twelve is empty
    return pool


def write_text_heavy(path: Path, rows: int, seed: int = SEED) -> int:
    """Write ``rows`` records with a header; returns the file's size in bytes."""
    rng = random.Random(seed)
    long = {"operator_note", "defect_description", "maintenance_log", "free_text"}
    pools = {c: _pool(rng, 4096, *((2, 7) if c in long else (1, 2))) for c in TEXT_COLUMNS}
    picks = {c: rng.choices(range(4096), k=rows) for c in TEXT_COLUMNS}
    start = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(COLUMNS)
        chunk = 50_000
        for first in range(0, rows, chunk):
            block = []
            for i in range(first, min(first + chunk, rows)):
                text = [pools[c][picks[c][i]] for c in TEXT_COLUMNS]
                block.append(
                    [
                        i + 1,
                        *text[:17],
                        (i * 7919) % 500,
                        f"{((i * 104729) % 100_000) / 1000:.3f}",
                        (start + timedelta(seconds=i * 3)).isoformat(),
                        STATUSES[i % len(STATUSES)],
                        *text[17:],
                    ]
                )
            writer.writerows(block)
    return path.stat().st_size
