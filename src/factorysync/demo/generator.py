"""Generate the demo plant data set: one JSON file per dashboard source plus ``constant.js``.

The output imitates what a plant dashboard front end ships: static JSON files of
varying shapes (plain arrays and ``{"updated_at": ..., "data": [...]}`` wrappers,
snake_case and camelCase fields, nested values) and a ``constant.js`` written in
JavaScript object-literal syntax, so the importer and sync engine meet the same
variety they would in a real plant.

Output is a pure function of ``(seed, size_mb)``.  Time-series files are streamed
record by record, so memory stays flat even for a 200 MB data set.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from factorysync.demo.datasets import SOURCES
from factorysync.demo.plant import Plant
from factorysync.demo.sources.base import DAILY, FIXED, INTERVAL, SourceContext, SourceSpec
from factorysync.demo.timeline import SHIFT_IDS, calendar_day

ProgressFn = Callable[[int, int], None]
Write = Callable[[str], object]

# Sampling intervals (minutes) for the high-frequency sources, finest first.
INTERVALS = (5, 10, 15, 30, 60)
# Prefer finer sampling only while the data still covers at least this many days.
MIN_DAYS_FOR_FINER = 28
# Below that, the longest history whose size is within this fraction of the target.
CLOSE_ENOUGH = 0.12
# Days measured to price the daily sources (one full week: weekdays, Saturday, Sunday).
SAMPLE_DAYS = 7
CHUNK = 512
BYTES_PER_MB = 1024 * 1024

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class DemoSource:
    """One dashboard source as constant.js lists it, plus where its records sit and its key."""

    id: int
    name: str
    file_name: str
    file_path: str
    category: str
    records_path: str | None
    primary_key: tuple[str, ...]


@dataclass(frozen=True)
class Scale:
    """How much history to generate: ``days`` of data sampled every ``interval_min``."""

    days: int
    interval_min: int


def generate_demo(
    root: Path,
    *,
    size_mb: float = 5.0,
    seed: int = 42,
    progress: ProgressFn | None = None,
) -> list[DemoSource]:
    """Write every demo JSON file under root plus root/"constant.js".

    Returns the sources in id order.  progress(done, total) is called after each
    file; total counts constant.js too, so a progress bar ends exactly at 100 %.
    Deterministic: same seed and size -> byte-identical files.
    """
    if size_mb <= 0:
        raise ValueError("size_mb must be positive")
    root = Path(root)
    plant = Plant(seed)
    scale = plan_scale(plant, size_mb)
    sources = [to_demo_source(spec) for spec in SOURCES]
    total = len(SOURCES) + 1
    for done, spec in enumerate(SOURCES, start=1):
        path = root / spec.file_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="\n", buffering=1 << 20) as fh:
            write_source(spec, context(plant, spec, scale), fh.write)
        if progress:
            progress(done, total)
    root.mkdir(parents=True, exist_ok=True)
    (root / "constant.js").write_text(render_constant_js(sources), encoding="utf-8", newline="\n")
    if progress:
        progress(total, total)
    return sources


def to_demo_source(spec: SourceSpec) -> DemoSource:
    return DemoSource(
        id=spec.id,
        name=spec.name,
        file_name=spec.file_name,
        file_path=spec.file_path,
        category=spec.category,
        records_path=spec.records_path,
        primary_key=spec.primary_key,
    )


def context(plant: Plant, spec: SourceSpec, scale: Scale) -> SourceContext:
    """A fresh context with the source's own random stream, so files don't depend on each other."""
    rng = random.Random(f"factorysync-demo:{plant.seed}:source:{spec.id}")
    return SourceContext(plant=plant, days=scale.days, interval_min=scale.interval_min, rng=rng)


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def write_source(spec: SourceSpec, ctx: SourceContext, write: Write) -> None:
    """Small reference files are pretty-printed; time series are streamed one record per line."""
    if spec.scaling == FIXED:
        write(_render_small(spec, ctx))
    else:
        _stream(spec, ctx, write)


def _render_small(spec: SourceSpec, ctx: SourceContext) -> str:
    records: Any = list(spec.rows(ctx))
    if not records:
        raise RuntimeError(f"demo source {spec.id} produced no records")
    document = _wrap(spec, ctx, records) if spec.records_path else records
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _wrap(spec: SourceSpec, ctx: SourceContext, records: Any) -> dict[str, Any]:
    head = spec.header(ctx) if spec.header else {}
    return {**head, str(spec.records_path): records}


def _stream(spec: SourceSpec, ctx: SourceContext, write: Write) -> None:
    if spec.records_path:
        opening = _ENCODER.encode(_wrap(spec, ctx, []))
        write(opening[:-2] + "\n")  # keep '{..., "data":[' and stream the records into it
        closing = "\n]}\n"
    else:
        write("[\n")
        closing = "\n]\n"
    first = True
    for chunk in _chunks(spec.rows(ctx), CHUNK):
        write(("" if first else ",\n") + ",\n".join(map(_ENCODER.encode, chunk)))
        first = False
    if first:
        raise RuntimeError(f"demo source {spec.id} produced no records")
    write(closing)


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


# ---------------------------------------------------------------------------
# Size planning
# ---------------------------------------------------------------------------


class _ByteCounter:
    """A write target that only counts UTF-8 bytes, for measuring sample output."""

    def __init__(self) -> None:
        self.total = 0

    def __call__(self, text: str) -> None:
        self.total += len(text.encode("utf-8"))


def measure(plant: Plant, specs: Iterable[SourceSpec], scale: Scale) -> int:
    """Bytes the given sources would take on disk at ``scale``, without writing them."""
    counter = _ByteCounter()
    for spec in specs:
        write_source(spec, context(plant, spec, scale), counter)
    return counter.total


def _load(day: int) -> float:
    """Share of a full three-shift day that is worked; daily files grow with it."""
    return len(calendar_day(day).shifts) / len(SHIFT_IDS)


def daily_cost_model(plant: Plant, specs: list[SourceSpec]) -> Callable[[int], float]:
    """Bytes the daily sources add for day ``i``: a part every day and a part per worked shift.

    Both parts come from two measurements (day one alone, and a full sample week)
    so Sundays, Saturdays and holidays are priced correctly for short histories.
    """
    one = measure(plant, specs, Scale(1, INTERVALS[-1]))
    week = measure(plant, specs, Scale(SAMPLE_DAYS, INTERVALS[-1]))
    first = _load(0)
    loads = sum(_load(d) for d in range(SAMPLE_DAYS))
    denominator = loads - SAMPLE_DAYS * first
    per_load = (week - SAMPLE_DAYS * one) / denominator if denominator else one / first
    per_load = max(per_load, 0.0)
    base = max(one - first * per_load, 0.0)
    return lambda day: base + per_load * _load(day)


def _days_around(
    target: float, fixed: float, cost: Callable[[int], float], interval_per_day: float
) -> list[tuple[int, float]]:
    """The day counts whose estimated total brackets the target, with their estimates."""
    total, days = fixed, 0
    while True:
        following = total + cost(days) + interval_per_day
        if following >= target:
            break
        total, days = following, days + 1
    pairs = [(days + 1, following)]
    if days >= 1:
        pairs.append((days, total))
    return pairs


def plan_scale(plant: Plant, size_mb: float) -> Scale:
    """Choose days and sampling interval so the files total about ``size_mb``.

    Sizes are measured rather than estimated from record counts: the reference
    files, the daily sources over one and seven days, and one day of each interval
    setting.  Finer sampling is used once it still leaves at least four weeks of
    history.  Smaller targets get the longest history that lands close to the
    target, since a dashboard's trend charts need days more than five-minute samples.
    """
    target = size_mb * BYTES_PER_MB
    by_kind = {kind: [s for s in SOURCES if s.scaling == kind] for kind in (FIXED, DAILY, INTERVAL)}
    fixed = measure(plant, by_kind[FIXED], Scale(1, INTERVALS[-1]))
    cost = daily_cost_model(plant, by_kind[DAILY])
    candidates: list[tuple[float, int, int]] = []
    for interval in INTERVALS:
        per_day = measure(plant, by_kind[INTERVAL], Scale(1, interval))
        options = [
            (abs(est - target) / target, -days, interval)
            for days, est in _days_around(target, fixed, cost, per_day)
        ]
        best = min(options)
        if -best[1] >= MIN_DAYS_FOR_FINER:
            return Scale(-best[1], interval)
        candidates += options
    close = [c for c in candidates if c[0] <= CLOSE_ENOUGH]
    _, neg_days, interval = min(close, key=lambda c: (c[1], c[0])) if close else min(candidates)
    return Scale(-neg_days, interval)


# ---------------------------------------------------------------------------
# constant.js
# ---------------------------------------------------------------------------

CATEGORY_TITLES = {
    "production": "Produksi",
    "oee": "OEE",
    "downtime": "Downtime",
    "quality": "Quality",
    "energy": "Energi & utilitas",
    "equipment": "Mesin",
    "maintenance": "Maintenance",
    "calendar": "Kalender & shift",
    "layout": "Layout",
    "product": "Produk",
    "kpi": "KPI plant",
    "manpower": "Manpower",
    "safety": "Safety",
}


def js_string(value: str, quote: str = '"') -> str:
    """A JavaScript string literal; the other quote style is used when it avoids escapes."""
    if quote in value and ('"' if quote == "'" else "'") not in value:
        quote = '"' if quote == "'" else "'"
    escaped = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
    return f"{quote}{escaped}{quote}"


def _entry(source: DemoSource, index: int) -> str:
    """Entries alternate between multi-line and one-line layouts and quote styles,
    as hand-maintained front-end files tend to."""
    quote = "'" if index % 3 == 2 else '"'
    fields = [
        ("id", str(source.id)),
        ("name", js_string(source.name, quote)),
        ("type", js_string("json", quote)),
        ("fileName", js_string(source.file_name, quote)),
        ("filePath", js_string(source.file_path, quote)),
    ]
    if index % 4 == 1:
        return "  { " + ", ".join(f"{k}: {v}" for k, v in fields) + " },"
    body = "\n".join(f"    {k}: {v}," for k, v in fields)
    return "  {\n" + body + "\n  },"


def render_constant_js(sources: list[DemoSource]) -> str:
    lines = [
        "// Data sources for the plant dashboard",
        "// PT Sinar Logam Presisi - Plant Cikarang (LINE-A / LINE-B / LINE-C)",
        "",
        "/*",
        " * Every widget reads one static JSON file. Paths are relative to the",
        ' * dashboard\'s public folder; `type` is always "json" for now.',
        " */",
        "export const default_source_data = [",
    ]
    category = None
    for index, source in enumerate(sources):
        if source.category != category:
            category = source.category
            lines.append(f"  // --- {CATEGORY_TITLES.get(category, category)} ---")
        lines.append(_entry(source, index))
        if source.id == 12:
            lines.append(
                '  // { id: 0, name: "OEE Lama (v1)", type: "json", '
                'fileName: "oee_old.json", filePath: "data/oee/oee_old.json" },'
            )
    lines += [
        "];",
        "",
        "/* Auto refresh interval for every widget, in milliseconds. */",
        "export const refresh_ms = 300000;",
        "",
        'export const plant_name = "Plant Cikarang";',
        "",
    ]
    return "\n".join(lines)
