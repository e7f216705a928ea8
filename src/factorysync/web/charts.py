"""Small charts drawn on the server as inline SVG: no script and no download needed.

Each chart is a ``<svg>`` with a ``<title>`` per mark (the browser shows it on hover), an
``aria-label`` and a ``data-points`` count so tests and screen readers can read it.

The x axis is time (:func:`time_bars`, :func:`time_line`): a mark sits where its moment
falls, and the tick labels come at round steps of the plant's clock, written as precisely
as the step needs (``HH:MM`` within a day, ``dd Mon HH:MM`` over days, dates over weeks),
so no two ticks read the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from itertools import pairwise
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 180
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 12, 26
PLOT_W, PLOT_H = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
MOST_TICKS = 5
DAY = 86400
# Tick steps in seconds, smallest first: the chart takes the first that fits.
STEPS = (
    *(1, 2, 5, 10, 15, 30),
    *(60, 120, 300, 600, 900, 1800),
    *(3600, 7200, 10800, 14400, 21600, 43200),
    *(DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY, 56 * DAY, 91 * DAY, 182 * DAY, 364 * DAY),
)
EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Mark:
    """One value at one moment (timezone-aware), with its hover text."""

    at: datetime
    value: float
    tip: str
    key: str = ""  # data-key of the mark (a run id), for tests and scripts


def _fmt(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    if value >= 10 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.2f}"


# -- time axis -------------------------------------------------------------------------
def _label(when: datetime, fmt: str, months: Sequence[str]) -> str:
    month = months[when.month - 1]
    if fmt == "time_s":
        return when.strftime("%H:%M:%S")
    if fmt == "time":
        return when.strftime("%H:%M")
    if fmt == "day_time":
        return f"{when.day:02d} {month} {when.strftime('%H:%M')}"
    if fmt == "day":
        return f"{when.day:02d} {month}"
    return f"{when.day:02d} {month} {when.year}"


def time_ticks(
    start: datetime,
    end: datetime,
    zone: tzinfo,
    months: Sequence[str] = EN_MONTHS,
    most: int = MOST_TICKS,
) -> list[tuple[datetime, str]]:
    """Round moments between ``start`` and ``end`` (at most ``most``) with their labels in
    ``zone``: distinct, and as precise as the step between them needs."""
    first, last = start.astimezone(zone), end.astimezone(zone)
    span = (last - first).total_seconds()
    if span <= 0:
        return [(start, _label(first, "day_time", months))]
    step = next((s for s in STEPS if span / s <= most - 1), STEPS[-1])
    naive = first.replace(tzinfo=None)
    if step < DAY:
        base = naive.replace(hour=0, minute=0, second=0, microsecond=0)
        into = (naive - base).total_seconds()
        moment = base + timedelta(seconds=-(-into // step) * step)
    else:
        moment = naive.replace(hour=0, minute=0, second=0, microsecond=0)
        if moment < naive:
            moment += timedelta(days=1)
    if step < 60:
        fmt = "time_s"
    elif step < DAY:
        fmt = "time" if first.date() == last.date() else "day_time"
    else:
        fmt = "day" if first.year == last.year else "date"
    ticks: list[tuple[datetime, str]] = []
    end_naive = last.replace(tzinfo=None)
    while moment <= end_naive and len(ticks) < most + 1:
        aware = moment.replace(tzinfo=zone)
        ticks.append((aware, _label(aware, fmt, months)))
        moment += timedelta(seconds=step)
    return ticks


class _Axis:
    """Maps moments to x across the plot, padded so that the first and last marks sit
    inside it."""

    def __init__(self, moments: Sequence[datetime], pad_share: float) -> None:
        if moments:
            low, high = min(moments), max(moments)
        else:
            low = high = datetime.now().astimezone()
        span = (high - low).total_seconds()
        pad = timedelta(seconds=max(span * pad_share, 30.0))
        self.start, self.end = low - pad, high + pad
        self.span = (self.end - self.start).total_seconds()

    def x(self, when: datetime) -> float:
        return PAD_L + PLOT_W * (when - self.start).total_seconds() / self.span


def _time_frame(
    label: str,
    kind: str,
    marks: Sequence[Mark],
    top: float,
    body: list[str],
    axis: _Axis,
    zone: tzinfo,
    months: Sequence[str],
) -> Markup:
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" data-kind="{kind}" data-points="{len(marks)}" '
        'data-axis="time" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
        *_y_grid(top),
        *body,
    ]
    if marks:
        first, last = min(m.at for m in marks), max(m.at for m in marks)
        for when, text in time_ticks(first, last, zone, months):
            x = axis.x(when)
            parts.append(
                f'<line class="tick" x1="{x:.1f}" y1="{PAD_T + PLOT_H}" x2="{x:.1f}" '
                f'y2="{PAD_T + PLOT_H + 4}"/>'
                f'<text class="axis x-tick" x="{x:.1f}" y="{HEIGHT - 8}" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _y_grid(top: float) -> list[str]:
    lines = []
    for i in range(5):
        y = PAD_T + PLOT_H * i / 4
        lines.append(
            f'<line class="grid" x1="{PAD_L}" y1="{y:.1f}" x2="{WIDTH - PAD_R}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_fmt(top * (4 - i) / 4)}</text>"
        )
    return lines


def _key(mark: Mark) -> str:
    return f' data-key="{escape(mark.key)}"' if mark.key else ""


def time_bars(
    label: str, marks: Sequence[Mark], zone: tzinfo, months: Sequence[str] = EN_MONTHS
) -> Markup:
    """A bar per mark, centred on its moment, scaled to the largest value."""
    axis = _Axis([m.at for m in marks], 0.04)
    top = max([m.value for m in marks] + [0]) or 1
    xs = sorted({round(axis.x(m.at), 1) for m in marks})
    gap = min((b - a for a, b in pairwise(xs)), default=PLOT_W)
    bar = min(max(gap * 0.7, 2.0), 24.0)
    body = []
    for m in marks:
        h = PLOT_H * max(m.value, 0) / top
        x = axis.x(m.at) - bar / 2
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{PAD_T + PLOT_H - h:.1f}" width="{bar:.1f}" '
            f'height="{h:.1f}"{_key(m)}><title>{escape(m.tip)}</title></rect>'
        )
    return _time_frame(label, "bar", marks, top, body, axis, zone, months)


def time_line(
    label: str, marks: Sequence[Mark], zone: tzinfo, months: Sequence[str] = EN_MONTHS
) -> Markup:
    """A line through the marks in time order, with a dot per mark."""
    ordered = sorted(marks, key=lambda m: m.at)
    axis = _Axis([m.at for m in ordered], 0.04)
    top = max([m.value for m in ordered] + [0]) or 1
    points = [(axis.x(m.at), PAD_T + PLOT_H - PLOT_H * max(m.value, 0) / top) for m in ordered]
    body = []
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(f'<polyline class="line" points="{path}"/>')
    for m, (x, y) in zip(ordered, points, strict=True):
        body.append(
            f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="4"{_key(m)}>'
            f"<title>{escape(m.tip)}</title></circle>"
        )
    return _time_frame(label, "line", ordered, top, body, axis, zone, months)


# -- the console's charts ----------------------------------------------------------------
def months_of(t: Callable[..., str]) -> list[str]:
    return t("chart.months").split(",")


def run_charts(
    runs: Sequence[dict[str, Any]], zone: tzinfo, t: Callable[..., str]
) -> dict[str, Markup]:
    """Duration, rows and rate of finished runs (see views.runs_for_charts) against time,
    each mark titled with its run: id, start, duration, rows and status."""
    months = months_of(t)
    tips = {}
    for r in runs:
        ms = r.get("sync_duration_ms")
        tips[r["id"]] = t(
            "chart.run_tip",
            run=r["id"],
            start=r["sync_started_at"].astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
            duration="—" if ms is None else f"{ms:,} ms",
            rows=f"{r['records_processed']:,}",
            status=t("run." + r["sync_status"]),
        )

    def marks(value: Callable[[dict[str, Any]], float], unit: str = "") -> list[Mark]:
        return [
            Mark(
                r["sync_started_at"],
                value(r),
                tips[r["id"]] + (f" · {_fmt(value(r))} {unit}" if unit else ""),
                str(r["id"]),
            )
            for r in runs
        ]

    return {
        "duration": time_bars(
            t("source.chart_duration"),
            marks(lambda r: r["sync_duration_ms"] or 0),
            zone,
            months,
        ),
        "rows": time_bars(
            t("source.chart_rows"), marks(lambda r: r["records_processed"]), zone, months
        ),
        "rate": time_line(
            t("source.chart_rate"),
            marks(lambda r: r["rows_per_s"], t("chart.rows_per_s")),
            zone,
            months,
        ),
    }


def hourly_chart(
    label: str,
    hours: Sequence[tuple[datetime, int, int]],
    zone: tzinfo,
    t: Callable[..., str],
) -> Markup:
    """Rows processed per hour (see views.throughput), a bar in the middle of each hour."""
    marks = []
    for start, rows, runs in hours:
        local = start.astimezone(zone).strftime("%H:00")
        tip = t("chart.hour_tip", hour=local, rows=f"{rows:,}", runs=runs)
        marks.append(Mark(start + timedelta(minutes=30), rows, tip))
    return time_bars(label, marks, zone, months_of(t))
